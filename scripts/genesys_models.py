"""Write docs/genesys-models.json: the official response models of every Genesys route we touch.

`make genesys-models` runs this. It installs the official SDK (PureCloudPlatformClientV2) into a
throwaway venv under /tmp, asks it which model each route answers (the `response_type` its API
module passes to `call_api`) and which model each notification topic carries (the SDK repository's
notificationMappings.json, as copied into TOPICS below), then writes every model's wire fields and
types, recursively (each model class's `swagger_types` and `attribute_map`).

The routes are the simulator's `/api/v2` routes (which include every route the client calls: the
contract test checks that). Only this script needs the network; the tests read the committed file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "genesys-models.json"
SDK = "PureCloudPlatformClientV2"
SDK_VERSION = "269.0.0"

# topic -> eventBody model, from notificationMappings.json in MyPureCloud/platform-client-sdk-python
# (the installed package does not ship the mapping). The query result topic is per *user*.
TOPICS = {
    "v2.workforcemanagement.businessunits.{id}.schedules": "WfmBuScheduleTopicBuScheduleNotification",
    "v2.workforcemanagement.users.{id}.schedules.query": (
        "WfmBuScheduleQueryResultTopicBuScheduleSearchResultNotification"
    ),
    "v2.telephony.providers.edges.{id}": "EdgeChangeTopicEdge",
    "v2.telephony.providers.edges.{id}.softwareupdate": "EdgeSoftwareUpdateTopicDomainEdgeSoftwareUpdate",
    "v2.telephony.providers.edges.trunks.{id}": "TrunkInstanceTopicTrunk",
}

# Models no route names as its answer: the error body every failing call carries.
EXTRA_MODELS = ["ErrorBody"]

# Runs inside the SDK's venv: reads routes and topic models on stdin, prints the answer as JSON.
INTROSPECT = r"""
import importlib, json, pkgutil, re, sys
import PureCloudPlatformClientV2 as sdk
from PureCloudPlatformClientV2 import apis, models

wanted = json.load(sys.stdin)
norm = lambda path: re.sub(r"\{[^}]+\}", "{}", path)
answers = {}
for info in pkgutil.iter_modules(apis.__path__):
    source = importlib.util.find_spec(f"PureCloudPlatformClientV2.apis.{info.name}").origin
    text = open(source).read()
    for block in text.split("\n    def ")[1:]:
        path = re.search(r"resource_path = '([^']+)'", block)
        call = re.search(r"call_api\(resource_path, '(\w+)'.*?response_type=('?)([^,')]*)\2", block, re.S)
        if path and call:
            name = block.split("(", 1)[0]
            answers[f"{call.group(1)} {norm(path.group(1))}"] = (call.group(3) or None, f"{info.name}.{name}")

routes, operations, seen, queue = {}, {}, {}, []
for route in wanted["routes"]:
    method, path = route.split(" ", 1)
    found = answers.get(f"{method} {norm(path)}")
    if found is None:
        raise SystemExit(f"the SDK has no operation for {route}")
    routes[route], operations[route] = found
    queue.append(found[0])
queue += list(wanted["topics"].values()) + wanted["extra"]
names = lambda t: re.findall(r"[A-Za-z_][A-Za-z0-9_]*", t or "")
while queue:
    for name in names(queue.pop()):
        cls = getattr(models, name, None)
        if name in seen or not isinstance(cls, type):
            continue
        obj = cls()
        seen[name] = {obj.attribute_map[k]: obj.swagger_types[k] for k in obj.swagger_types}
        queue += list(obj.swagger_types.values())
print(json.dumps({"version": sdk.__version__ if hasattr(sdk, "__version__") else None,
                  "routes": routes, "operations": operations, "models": seen}))
"""


def project_routes() -> list[str]:
    """`METHOD /api/v2/...` for every public route the simulator serves."""
    sys.path[:0] = [str(ROOT / "layers" / "common" / "python"), str(ROOT / "src")]
    from wfm_publish_local.simulator import GenesysSimulator, parse_scenario

    raw = {"name": "routes", "businessUnits": [], "schedules": []}
    sim = GenesysSimulator(parse_scenario(raw))
    return sorted({r.label for r in sim._router.routes if r.template.startswith("/api/v2/")})


def sdk_python(where: Path, version: str) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    python = where / "bin" / "python"
    spec = f"{SDK}=={version}"
    subprocess.run([python, "-m", "pip", "install", "--quiet", spec], check=True)  # noqa: S603
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=SDK_VERSION, help="SDK version (default %(default)s)")
    parser.add_argument("--venv", type=Path, help="reuse this venv (default: a new one under /tmp)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genesys-sdk-") as scratch:
        python = (
            args.venv / "bin" / "python" if args.venv else sdk_python(Path(scratch) / "venv", args.version)
        )
        asked = json.dumps({"routes": project_routes(), "topics": TOPICS, "extra": EXTRA_MODELS})
        out = subprocess.run(  # noqa: S603
            [python, "-c", INTROSPECT], input=asked, capture_output=True, text=True, check=True
        )
        found = json.loads(out.stdout)
        version = subprocess.run(  # noqa: S603
            [python, "-m", "pip", "show", SDK], capture_output=True, text=True, check=True
        ).stdout
    installed = next(
        line.split(":", 1)[1].strip() for line in version.splitlines() if line.startswith("Version")
    )
    doc = {
        "about": "Official Genesys Cloud response models (scripts/genesys_models.py; do not edit by hand)",
        "sdk": {"package": SDK, "version": installed},
        "routes": found["routes"],
        "operations": found["operations"],
        "topics": TOPICS,
        "errors": EXTRA_MODELS[0],
        "models": dict(sorted(found["models"].items())),
    }
    args.output.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    sys.stderr.write(
        f"{args.output}: {len(doc['routes'])} routes, {len(TOPICS)} topics, {len(doc['models'])} models "
        f"from {SDK} {installed}\n"
    )


if __name__ == "__main__":
    main()
