"""The ServiceNow update set `make servicenow` builds from servicenow/: its shape, each record's table and
fields, and every script in it run in Duktape (ES5) with ServiceNow's APIs stood in (tests/support)."""

from __future__ import annotations

import json
import re
import shutil
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.servicenow import Instance, generate_mac
from wfm_publish.errors import SignatureRejected
from wfm_publish.models import Job, JobStatus, PublishRequest
from wfm_publish.notifier import (
    ID_FIELD,
    NOTE_FIELD,
    REASON_FIELD,
    STATUS_FIELD,
    callback_fields,
    progress_fields,
)
from wfm_publish.signature import sign, verify
from wfm_publish_local import servicenow_set
from wfm_publish_local.servicenow_set import SOURCE, BuildError, build, read_records

ROOT = Path(__file__).resolve().parents[2]
SECRET = "wfm-publish-local-hmac-secret"
CALLBACK_ROLE = "wfm_publish_callback"
ADMIN_ROLE = "wfm_publish_admin"
SYSTEM_FIELDS = {"sys_id", "sys_update_name", "sys_scope", "sys_package", "sys_created_on", "sys_updated_on"}


@pytest.fixture(scope="module")
def built() -> str:
    return build()


@pytest.fixture(scope="module")
def updates(built: str) -> list[ET.Element]:
    return ET.fromstring(built).findall("sys_update_xml")


def rows(updates: list[ET.Element], table: str) -> list[dict[str, str]]:
    """Every row of `table` in the payloads: {field: value}, with display values as `field.display`."""
    found = []
    for update in updates:
        for row in ET.fromstring(update.findtext("payload") or ""):
            if row.tag == table:
                values = {child.tag: child.text or "" for child in row}
                values |= {
                    f"{c.tag}.display": c.get("display_value", "") for c in row if c.get("display_value")
                }
                found.append(values)
    return found


def installed(built: str, base_url: str = "http://127.0.0.1:9/prod") -> Instance:
    instance = Instance(built)
    instance.set_property("wfm_publish.base_url", base_url)
    instance.set_property("wfm_publish.api_key", "local-api-key")
    instance.set_property("wfm_publish.hmac_secret", SECRET)
    return instance


# ---------------------------------------------------------------- the document


def test_the_update_set_is_one_unload_of_one_remote_set_and_one_update_per_file(built: str) -> None:
    root = ET.fromstring(built)
    assert root.tag == "unload" and root.get("unload_date") == servicenow_set.FIXED_DATE
    (remote,) = root.findall("sys_remote_update_set")
    assert remote.get("action") == "INSERT_OR_UPDATE"
    assert remote.findtext("state") == "loaded"
    assert (remote.findtext("application"), remote.findtext("application_scope")) == ("global", "global")
    assert (remote.findtext("name") or "").startswith("wfm-publish ")
    files = sorted(p.relative_to(SOURCE).with_suffix("").as_posix() for p in SOURCE.glob("*/*.xml"))
    updates = root.findall("sys_update_xml")
    assert len(updates) == len(files) == len(root) - 1
    ids: set[str] = {remote.findtext("sys_id") or ""}
    for update in updates:
        assert update.get("action") == "INSERT_OR_UPDATE" and update.findtext("action") == "INSERT_OR_UPDATE"
        assert update.findtext("remote_update_set") == remote.findtext("sys_id")
        assert (update.findtext("category"), update.findtext("application")) == ("customer", "global")
        payload = update.findtext("payload") or ""
        assert payload.startswith('<?xml version="1.0" encoding="UTF-8"?><record_update')
        assert update.findtext("payload_hash") == str(servicenow_set.java_hash(payload))
        record = ET.fromstring(payload)[0]
        sys_id = record.findtext("sys_id") or ""
        assert re.fullmatch(r"[0-9a-f]{32}", sys_id)
        name = update.findtext("name") or ""
        if record.tag == "sys_dictionary":
            assert name == f"sys_dictionary_{record.get('table')}_{record.get('element')}"
        else:
            assert name == f"{record.tag}_{sys_id}" == record.findtext("sys_update_name")
        assert record.findtext("sys_scope") == "global" and record.findtext("sys_class_name") == record.tag
        ids |= {sys_id, update.findtext("sys_id") or ""}
    assert len(ids) == 1 + 2 * len(updates), "every sys_id is unique"


