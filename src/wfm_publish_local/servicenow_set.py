"""One ServiceNow update set from servicenow/: what `make servicenow` builds and an admin imports.

servicenow/ holds the integration as files, one per record, in ServiceNow's own record shape (a
`record_update` holding the record and, for an access control, the role it requires):

    servicenow/sys_script_include/WfmPublish.xml      -> the sys_script_include record WfmPublish

The directory names the table and the file name (less `.xml`) the record, and together they are the
record's key. The files carry what a person decides (names, scripts, conditions); the build adds what
ServiceNow records itself (sys_id, sys_update_name, sys_scope, created/updated stamps) and resolves
references written as `<rest_message ref="sys_rest_message/wfm-publish"/>` to the referenced record's
sys_id and display value. A sys_id is derived from the record's key, so a rebuild gives the same
sys_ids and a second import updates the records the first one created.

The output is ServiceNow's update set XML, as System Update Sets > Retrieved Update Sets > Import Update
Set from XML takes it (and as Export to XML writes it): an `unload` document holding one
`sys_remote_update_set` (state `loaded`) and one `sys_update_xml` per record, whose `payload` is the
record's XML. Every script is checked first (ES5 only: wfm_publish_local.es5); any finding fails the
build. The same input and date give the same bytes.

    python -m wfm_publish_local.servicenow_set [--output build/servicenow/wfm-publish-update-set.xml]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "servicenow"
OUTPUT = ROOT / "build" / "servicenow" / "wfm-publish-update-set.xml"
# The stamp every record carries unless --date says otherwise: the same input builds the same bytes.
FIXED_DATE = "2024-01-01 00:00:00"
AUTHOR = "wfm-publish"
SET_NAME = "wfm-publish"

# Each table's label (the update's `type`), the field naming a record, and its scripts: (field, is an
# expression). Every table a file may use is here: a file for any other table fails the build.
TABLES: dict[str, tuple[str, str, tuple[tuple[str, bool], ...]]] = {
    "sys_user_role": ("Role", "name", ()),
    "sys_dictionary": ("Dictionary", "element", ()),
    "sys_properties": ("System Property", "name", ()),
    "sys_security_acl": ("Access Control", "name", (("script", False),)),
    "sys_security_acl_role": ("Access Control Role", "sys_security_acl", ()),
    "sys_script_include": ("Script Include", "name", (("script", False),)),
    "sys_rest_message": ("REST Message", "name", ()),
    "sys_rest_message_headers": ("HTTP Header", "name", ()),
    "sys_rest_message_fn": ("HTTP Method", "function_name", ()),
    "sys_rest_message_fn_parameters": ("Variable Substitution", "name", ()),
    "sys_script": ("Business Rule", "name", (("script", False), ("condition", True))),
    "sys_ui_action": ("UI Action", "name", (("script", False), ("condition", True))),
    "sysauto_script": ("Scheduled Script Execution", "name", (("script", False), ("condition", False))),
}
ORDER = list(TABLES)  # roles and fields first, what uses them after: the order the set is committed in
# The table a record applies to (the update's `table`), where the record names one.
_APPLIES_TO = {"sys_script": "collection", "sys_ui_action": "table", "sys_dictionary": "name"}


class BuildError(Exception):
    """The files do not make an update set: each problem says which file and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Record:
    key: str  # "sys_script_include/WfmPublish": the file's path under servicenow/, less .xml
    path: Path
    update: ET.Element  # the file's record_update
    table: str
    sys_id: str

    @property
    def row(self) -> ET.Element:
        return self.update[0]

    def field(self, name: str) -> str:
        return (self.row.findtext(name) or "").strip()

    @property
    def display(self) -> str:
        if self.table == "sys_security_acl_role":  # "<access control> <role>", as the list shows it
            refs = [self.row.find("sys_security_acl"), self.row.find("sys_user_role")]
            names = [e.get("display_value") or e.get("ref", "").split("/")[-1] for e in refs if e is not None]
            return " ".join(n for n in names if n)
        return self.field(TABLES[self.table][1]) or self.row.get(TABLES[self.table][1], "")

    @property
    def update_name(self) -> str:
        row = self.row
        if self.table == "sys_dictionary":
            return f"sys_dictionary_{row.get('table')}_{row.get('element')}"
        return f"{self.table}_{self.sys_id}"

    @property
    def target(self) -> str:
        if self.table == "sys_dictionary":
            return f"{self.row.get('table')}.{self.row.get('element')}"
        return self.display

    @property
    def applies_to(self) -> str:
        """The table the record works on (a business rule's, a UI action's, a field's), else ''."""
        field = _APPLIES_TO.get(self.table)
        return self.field(field) if field else ""

    def scripts(self) -> list[tuple[str, str, bool]]:
        """(field, source, is an expression) for each script field with a value."""
        return [(f, self.field(f), e) for f, e in TABLES[self.table][2] if self.field(f)]


