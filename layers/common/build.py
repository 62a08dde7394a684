"""Build the CommonLayer as `sam build` ships it, with its bytecode compiled.

    python3.12 layers/common/build.py ARTIFACTS_DIR                        # sam build (Makefile)
    python layers/common/build.py ARTIFACTS_DIR --from-environment         # bench: offline, this Python

Lambda mounts the layer read-only at /opt, so a module without bytecode is compiled again at every
cold start and never kept. SAM's python builder unpacks wheels, which carry no bytecode: pydantic,
Powertools, requests and wfm_publish were compiled on each cold start (+200-275 ms of a first answer
here, docs/benchmark.md; more on a 256 MB function's share of a core). So the layer is built here:
the requirements as arm64 wheels, wfm_publish without any local cache, then every module compiled by
the runtime's own Python (`unchecked-hash`: the files never change once deployed, and zipping
rewrites their timestamps, which would invalidate timestamp-checked bytecode).
"""

from __future__ import annotations

import argparse
import compileall
import importlib.metadata
import py_compile
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
CORE = HERE / "python" / "wfm_publish"
RUNTIME = (3, 12)  # template.yaml: Runtime python3.12 (bytecode is specific to a minor version)
PLATFORM = "manylinux2014_aarch64"  # BuildArchitecture arm64


def requirement_names(text: str) -> list[str]:
    names = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            names.append(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0])
    return names


def install(target: Path) -> None:
    """The requirements as the runtime's wheels, for arm64, from the package registry."""
    subprocess.run(  # noqa: S603 - this interpreter's pip, with fixed arguments
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(target),
            "--platform", PLATFORM, "--implementation", "cp",
            "--python-version", ".".join(map(str, RUNTIME)), "--only-binary=:all:",
            "-r", str(REQUIREMENTS),
        ],
        check=True,
    )  # fmt: skip


def copy_installed(target: Path) -> None:
    """The requirements and their dependencies as this environment has them (offline, this platform)."""
    pending = requirement_names(REQUIREMENTS.read_text())
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        dist = importlib.metadata.distribution(name)
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        for file in dist.files or []:
            source = Path(str(dist.locate_file(file)))
            if "__pycache__" in file.parts or file.parts[0].endswith(".dist-info") or ".." in file.parts:
                continue
            if source.is_file():
                destination = target / file
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)
        for requirement in dist.requires or []:
            if "extra ==" not in requirement:
                pending.append(requirement_names(requirement.split(";", 1)[0])[0])


def build(artifacts: Path, *, from_environment: bool = False, bytecode: bool = True) -> Path:
    """The layer's python/ folder under `artifacts`, every module with its bytecode; returns it.

    `bytecode=False` ships it as SAM's python builder did (the cold-start benchmark measures both)."""
    if not from_environment and sys.version_info[:2] != RUNTIME:
        raise SystemExit(
            f"build the layer with Python {'.'.join(map(str, RUNTIME))} (the functions' runtime):"
            f" this is {sys.version.split()[0]}, and bytecode only loads on the Python that wrote it"
        )
    target = artifacts / "python"
    target.mkdir(parents=True, exist_ok=True)
    if from_environment:
        copy_installed(target)
    else:
        install(target)
    shutil.copytree(CORE, target / CORE.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if not bytecode:
        return target
    compiled = compileall.compile_dir(
        str(target),
        quiet=1,
        force=True,
        workers=0,
        # The path each module reports is where Lambda mounts it, not this machine's build folder:
        # the same sources give the same layer wherever it is built.
        stripdir=str(target),
        prependdir="/opt/python",
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not compiled:
        raise SystemExit(f"a module of the layer in {target} does not compile")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("artifacts", type=Path, help="the layer's root (sam build's ARTIFACTS_DIR)")
    parser.add_argument(
        "--from-environment",
        action="store_true",
        help="copy the requirements from this environment instead of pip (offline; this platform)",
    )
    args = parser.parse_args()
    build(args.artifacts, from_environment=args.from_environment)


if __name__ == "__main__":
    main()