def test_each_file_is_one_record_of_the_table_its_directory_names_without_system_fields() -> None:
    for record in read_records():
        assert record.table == record.path.parent.name == record.row.tag
        assert record.row.get("action") == "INSERT_OR_UPDATE"
        assert not {child.tag for child in record.row} & SYSTEM_FIELDS, f"{record.key}: the build sets these"
        assert record.sys_id == servicenow_set.sys_id_for(record.key)


def test_the_build_is_deterministic_and_dated_as_asked(built: str, tmp_path: Path) -> None:
    assert build() == built
    other = build(date="2025-06-01 12:00:00")
    assert other != built
    hashed = re.compile(r"<(payload_hash|update_guid|update_guid_history)>[^<]*</\1>")  # of the payload
    assert hashed.sub("", other.replace("2025-06-01 12:00:00", servicenow_set.FIXED_DATE)) == hashed.sub(
        "", built
    )
    output = tmp_path / "set.xml"
    assert servicenow_set.main(["--output", str(output)]) == 0
    assert output.read_text(encoding="utf-8") == built
    with pytest.raises(SystemExit) as refused:
        servicenow_set.main(["--output", str(output), "--date", "2025-06-01"])
    assert refused.value.code == 2


# ---------------------------------------------------------------- each record's table and fields


def test_the_roles_and_the_properties_readable_only_by_the_integrations_role(
    updates: list[ET.Element],
) -> None:
    assert {r["name"] for r in rows(updates, "sys_user_role")} == {ADMIN_ROLE, CALLBACK_ROLE}
    properties = {r["name"]: r for r in rows(updates, "sys_properties")}
    assert {name: p["type"] for name, p in properties.items()} == {
        "wfm_publish.base_url": "string",
        "wfm_publish.api_key": "password2",
        "wfm_publish.hmac_secret": "password2",
    }
    for prop in properties.values():
        assert (prop["read_roles"], prop["write_roles"]) == (ADMIN_ROLE, ADMIN_ROLE)
        assert prop["value"] == "", "no value travels in the update set: each instance sets its own"


def test_the_callback_fields_are_the_ones_the_notifier_writes_and_only_its_role_may(
    updates: list[ET.Element],
) -> None:
    fields = {r["element"]: r for r in rows(updates, "sys_dictionary")}
    assert set(fields) == {STATUS_FIELD, REASON_FIELD, ID_FIELD, "u_wfm_schedule_id"}
    assert {(f["name"], f["internal_type"]) for f in fields.values()} == {("change_request", "string")}
    roles = {
        r["sys_security_acl"]: r["sys_user_role.display"] for r in rows(updates, "sys_security_acl_role")
    }
    acls = rows(updates, "sys_security_acl")
    assert {roles[a["sys_id"]] for a in acls} == {CALLBACK_ROLE}
    granted = {(a["name"], a["operation"]) for a in acls}
    assert granted == {("change_request", "read"), ("change_request", "write")} | {
        (f"change_request.{f}", "write") for f in (STATUS_FIELD, REASON_FIELD, ID_FIELD, NOTE_FIELD)
    } | {(f"change_request.{f}", "read") for f in (STATUS_FIELD, ID_FIELD)}  # what the notifier reads back
    assert {a["condition"] for a in acls} == {"u_wfm_schedule_idISNOTEMPTY^EQ"}