def sys_id_for(key: str) -> str:
    """A record's sys_id: 32 hex digits derived from its key, as stable as the name."""
    return hashlib.sha256(f"wfm-publish/{key}".encode()).hexdigest()[:32]


def java_hash(text: str) -> int:
    """Java's String.hashCode, as ServiceNow computes `payload_hash` (over UTF-16 code units)."""
    value = 0
    units = text.encode("utf-16-be")
    for i in range(0, len(units), 2):
        value = (31 * value + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def read_records(source: Path = SOURCE) -> list[Record]:
    """Every record file under `source`, in commit order; BuildError names each bad file."""
    records: list[Record] = []
    problems: list[str] = []
    for path in sorted(source.glob("*/*.xml")):
        key = path.relative_to(source).with_suffix("").as_posix()
        try:
            update = ET.parse(path).getroot()  # noqa: S314 - the repository's own record files
        except ET.ParseError as exc:
            problems.append(f"{key}: not XML: {exc}")
            continue
        table = path.parent.name
        if update.tag != "record_update" or len(update) == 0:
            problems.append(f"{key}: the file must hold one <record_update> with the record in it")
        elif update[0].tag != table:
            problems.append(f"{key}: the record is a {update[0].tag}, in the directory {table}")
        elif table not in TABLES:
            problems.append(f"{key}: {table} is not a table the build knows ({', '.join(TABLES)})")
        else:
            records.append(Record(key, path, update, table, sys_id_for(key)))
    strays = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if _stray(source, p))
    problems += [f"{stray}: not a record file (servicenow/<table>/<name>.xml)" for stray in strays]
    if problems:
        raise BuildError(problems)
    return sorted(records, key=lambda r: (ORDER.index(r.table), r.key))


def _stray(source: Path, path: Path) -> bool:
    if path.is_dir():
        return path.parent != source
    return path.suffix != ".xml" or path.parent.parent != source


def script_problems(records: list[Record]) -> list[str]:
    """Every script in every record, checked at ES5 level."""
    from wfm_publish_local.es5 import es5_problems

    problems: list[str] = []
    for record in records:
        for field, source, expression in record.scripts():
            problems += es5_problems(source, f"{record.key}.{field}", expression=expression)
    return problems


def build(source: Path = SOURCE, date: str = FIXED_DATE, name: str | None = None) -> str:
    """The update set XML for the records under `source`: checked, resolved, deterministic."""
    records = read_records(source)
    problems = script_problems(records)
    by_key = {record.key: record for record in records}
    for record in records:
        problems += _resolve(record, by_key)
    if problems:
        raise BuildError(problems)
    set_name = name or f"{SET_NAME} {_version()}"
    set_id = sys_id_for(f"sys_remote_update_set/{set_name}")
    unload = ET.Element("unload", unload_date=date)
    unload.append(_remote_update_set(set_name, set_id, len(records), date))
    for record in records:
        unload.append(_update_xml(record, set_name, set_id, date))
    ET.indent(unload, space="")  # one element a line, as ServiceNow exports; values are untouched
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(unload, encoding="unicode") + "\n"


def _resolve(record: Record, by_key: dict[str, Record]) -> list[str]:
    """Fill in the system fields and the references of each row in the record's file."""
    problems: list[str] = []
    for index, row in enumerate(record.update):
        _compact(row)
        for element in row.iter():
            ref = element.attrib.pop("ref", None)
            if ref is None:
                continue
            target = by_key.get(ref)
            if target is None:
                problems.append(f"{record.key}: <{element.tag} ref={ref!r}> names no record file")
                continue
            element.text = target.sys_id
            element.set("display_value", target.display)
        row_id = record.sys_id if index == 0 else sys_id_for(f"{record.key}#{index}")
        _set(row, "sys_id", row_id)
        _set(row, "sys_class_name", row.tag)
    row = record.row
    for field, value in [
        ("sys_update_name", record.update_name),
        ("sys_name", record.target),
        ("sys_created_by", AUTHOR),
        ("sys_updated_by", AUTHOR),
        ("sys_mod_count", "0"),
    ]:
        _set(row, field, value)
    if row.find("sys_scope") is None:
        ET.SubElement(row, "sys_scope", display_value="Global").text = "global"
        ET.SubElement(row, "sys_package", display_value="Global", source="global").text = "global"
    return problems


