"""A ServiceNow instance in miniature, for running the update set's scripts as ServiceNow would.

`Instance(update_set_xml)` installs the built update set: every row of every `sys_update_xml` payload
becomes a record of its table (roles, properties, dictionary entries, access controls, the script
include, the REST message and its methods, business rules, the UI action, the scheduled job). Scripts
then run in Duktape, an ES5 engine (ServiceNow's is Rhino-based), with stand-ins for the Glide APIs they
call. The stand-ins are test doubles of ServiceNow, written from ServiceNow's documentation, never of
wfm-publish's code:

- `Class.create()`, as ServiceNow's script includes use it;
- `gs`: getProperty (the installed sys_properties), hasRole (true for admin, as documented), the
  add*Message and log calls (recorded);
- `GlideCertificateEncryption.generateMac(key, algorithm, data)`: a real HMAC computed in Python. As
  documented: the key must be Base64, the MAC comes back in Base64. The character set the platform turns
  `data` into bytes with is not documented, so the stand-in refuses non-ASCII data;
- `sn_ws.RESTMessageV2(name, method)`: looks up the installed REST message and HTTP method records,
  substitutes `${variables}` into the method's endpoint (an unset variable is an error: ServiceNow would
  send it as written), adds the message's HTTP headers and the script's, and sends real HTTP with the
  method's verb; `RESTResponseV2` answers status, body, headers and transport errors;
- `GlideRecord`: queries (`=`, `!=`, `IN`, empty and not empty), get, getValue (null when empty),
  setValue, insert, update, setLimit. A write runs the table's active business rules as ServiceNow does:
  before rules (which may change `current` or abort), the write, after rules; a rule runs when its
  `filter_condition` (an encoded query: `=`, `!=`, `IN`, `ISEMPTY`, `ISNOTEMPTY`, `VALCHANGES`) holds.
  A field a table does not have is an error (ServiceNow would drop the value without a word).

`table_api_update` is the Table API's PATCH as the callback account makes it: each field written must
be granted to one of the account's roles by the installed access controls (the table's and the
field's, their conditions holding); what is not granted is recorded in `denied` and not written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dukpy
import requests

Row = dict[str, str]

# Fields every table has, and the change request's own fields the scripts touch.
SYSTEM_FIELDS = ("sys_id", "sys_created_on", "sys_updated_on", "sys_created_by", "sys_updated_by")
CHANGE_REQUEST_FIELDS = ("number", "short_description", "work_notes")
_MACS = {"HmacSHA256": hashlib.sha256, "HmacSHA1": hashlib.sha1, "HmacMD5": hashlib.md5}
_VARIABLE = re.compile(r"\$\{(\w+)\}")
_TERM = re.compile(r"^(\w+?)(VALCHANGES|ISNOTEMPTY|ISEMPTY|!=|=|IN)(.*)$")

PRELUDE = r"""
var Class = {create: function () { return function () { this.initialize.apply(this, arguments); }; }};

var gs = {
    getProperty: function (name, fallback) {
        var value = call_python('gs_property', String(name));
        return value === null ? (fallback === undefined ? null : fallback) : value;
    },
    hasRole: function (role) { return call_python('gs_has_role', String(role)); },
    addInfoMessage: function (text) { call_python('gs_message', 'info', String(text)); },
    addErrorMessage: function (text) { call_python('gs_message', 'error', String(text)); },
    info: function (text) { call_python('gs_log', 'info', String(text)); },
    warn: function (text) { call_python('gs_log', 'warn', String(text)); },
    error: function (text) { call_python('gs_log', 'error', String(text)); },
    log: function (text) { call_python('gs_log', 'log', String(text)); }
};

function GlideCertificateEncryption() {}
GlideCertificateEncryption.prototype.generateMac = function (key, algorithm, data) {
    return call_python('generate_mac', String(key), String(algorithm), String(data));
};

function RESTResponseV2(answer) { this._answer = answer; }
RESTResponseV2.prototype.getStatusCode = function () { return this._answer.status; };
RESTResponseV2.prototype.getBody = function () { return this._answer.body; };
RESTResponseV2.prototype.getHeader = function (name) {
    var wanted = String(name).toLowerCase();
    for (var key in this._answer.headers) {
        if (key.toLowerCase() === wanted) { return this._answer.headers[key]; }
    }
    return null;
};
RESTResponseV2.prototype.haveError = function () { return this._answer.error !== ''; };
RESTResponseV2.prototype.getErrorMessage = function () { return this._answer.error; };