def test_the_rest_message_has_a_method_for_each_route_of_the_api(
    updates: list[ET.Element], built: str
) -> None:
    (message,) = rows(updates, "sys_rest_message")
    assert (message["name"], message["rest_endpoint"]) == ("wfm-publish", "${base_url}")
    headers = {h["name"]: h["value"] for h in rows(updates, "sys_rest_message_headers")}
    assert headers == {"Accept": "application/json", "Content-Type": "application/json"}
    functions = {f["function_name"]: f for f in rows(updates, "sys_rest_message_fn")}
    assert {f["rest_message"] for f in functions.values()} == {message["sys_id"]}
    api = json.loads((ROOT / "docs" / "openapi.json").read_text())["paths"]
    routes = Instance(built).run("WfmPublish.prototype.ROUTES")
    assert set(routes) == set(functions) == {"create", "status", "cancel", "window", "capacity"}
    variables = rows(updates, "sys_rest_message_fn_parameters")
    for name, function in functions.items():
        endpoint = function["rest_endpoint"]
        assert endpoint == "${base_url}/" + "/".join(
            re.sub(r"\{(\w+)\}", r"${\1}", s) for s in routes[name]["path"]
        )
        assert function["http_method"] == routes[name]["method"].lower()
        openapi_path = re.sub(
            r"\$\{(\w+)_id\}", lambda m: "{" + m.group(1) + "Id}", endpoint[len("${base_url}") :]
        )
        assert routes[name]["method"].lower() in api[openapi_path.replace("{publishId}", "{publishId}")]
        declared = {v["name"] for v in variables if v["rest_message_function"] == function["sys_id"]}
        assert declared == set(re.findall(r"\$\{(\w+)\}", endpoint))
    assert len(api) == len(functions), "every route of the API has its HTTP method"


def test_the_rules_the_button_and_the_job(updates: list[ET.Element]) -> None:
    rules = {r["name"]: r for r in rows(updates, "sys_script")}
    hold = rules["wfm-publish: hold availability updates while publishing"]
    release = rules["wfm-publish: release held availability updates"]
    assert (hold["collection"], hold["when"], hold["action_insert"], hold["action_update"]) == (
        "u_wfm_availability",
        "before",
        "true",
        "true",
    )
    assert (release["collection"], release["when"], release["action_update"]) == (
        "change_request",
        "after",
        "true",
    )
    assert hold["active"] == release["active"] == "false", "examples to adapt: shipped inactive"
    (button,) = rows(updates, "sys_ui_action")
    assert (button["table"], button["active"], button["form_button"], button["client"]) == (
        "change_request",
        "true",
        "true",
        "false",
    )
    (job,) = rows(updates, "sysauto_script")
    assert (job["active"], job["run_type"], job["run_period"]) == (
        "true",
        "periodically",
        "1970-01-01 00:15:00",
    )


# ---------------------------------------------------------------- ES5 only: anything later fails the build


def test_every_script_in_the_set_is_es5() -> None:
    records = read_records()
    scripts = [(r.key, f) for r in records for f, _, _ in r.scripts()]
    assert len(scripts) >= 6  # the script include, two rules, the button (script and condition), the job
    assert servicenow_set.script_problems(records) == []