def _compact(row: ET.Element) -> None:
    """Values as written, without the indentation around them."""
    for element in row.iter():
        if len(element):
            element.text = None
        elif element.text is not None:
            element.text = element.text.strip()
        element.tail = None


def _set(row: ET.Element, field: str, value: str) -> None:
    element = row.find(field)
    if element is None:
        element = ET.SubElement(row, field)
    if not (element.text or "").strip():
        element.text = value


def _stamp(row: ET.Element, date: str) -> None:
    for field in ("sys_created_on", "sys_updated_on"):
        _set(row, field, date)


def _payload(record: Record, date: str) -> str:
    record.update.text = None
    for row in record.update:
        _stamp(row, date)
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(record.update, encoding="unicode")


def _remote_update_set(name: str, set_id: str, count: int, date: str) -> ET.Element:
    remote = ET.Element("sys_remote_update_set", action="INSERT_OR_UPDATE")
    fields: list[tuple[str, str, dict[str, str]]] = [
        ("application", "global", {"display_value": "Global"}),
        ("application_name", "Global", {}),
        ("application_scope", "global", {}),
        ("description", f"wfm-publish for ServiceNow: {count} records (docs/servicenow.md)", {}),
        ("name", name, {}),
        ("origin_sys_id", "", {}),
        ("parent", "", {"display_value": ""}),
        ("release_date", "", {}),
        ("remote_sys_id", sys_id_for(f"sys_update_set/{name}"), {}),
        ("state", "loaded", {}),
        ("sys_class_name", "sys_remote_update_set", {}),
        ("sys_created_by", AUTHOR, {}),
        ("sys_created_on", date, {}),
        ("sys_id", set_id, {}),
        ("sys_mod_count", "0", {}),
        ("sys_updated_by", AUTHOR, {}),
        ("sys_updated_on", date, {}),
        ("update_set", "", {"display_value": ""}),
        ("update_source", "", {"display_value": ""}),
    ]
    for field, value, attributes in fields:
        ET.SubElement(remote, field, attributes).text = value
    return remote


def _update_xml(record: Record, set_name: str, set_id: str, date: str) -> ET.Element:
    payload = _payload(record, date)
    digest = java_hash(payload)
    guid = sys_id_for(f"{record.key}@{digest}")
    update = ET.Element("sys_update_xml", action="INSERT_OR_UPDATE")
    fields: list[tuple[str, str, dict[str, str]]] = [
        ("action", "INSERT_OR_UPDATE", {}),
        ("application", "global", {"display_value": "Global"}),
        ("category", "customer", {}),
        ("comments", "", {}),
        ("name", record.update_name, {}),
        ("payload", payload, {}),
        ("payload_hash", str(digest), {}),
        ("remote_update_set", set_id, {"display_value": set_name}),
        ("replace_on_upgrade", "false", {}),
        ("sys_created_by", AUTHOR, {}),
        ("sys_created_on", date, {}),
        ("sys_id", sys_id_for(f"sys_update_xml/{record.key}"), {}),
        ("sys_mod_count", "0", {}),
        ("sys_updated_by", AUTHOR, {}),
        ("sys_updated_on", date, {}),
        ("table", record.applies_to, {}),
        ("target_name", record.target, {}),
        ("type", TABLES[record.table][0], {}),
        ("update_domain", "global", {}),
        ("update_guid", guid, {}),
        ("update_guid_history", f"{guid}:{digest}", {}),
        ("update_set", "", {"display_value": ""}),
        ("view", "", {}),
    ]
    for field, value, attributes in fields:
        ET.SubElement(update, field, attributes).text = value
    return update


def _version() -> str:
    try:
        return metadata.version("wfm-publish")
    except metadata.PackageNotFoundError:
        return "dev"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="servicenow_set", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="the record files (servicenow/)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where the update set is written")
    parser.add_argument("--date", default=FIXED_DATE, help="the records' stamp (yyyy-MM-dd HH:mm:ss)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", args.date):
        parser.error(f"--date must be yyyy-MM-dd HH:mm:ss (ServiceNow's form), not {args.date!r}")
    try:
        text = build(args.source, args.date)
    except BuildError as failed:
        print(f"no update set built: {len(failed.problems)} problem(s)", file=sys.stderr)
        for problem in failed.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    count = text.count("<sys_update_xml ")
    print(f"{args.output}: {count} records, every script ES5")
    print("Import it under System Update Sets > Retrieved Update Sets > Import Update Set from XML,")
    print("then Preview Update Set and Commit Update Set (docs/servicenow.md).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