var sn_ws = {
    RESTMessageV2: function (name, method) {
        call_python('rest_message', String(name), String(method));
        this._name = String(name);
        this._method = String(method);
        this._variables = {};
        this._headers = {};
        this._body = null;
    }
};
sn_ws.RESTMessageV2.prototype.setStringParameterNoEscape = function (name, value) {
    this._variables[name] = String(value);
};
sn_ws.RESTMessageV2.prototype.setStringParameter = function (name, value) {
    this._variables[name] = String(value).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
        .replace(/"/g, '&quot;').replace(/'/g, '&apos;');
};
sn_ws.RESTMessageV2.prototype.setRequestHeader = function (name, value) {
    this._headers[name] = String(value);
};
sn_ws.RESTMessageV2.prototype.setRequestBody = function (body) { this._body = String(body); };
sn_ws.RESTMessageV2.prototype.execute = function () {
    return new RESTResponseV2(call_python('rest_execute', this._name, this._method, this._variables,
        this._headers, this._body));
};

function GlideRecord(table) {
    call_python('gr_table', String(table));
    this._table = String(table);
    this._query = [];
    this._limit = 0;
    this._rows = [];
    this._index = -1;
    this._row = null;
    this._changes = {};
    this._abort = false;
}
GlideRecord.prototype.addQuery = function (name, operator, value) {
    if (arguments.length === 2) { value = operator; operator = '='; }
    var text = value === null || value === undefined ? '' : String(value);
    this._query.push([String(name), String(operator), text]);
};
GlideRecord.prototype.addNotNullQuery = function (name) {
    this._query.push([String(name), 'ISNOTEMPTY', '']);
};
GlideRecord.prototype.addNullQuery = function (name) { this._query.push([String(name), 'ISEMPTY', '']); };
GlideRecord.prototype.setLimit = function (limit) { this._limit = Number(limit); };
GlideRecord.prototype.query = function () {
    this._rows = call_python('gr_query', this._table, this._query, this._limit);
    this._index = -1;
};
GlideRecord.prototype.hasNext = function () { return this._index + 1 < this._rows.length; };
GlideRecord.prototype.next = function () {
    if (!this.hasNext()) { return false; }
    this._index += 1;
    this._row = this._rows[this._index];
    this._changes = {};
    return true;
};
GlideRecord.prototype.get = function (name, value) {
    if (arguments.length === 1) { value = name; name = 'sys_id'; }
    this._query = [[String(name), '=', String(value)]];
    this._limit = 1;
    this.query();
    return this.next();
};
GlideRecord.prototype.initialize = function () { this._row = {}; this._changes = {}; };
GlideRecord.prototype.isValidRecord = function () { return this._row !== null && !!this._row.sys_id; };
GlideRecord.prototype.getValue = function (name) {
    call_python('gr_field', this._table, String(name));
    var value = this._row ? this._row[name] : null;
    return value === undefined || value === null || value === '' ? null : value;
};
GlideRecord.prototype.setValue = function (name, value) {
    call_python('gr_field', this._table, String(name));
    if (this._row === null) { this.initialize(); }
    this._row[name] = value === null || value === undefined ? '' : String(value);
    this._changes[name] = this._row[name];
};
GlideRecord.prototype.getUniqueValue = function () { return this._row ? this._row.sys_id : null; };
GlideRecord.prototype.getTableName = function () { return this._table; };
GlideRecord.prototype.setAbortAction = function (abort) { this._abort = !!abort; };
GlideRecord.prototype.insert = function () {
    var id = call_python('gr_write', this._table, null, this._changes);
    this._row = call_python('gr_query', this._table, [['sys_id', '=', id]], 1)[0];
    this._changes = {};
    return id;
};
GlideRecord.prototype.update = function () {
    var id = call_python('gr_write', this._table, this._row.sys_id, this._changes);
    this._changes = {};
    return id;
};

function __positioned(table, row) {
    var record = new GlideRecord(table);
    record._row = row;
    record._rows = [row];
    record._index = 0;
    return record;
}
"""


@dataclass(frozen=True)
class Sent:
    """One HTTP request a REST message sent, and its answer's status (0: no answer)."""

    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    status: int


@dataclass
class Session:
    user: str
    roles: tuple[str, ...]

    def has_role(self, role: str) -> bool:
        return "admin" in self.roles or role in self.roles


@dataclass
class Instance:
    """The installed update set, its records, and what its scripts did."""

    update_set: str = field(repr=False)
    tables: dict[str, dict[str, Row]] = field(default_factory=dict, repr=False)
    schema: dict[str, set[str]] = field(default_factory=dict, repr=False)
    messages: list[tuple[str, str]] = field(default_factory=list)
    logs: list[tuple[str, str]] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    denied: list[str] = field(default_factory=list)
    redirects: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._local = threading.local()
        self._numbers = itertools.count(1)
        self.define_table("change_request", CHANGE_REQUEST_FIELDS)
        root = ET.fromstring(self.update_set)
        for update in root.findall("sys_update_xml"):
            record_update = ET.fromstring(update.findtext("payload") or "")
            for row in record_update:
                values = {child.tag: (child.text or "") for child in row}
                self.tables.setdefault(row.tag, {})[values["sys_id"]] = values
                if row.tag == "sys_dictionary":
                    self.schema.setdefault(values["name"], set(SYSTEM_FIELDS)).add(values["element"])

    # ------------------------------------------------------------ set-up, as an admin would

    def define_table(self, table: str, fields: tuple[str, ...] | list[str]) -> None:
        self.schema.setdefault(table, set(SYSTEM_FIELDS)).update(fields)

    def set_property(self, name: str, value: str) -> None:
        (row,) = [r for r in self.tables["sys_properties"].values() if r["name"] == name]
        row["value"] = value

    def activate(self, table: str, name: str) -> None:
        self.record(table, name)["active"] = "true"

    def record(self, table: str, name: str, key: str = "name") -> Row:
        (row,) = [r for r in self.tables.get(table, {}).values() if r.get(key) == name]
        return row

    def rows(self, table: str) -> list[Row]:
        with self._lock:
            return [dict(r) for r in self.tables.get(table, {}).values()]

    @contextmanager
    def session(self, user: str, *roles: str) -> Iterator[Session]:
        previous = getattr(self._local, "session", None)
        self._local.session = Session(user, roles)
        try:
            yield self._local.session
        finally:
            self._local.session = previous

    @property
    def current_session(self) -> Session:
        found = getattr(self._local, "session", None)
        return found if isinstance(found, Session) else Session("system", ("admin",))

    # ------------------------------------------------------------ running scripts

    def interpreter(self) -> dukpy.JSInterpreter:
        """A fresh engine with the Glide stand-ins and every active script include loaded."""
        engine = dukpy.JSInterpreter()
        for name, function in {
            "gs_property": self._property,
            "gs_has_role": self._has_role,
            "gs_message": lambda kind, text: self.messages.append((kind, text)),
            "gs_log": lambda level, text: self.logs.append((level, text)),
            "generate_mac": generate_mac,
            "rest_message": self._rest_message,
            "rest_execute": self._rest_execute,
            "gr_table": self._check_table,
            "gr_field": self._check_field,
            "gr_query": self.query,
            "gr_write": self.write,
            "action_redirect": self.redirects.append,
        }.items():
            engine.export_function(name, function)
        engine.evaljs(PRELUDE)
        for include in self.tables.get("sys_script_include", {}).values():
            if include["active"] == "true":
                engine.evaljs(include["script"])
        return engine

    def run(self, script: str, **values: Any) -> Any:
        """Run `script` (its last expression is the answer); `values` are on the `dukpy` object."""
        return self.interpreter().evaljs(script, **values)

    def run_on(self, table: str, row: Row, script: str, previous: Row | None = None) -> tuple[Row, bool]:
        """Run `script` with `current` on `row` (and `previous`): the row as the script left it, and
        whether it asked to abort."""
        prologue = (
            "var current = __positioned(dukpy.table, dukpy.row);\n"
            "var previous = dukpy.previous ? __positioned(dukpy.table, dukpy.previous) : null;\n"
            "var action = {setRedirectURL: function (r) { call_python('action_redirect', "
            "r && r.getUniqueValue ? r.getUniqueValue() : String(r)); }};\n"
        )
        answer = self.run(
            prologue + script + "\n;({row: current._row, abort: current._abort})",
            table=table,
            row=dict(row),
            previous=dict(previous) if previous is not None else None,
        )
        return dict(answer["row"]), bool(answer["abort"])

    def ui_action(self, name: str, sys_id: str) -> None:
        """Press the UI action on the record, as the session's user (its condition must hold)."""
        action = self.record("sys_ui_action", name)
        row = self.get(action["table"], sys_id)
        assert self.condition_holds(action["table"], action, row), f"{name} is not offered on {sys_id}"
        self.run_on(action["table"], row, action["script"])

    def condition_holds(self, table: str, record: Row, row: Row) -> bool:
        """A business rule's or UI action's condition (a script expression) holds for `row`."""
        if not record.get("condition"):
            return True
        script = f"var current = __positioned(dukpy.table, dukpy.row);\n!!({record['condition']}\n)"
        return bool(self.run(script, table=table, row=row))

    def run_job(self, name: str) -> None:
        """Run a scheduled script job now (as the system, like a scheduled job without Run as)."""
        job = self.record("sysauto_script", name)
        self.run(job["script"])

    # ------------------------------------------------------------ GlideRecord's backend

    def _check_table(self, table: str) -> None:
        if table not in self.schema:
            raise ValueError(f"no table {table} on this instance")

    def _check_field(self, table: str, name: str) -> None:
        if name not in self.schema[table]:
            raise ValueError(f"{table} has no field {name}")

    def get(self, table: str, sys_id: str) -> Row:
        with self._lock:
            return dict(self.tables[table][sys_id])

    def query(self, table: str, conditions: list[list[str]], limit: int = 0) -> list[Row]:
        self._check_table(table)
        with self._lock:
            found = []
            for row in self.tables.get(table, {}).values():
                if all(self._holds(table, row, name, op, value) for name, op, value in conditions):
                    found.append(dict(row))
            found.sort(key=lambda r: r.get("sys_created_on", ""))
            return found[:limit] if limit else found

    def _holds(self, table: str, row: Row, name: str, op: str, value: str, old: Row | None = None) -> bool:
        self._check_field(table, name)
        have = row.get(name, "")
        if op == "=":
            return have == value
        if op == "!=":
            return have != value
        if op == "IN":
            return have in value.split(",")
        if op == "ISEMPTY":
            return have == ""
        if op == "ISNOTEMPTY":
            return have != ""
        if op == "VALCHANGES":
            return old is not None and old.get(name, "") != have
        raise ValueError(f"the stand-in does not know the query operator {op!r}")

    def encoded_query_holds(self, table: str, query: str, row: Row, old: Row | None) -> bool:
        terms = [t for t in query.split("^") if t and t != "EQ"]
        for term in terms:
            found = _TERM.match(term)
            if found is None:
                raise ValueError(f"the stand-in cannot read the encoded query term {term!r}")
            name, op, value = found.groups()
            if not self._holds(table, row, name, op, value, old):
                return False
        return True

    def insert(self, table: str, **values: str) -> str:
        return self.write(table, None, values)

    def write(self, table: str, sys_id: str | None, changes: dict[str, str]) -> str:
        """Insert (sys_id None) or update a record: before rules, the write, after rules."""
        self._check_table(table)
        for name in changes:
            self._check_field(table, name)
        with self._lock:
            old = dict(self.tables[table][sys_id]) if sys_id is not None else None
            row: Row = {name: "" for name in self.schema[table]}
            row.update(old or {})
            row.update(changes)
            if old is None:
                row["sys_id"] = uuid.uuid4().hex
                row["sys_created_on"] = f"{next(self._numbers):012d}"
                if table == "change_request" and not row.get("number"):
                    row["number"] = f"CHG{int(row['sys_created_on']):07d}"
            event = "insert" if old is None else "update"
            for rule in self._rules(table, "before", event, row, old):
                row, abort = self.run_on(table, row, rule["script"], old)
                if abort:
                    return row["sys_id"]
            self.tables.setdefault(table, {})[row["sys_id"]] = row
            for rule in self._rules(table, "after", event, row, old):
                self.run_on(table, row, rule["script"], old)
            return row["sys_id"]

    def _rules(self, table: str, when: str, event: str, row: Row, old: Row | None) -> list[Row]:
        rules = [
            r
            for r in self.tables.get("sys_script", {}).values()
            if r["collection"] == table
            and r["active"] == "true"
            and r["when"] == when
            and r[f"action_{event}"] == "true"
        ]
        rules.sort(key=lambda r: int(r.get("order") or 100))
        return [r for r in rules if self.encoded_query_holds(table, r.get("filter_condition", ""), row, old)]

    # ------------------------------------------------------------ the Table API, as the callback account

    def table_api_update(
        self, table: str, sys_id: str, fields: dict[str, Any], roles: tuple[str, ...]
    ) -> None:
        """A PATCH by a user with `roles`: what the access controls grant is written, as that user."""
        with self._lock:
            row = self.get(table, sys_id)
            allowed = {}
            for name, value in fields.items():
                if self.granted(table, name, "write", row, roles):
                    allowed[name] = "" if value is None else str(value)
                else:
                    self.denied.append(f"write {table}.{name}")
            with self.session("callback", *roles):
                self.write(table, sys_id, allowed)

    def granted(self, table: str, name: str | None, operation: str, row: Row, roles: tuple[str, ...]) -> bool:
        """The installed access controls grant `operation` on the table and (when named) the field."""
        names = [table] if name is None else [table, f"{table}.{name}"]
        return all(self._acl_grants(acl, operation, row, roles) for acl in names)

    def _acl_grants(self, acl_name: str, operation: str, row: Row, roles: tuple[str, ...]) -> bool:
        bound = {
            link["sys_security_acl"]: self.tables["sys_user_role"][link["sys_user_role"]]["name"]
            for link in self.tables.get("sys_security_acl_role", {}).values()
        }
        table = acl_name.split(".", 1)[0]
        for acl in self.tables.get("sys_security_acl", {}).values():
            if (acl["name"], acl["operation"], acl["active"]) != (acl_name, operation, "true"):
                continue
            if bound.get(acl["sys_id"]) in roles and self.encoded_query_holds(
                table, acl.get("condition", ""), row, None
            ):
                return True
        return False

    # ------------------------------------------------------------ the other stand-ins' backends

    def _has_role(self, role: str) -> bool:
        return self.current_session.has_role(role)

    def _property(self, name: str) -> str | None:
        for row in self.tables.get("sys_properties", {}).values():
            if row["name"] == name:
                return row.get("value") or None
        return None

    def _rest_records(self, name: str, method: str) -> tuple[Row, Row]:
        messages = [r for r in self.tables.get("sys_rest_message", {}).values() if r["name"] == name]
        if len(messages) != 1:
            raise ValueError(f"no REST message {name!r}")
        functions = [
            r
            for r in self.tables.get("sys_rest_message_fn", {}).values()
            if r["rest_message"] == messages[0]["sys_id"] and r["function_name"] == method
        ]
        if len(functions) != 1:
            raise ValueError(f"REST message {name!r} has no HTTP method {method!r}")
        return messages[0], functions[0]

    def _rest_message(self, name: str, method: str) -> None:
        self._rest_records(name, method)

    def _rest_execute(
        self, name: str, method: str, variables: dict[str, str], headers: dict[str, str], body: str | None
    ) -> dict[str, Any]:
        message, function = self._rest_records(name, method)
        endpoint = function.get("rest_endpoint") or message["rest_endpoint"]
        unset = [v for v in _VARIABLE.findall(endpoint) if v not in variables]
        if unset:
            raise ValueError(f"{name} [{method}]: no value for ${{{'}, ${'.join(unset)}}} in {endpoint}")
        url = _VARIABLE.sub(lambda m: variables[m.group(1)], endpoint)
        sent = {
            h["name"]: h["value"]
            for h in self.tables.get("sys_rest_message_headers", {}).values()
            if h["rest_message"] == message["sys_id"]
        }
        sent.update(headers)
        verb = function["http_method"].upper()
        try:
            answer = requests.request(
                verb, url, data=body.encode() if body is not None else None, headers=sent, timeout=15
            )
        except requests.RequestException as exc:
            self.sent.append(Sent(verb, url, sent, body, 0))
            return {"status": 0, "body": "", "headers": {}, "error": f"{type(exc).__name__}: {exc}"}
        self.sent.append(Sent(verb, url, sent, body, answer.status_code))
        return {
            "status": answer.status_code,
            "body": answer.text,
            "headers": dict(answer.headers),
            "error": "",
        }


def generate_mac(key: str, algorithm: str, data: str) -> str:
    """GlideCertificateEncryption.generateMac as documented: a Base64 key, the algorithm's name, the
    data; the MAC in Base64. How the platform turns `data` into bytes is not documented: refuse what
    would depend on it."""
    digest = _MACS.get(algorithm)
    if digest is None:
        raise ValueError(f"generateMac: unknown algorithm {algorithm!r}")
    raw_key = base64.b64decode(key, validate=True)
    try:
        raw = data.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("generateMac was given non-ASCII data: its bytes depend on the platform") from None
    return base64.b64encode(hmac.new(raw_key, raw, digest).digest()).decode()