@pytest.mark.parametrize(
    ("later", "found"),
    [
        ("    let answer = 1;", "`let` is not ES5"),
        ("    var pick = (a) => a;", "an arrow function is not ES5"),
        ("    var text = `publish ${1}`;", "a template literal is not ES5"),
        ("    var {scheduleId: id} = {scheduleId: 1};", "destructuring is not ES5"),
    ],
)
def test_es6_anywhere_in_servicenow_fails_the_build(
    later: str, found: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "servicenow"
    shutil.copytree(SOURCE, source)
    button = next((source / "sys_ui_action").glob("*.xml"))
    text = button.read_text()
    button.write_text(
        text.replace(
            "(function publishSchedule(current, action) {\n",
            "(function publishSchedule(current, action) {\n" + later + "\n",
            1,
        )
    )
    with pytest.raises(BuildError) as failed:
        build(source)
    (problem,) = failed.value.problems
    assert problem.startswith(f"sys_ui_action/{button.stem}.script, line ") and problem.endswith(found)
    output = tmp_path / "out.xml"
    assert servicenow_set.main(["--source", str(source), "--output", str(output)]) == 1
    assert found in capsys.readouterr().err and not output.exists()


def test_a_file_that_is_not_a_record_or_names_no_record_fails_the_build(tmp_path: Path) -> None:
    source = tmp_path / "servicenow"
    shutil.copytree(SOURCE, source)
    (source / "sys_script" / "notes.txt").write_text("a stray")
    function = source / "sys_rest_message_fn" / "wfm-publish.create.xml"
    function.write_text(function.read_text().replace("sys_rest_message/wfm-publish", "sys_rest_message/wfm"))
    (source / "sys_properties" / "misplaced.xml").write_text(
        (source / "sys_user_role" / f"{ADMIN_ROLE}.xml").read_text()
    )
    with pytest.raises(BuildError) as failed:
        build(source)
    assert failed.value.problems == [
        "sys_properties/misplaced: the record is a sys_user_role, in the directory sys_properties",
        "sys_script/notes.txt: not a record file (servicenow/<table>/<name>.xml)",
    ]
    (source / "sys_script" / "notes.txt").unlink()
    (source / "sys_properties" / "misplaced.xml").unlink()
    with pytest.raises(BuildError) as failed:
        build(source)
    assert failed.value.problems == [
        "sys_rest_message_fn/wfm-publish.create:"
        " <rest_message ref='sys_rest_message/wfm'> names no record file"
    ]


# ---------------------------------------------------------------- the script include, in Duktape


SIGNED = [
    (
        SECRET,
        "POST",
        "/publishes",
        None,
        "CHG0031337-publish-1",
        '{"scheduleId":"sched-demo"}',
        1_698_415_200_123,
    ),
    (SECRET, "GET", "/publishes/p-1", None, "", "", 1_698_415_200_000),
    (
        "a longer secret with spaces & symbols!",
        "post",
        "/publishes/it's (a) b*!/cancel",
        {"z": "1", "a": ["x y", "!'()*", "é"], "a-": "", "b=c": "&"},
        "key with spaces & symbols!",
        '{"scheduleId":"s","x":[1,2]}',
        1_700_000_000_999,
    ),
]


@pytest.mark.parametrize(("secret", "method", "path", "query", "key", "body", "millis"), SIGNED)
def test_the_script_include_signs_as_the_api_checks(
    built: str, secret: str, method: str, path: str, query: Any, key: str, body: str, millis: int
) -> None:
    signed = installed(built).run(
        "WfmPublish.prototype.sign.call(WfmPublish.prototype, dukpy.secret, dukpy.method, dukpy.path,"
        " dukpy.query, dukpy.key, dukpy.body, dukpy.millis)",
        secret=secret,
        method=method,
        path=path,
        query=query,
        key=key,
        body=body,
        millis=millis,
    )
    assert signed == {
        "timestamp": str(millis // 1000),
        "signature": sign(secret, millis // 1000, method, path, query, body, key),
    }
    headers = {"X-Signature-Timestamp": signed["timestamp"], "X-Signature": signed["signature"]}
    if key:
        headers["Idempotency-Key"] = key
    verify([secret], headers, method.upper(), path, query, body.encode(), millis / 1000)
    if key:  # the key is signed: the same request under another key is refused
        with pytest.raises(SignatureRejected, match="Idempotency-Key"):
            verify(
                [secret],
                {**headers, "Idempotency-Key": "another"},
                method.upper(),
                path,
                query,
                body.encode(),
                millis / 1000,
            )


def test_the_docs_show_every_script_the_update_set_installs_as_it_is() -> None:
    """docs/servicenow.md shows the files' scripts, not copies that could drift: each block under a
    `<!-- servicenow/<file>.xml: <field> -->` marker is that field, and every script is shown."""
    text = (ROOT / "docs" / "servicenow.md").read_text()
    shown = re.findall(r"<!-- servicenow/(.+?)\.xml: (\w+) -->\n```javascript\n(.*?)\n```", text, re.S)
    records = {record.key: record for record in read_records()}
    for key, field, code in shown:
        assert code == records[key].field(field), f"docs/servicenow.md shows another {key} {field}"
    scripts = {(r.key, f) for r in records.values() for f, _, expression in r.scripts() if not expression}
    assert {(key, field) for key, field, _ in shown} == scripts


def test_the_docs_test_vectors_are_the_script_includes(built: str) -> None:
    text = (ROOT / "docs" / "servicenow.md").read_text()
    publish = "/publishes/3f2a9c04e1d84b7c9a1e5d6f7b8c9d0e"
    for method, path, key, body in [
        ("POST", "/publishes", "CHG0031337-publish-1", '{"scheduleId":"sched-demo"}'),
        ("GET", publish, "", ""),
        ("POST", f"{publish}/cancel", "", ""),
    ]:
        signed = installed(built).run(
            "WfmPublish.prototype.sign.call(WfmPublish.prototype, dukpy.secret, dukpy.method, dukpy.path,"
            " null, dukpy.key, dukpy.body, 1698415200000).signature",
            secret=SECRET,
            method=method,
            path=path,
            key=key,
            body=body,
        )
        assert signed == sign(SECRET, 1698415200, method, path, None, body, key) and signed in text


@pytest.mark.parametrize("secret", ["ascii-secret", "sécret ✓ 😀", "a", "ab", "abc", ""])
def test_the_key_goes_to_generate_mac_as_base64_of_its_utf8_bytes(built: str, secret: str) -> None:
    import base64

    encoded = installed(built).run("WfmPublish.prototype.base64Utf8(dukpy.secret)", secret=secret)
    assert encoded == base64.b64encode(secret.encode()).decode()


def test_the_stand_in_mac_is_hmac_sha256_with_a_base64_key_and_refuses_what_the_platform_would_guess() -> (
    None
):
    import base64
    import hashlib
    import hmac

    mac = generate_mac(base64.b64encode(b"k").decode(), "HmacSHA256", "data")
    assert base64.b64decode(mac) == hmac.new(b"k", b"data", hashlib.sha256).digest()
    with pytest.raises(ValueError, match="non-ASCII"):
        generate_mac("aw==", "HmacSHA256", "é")
    with pytest.raises(ValueError):
        generate_mac("not base64!", "HmacSHA256", "data")


ACCEPTED = (202, {"publishId": "p-1", "status": "QUEUED", "scheduleId": "sched-1", "joined": False})


class Recorder(BaseHTTPRequestHandler):
    """Keeps every request and answers it with `answer` (202 accepted unless a test says otherwise), for
    the tests that read what the scripts sent."""

    seen: list[dict[str, Any]] = []
    answer: tuple[int, dict[str, Any]] = ACCEPTED

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        Recorder.seen.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": raw}
        )
        status, body = Recorder.answer
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    Recorder.seen = []
    Recorder.answer = ACCEPTED
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/prod"
    server.shutdown()
    server.server_close()


def test_each_call_sends_the_route_its_rest_method_names_signed_for_that_route_only(
    built: str, recorder: str
) -> None:
    instance = installed(built, recorder + "/")
    body = {"scheduleId": "sched-é ✓", "callback": {"table": "change_request", "sysId": "0" * 32}}
    answers = instance.run(
        "var wfm = new WfmPublish();"
        "[wfm.create(dukpy.body, 'CHG0001-publish-1'), wfm.status('p 1'), wfm.cancel('p-1'),"
        " wfm.window('sched/1')]",
        body=body,
    )
    assert [a["status"] for a in answers] == [202] * 4 and answers[0]["body"]["publishId"] == "p-1"
    # each route as the API checks it (a segment's %2F stays one segment)
    routes = [
        ("POST", "/publishes"),
        ("GET", "/publishes/p 1"),
        ("POST", "/publishes/p-1/cancel"),
        ("GET", "/schedules/sched%2F1/publish"),
    ]
    assert [(s["method"], s["path"]) for s in Recorder.seen] == [
        ("POST", "/prod/publishes"),
        ("GET", "/prod/publishes/p%201"),
        ("POST", "/prod/publishes/p-1/cancel"),
        ("GET", "/prod/schedules/sched%2F1/publish"),
    ]
    for seen, route in zip(Recorder.seen, routes, strict=True):
        headers = seen["headers"]
        assert headers["x-api-key"] == "local-api-key" and headers["Accept"] == "application/json"
        now = float(headers["X-Signature-Timestamp"])
        for method, path in routes:
            if (method, path) == route:
                verify([SECRET], headers, method, path, None, seen["body"], now)
            else:
                with pytest.raises(SignatureRejected, match="does not match"):
                    verify([SECRET], headers, method, path, None, seen["body"], now)
    create = Recorder.seen[0]
    assert create["headers"]["Idempotency-Key"] == "CHG0001-publish-1"
    assert create["body"].isascii() and json.loads(create["body"]) == body, "the same JSON, sent in ASCII"
    assert all(s["body"] == b"" for s in Recorder.seen[1:])


def test_the_capacity_call_asks_for_the_chart_or_the_report_signed_for_its_route(
    built: str, recorder: str
) -> None:
    instance = installed(built, recorder + "/")
    answers = instance.run("var wfm = new WfmPublish(); [wfm.capacity('p-1', true), wfm.capacity('p-1')]")
    assert [a["status"] for a in answers] == [202, 202]
    chart, report = Recorder.seen
    assert (chart["method"], chart["path"]) == ("GET", "/prod/publishes/p-1/capacity")
    assert chart["headers"]["Accept"] == "image/svg+xml" and report["headers"]["Accept"] == "application/json"
    for seen in (chart, report):
        now = float(seen["headers"]["X-Signature-Timestamp"])
        verify([SECRET], seen["headers"], "GET", "/publishes/p-1/capacity", None, b"", now)
        with pytest.raises(SignatureRejected):
            verify([SECRET], seen["headers"], "GET", "/publishes/p-1", None, b"", now)


def test_a_missing_property_is_named(built: str) -> None:
    instance = Instance(built)
    with pytest.raises(Exception, match=r"set the system property wfm_publish\.base_url"):
        instance.run("new WfmPublish()")


# ---------------------------------------------------------- rules, the button's condition, callback account


@pytest.fixture
def availability(built: str) -> Instance:
    """The instance with the hold and release rules adapted as the docs say: their table exists, active."""
    instance = installed(built)
    instance.define_table("u_wfm_availability", ["u_schedule_id", "u_state"])
    instance.activate("sys_script", "wfm-publish: hold availability updates while publishing")
    instance.activate("sys_script", "wfm-publish: release held availability updates")
    return instance


def test_updates_are_held_while_a_change_request_publishes_their_schedule_and_released_when_it_ends(
    availability: Instance,
) -> None:
    instance = availability
    change = instance.insert("change_request", u_wfm_schedule_id="sched-1", u_wfm_publish_status="QUEUED")
    other = instance.insert("change_request", u_wfm_schedule_id="sched-2", u_wfm_publish_status="PUBLISHED")
    held = instance.insert("u_wfm_availability", u_schedule_id="sched-1", u_state="ready")
    free = instance.insert("u_wfm_availability", u_schedule_id="sched-2", u_state="ready")
    assert instance.get("u_wfm_availability", held)["u_state"] == "held"
    assert instance.get("u_wfm_availability", free)["u_state"] == "ready"
    for state in ("PUBLISHING", "RETRYING"):
        instance.write("change_request", change, {"u_wfm_publish_status": state})
        assert instance.get("u_wfm_availability", held)["u_state"] == "held"
    second = instance.insert("change_request", u_wfm_schedule_id="sched-1", u_wfm_publish_status="PUBLISHING")
    instance.write("change_request", change, {"u_wfm_publish_status": "PUBLISHED"})
    assert instance.get("u_wfm_availability", held)["u_state"] == "held", "another publish of it is in flight"
    instance.write("change_request", second, {"u_wfm_publish_status": "FAILED"})
    assert instance.get("u_wfm_availability", held)["u_state"] == "ready"
    instance.write("change_request", other, {"u_wfm_publish_status": "PUBLISHED"})  # unchanged: no rule runs
    assert instance.insert("u_wfm_availability", u_schedule_id="sched-1", u_state="ready")


def test_the_button_is_offered_to_the_integrations_role_on_a_change_that_names_a_schedule(built: str) -> None:
    instance = installed(built)
    button = instance.record("sys_ui_action", "Publish WFM schedule")
    named = instance.get("change_request", instance.insert("change_request", u_wfm_schedule_id="sched-1"))
    unnamed = instance.get("change_request", instance.insert("change_request"))
    with instance.session("jo", ADMIN_ROLE):
        assert instance.condition_holds("change_request", button, named)
        assert not instance.condition_holds("change_request", button, unnamed)
    with instance.session("sam", "itil"):
        assert not instance.condition_holds("change_request", button, named)


def job(status: JobStatus) -> Job:
    request = PublishRequest.model_validate({"scheduleId": "sched-1"})
    return Job(
        job_id="p-1",
        schedule_id="sched-1",
        request=request,
        status=status,
        ticket="t",
        created_at=0,
        updated_at=0,
        deadline_at=0,
        detail="done",
    )


def test_the_callback_account_may_write_the_callback_fields_and_nothing_else(built: str) -> None:
    instance = installed(built)
    change = instance.insert(
        "change_request", u_wfm_schedule_id="sched-1", short_description="publish week 43"
    )
    for fields in (progress_fields(job(JobStatus.PUBLISHING)), callback_fields(job(JobStatus.PUBLISHED))):
        instance.table_api_update("change_request", change, fields, (CALLBACK_ROLE,))
    assert instance.denied == []
    record = instance.get("change_request", change)
    assert (record[STATUS_FIELD], record[REASON_FIELD], record[ID_FIELD]) == ("PUBLISHED", "PUBLISHED", "p-1")
    row = instance.get("change_request", change)
    assert all(
        instance.granted("change_request", f, "read", row, (CALLBACK_ROLE,)) for f in (ID_FIELD, STATUS_FIELD)
    )
    instance.table_api_update("change_request", change, {"short_description": "x"}, (CALLBACK_ROLE,))
    unnamed = instance.insert("change_request", short_description="not a publish")
    instance.table_api_update(
        "change_request", unnamed, callback_fields(job(JobStatus.FAILED)), (CALLBACK_ROLE,)
    )
    instance.table_api_update("change_request", change, {STATUS_FIELD: "FAILED"}, ("itil",))
    assert instance.denied == [
        "write change_request.short_description",
        *[f"write change_request.{f}" for f in callback_fields(job(JobStatus.FAILED))],
        f"write change_request.{STATUS_FIELD}",
    ]
    assert instance.get("change_request", change)["short_description"] == "publish week 43"


def test_the_reconcile_job_calls_nothing_while_no_change_request_shows_a_publish_in_flight(
    built: str,
) -> None:
    instance = Instance(built)  # not even configured yet: it must not fail every 15 minutes
    instance.insert(
        "change_request",
        u_wfm_schedule_id="sched-1",
        u_wfm_publish_status="PUBLISHED",
        u_wfm_publish_id="p-1",
    )
    instance.run_job("wfm-publish: reconcile missed callbacks")
    assert instance.sent == [] and instance.logs == []


def test_the_button_publishes_the_change_and_opens_the_window_on_it(
    availability: Instance, recorder: str
) -> None:
    instance = availability
    instance.set_property("wfm_publish.base_url", recorder)
    change = instance.insert("change_request", u_wfm_schedule_id="sched-1")
    with instance.session("jo", ADMIN_ROLE):
        instance.ui_action("Publish WFM schedule", change)
    (sent,) = Recorder.seen
    assert (sent["method"], sent["path"]) == ("POST", "/prod/publishes")
    assert json.loads(sent["body"]) == {
        "scheduleId": "sched-1",
        "validationMode": "strict",
        "telephonySync": {"enabled": True, "retryCount": 3, "delayMs": 5000},
        "callback": {"table": "change_request", "sysId": change, "progress": True},
    }
    number = instance.get("change_request", change)["number"]
    assert re.fullmatch(rf"{number}-publish-\d+", sent["headers"]["Idempotency-Key"])
    record = instance.get("change_request", change)
    assert (record[STATUS_FIELD], record[ID_FIELD]) == ("QUEUED", "p-1"), "the hold starts with the request"
    assert instance.messages == [("info", "wfm-publish accepted the publish of schedule sched-1: p-1.")]
    assert instance.redirects == [change]
    held = instance.insert("u_wfm_availability", u_schedule_id="sched-1", u_state="ready")
    assert instance.get("u_wfm_availability", held)["u_state"] == "held"
    with instance.session("jo", ADMIN_ROLE):
        instance.ui_action("Publish WFM schedule", change)  # in flight: says so, sends nothing
    assert len(Recorder.seen) == 1 and "already being published (p-1, QUEUED)" in instance.messages[-1][1]


def test_the_button_says_why_a_publish_was_refused_and_changes_nothing(built: str, recorder: str) -> None:
    instance = installed(built, recorder)
    Recorder.answer = (409, {"code": "JOIN_CONFLICT", "message": "a publish with other options is in flight"})
    change = instance.insert("change_request", u_wfm_schedule_id="sched-1")
    with instance.session("jo", ADMIN_ROLE):
        instance.ui_action("Publish WFM schedule", change)
    assert instance.messages == [
        (
            "error",
            "wfm-publish did not accept the publish: HTTP 409 JOIN_CONFLICT:"
            " a publish with other options is in flight",
        )
    ]
    assert instance.get("change_request", change)[STATUS_FIELD] == ""
    unreachable = installed(built, "http://127.0.0.1:9/prod")
    change = unreachable.insert("change_request", u_wfm_schedule_id="sched-1")
    with unreachable.session("jo", ADMIN_ROLE):
        unreachable.ui_action("Publish WFM schedule", change)
    assert unreachable.messages[0][1].startswith(
        "wfm-publish did not accept the publish: HTTP 0 ConnectionError"
    )


def test_the_reconcile_job_writes_the_end_a_lost_callback_did_not(
    availability: Instance, recorder: str
) -> None:
    instance = availability
    instance.set_property("wfm_publish.base_url", recorder)
    lost = instance.insert("change_request", u_wfm_schedule_id="sched-1", u_wfm_publish_status="PUBLISHING")
    instance.write("change_request", lost, {ID_FIELD: "p-1"})
    held = instance.insert("u_wfm_availability", u_schedule_id="sched-1", u_state="ready")
    Recorder.answer = (200, {"publishId": "p-1", "status": "PUBLISHING"})
    instance.run_job("wfm-publish: reconcile missed callbacks")
    assert [(s["method"], s["path"]) for s in Recorder.seen] == [("GET", "/prod/publishes/p-1")]
    assert instance.get("change_request", lost)[STATUS_FIELD] == "PUBLISHING", "still in flight: left alone"
    Recorder.answer = (503, {"code": "UNAVAILABLE", "message": "try again"})
    instance.run_job("wfm-publish: reconcile missed callbacks")
    assert instance.logs[-1][0] == "warn" and "answered 503" in instance.logs[-1][1]
    Recorder.answer = (200, {"publishId": "p-1", "status": "FAILED", "reasonCode": "DEADLINE_EXCEEDED"})
    instance.run_job("wfm-publish: reconcile missed callbacks")
    record = instance.get("change_request", lost)
    assert (record[STATUS_FIELD], record[REASON_FIELD]) == ("FAILED", "DEADLINE_EXCEEDED")
    assert instance.get("u_wfm_availability", held)["u_state"] == "ready", "the release rule followed"
