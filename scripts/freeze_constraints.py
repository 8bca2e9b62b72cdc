"""Write ``constraints.txt``: the exact version of every package that ``lightning_distill[test,docs]``
pulls in, as installed in this environment. Run it after the test suite passes, so the file
records an environment the suite passed with:

    python scripts/freeze_constraints.py            # -> constraints.txt
    pip install torch==2.13.0 && pip install -c constraints.txt -e ".[test]"

Only the project's own dependency closure is written (not whatever else the environment
holds), found by walking the installed packages' requirements with their markers and extras.
"""

from __future__ import annotations

import argparse
import platform
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "lightning_distill"
EXTRAS = ("test", "docs")


def closure(project: str, extras: tuple[str, ...]) -> dict[str, str]:
    """Canonical name -> installed version of every package ``project[extras]`` needs."""
    found: dict[str, str] = {}
    pending: list[tuple[str, frozenset[str]]] = [(project, frozenset(extras))]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, wanted = pending.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement whose marker excludes this platform was not installed
        key = canonicalize_name(dist.metadata["Name"])
        if key != canonicalize_name(project):
            # without a local label (torch's "+cpu"): "==2.13.0" admits 2.13.0+cpu and PyPI's 2.13.0
            found[key] = Version(dist.version).public
        for line in dist.requires or []:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "constraints.txt")
    args = parser.parse_args()
    pins = closure(PROJECT, EXTRAS)
    header = [
        f"# Exact versions the test suite last passed with: {PROJECT}[{','.join(EXTRAS)}] on Python "
        f"{platform.python_version()}, {platform.system()} {platform.machine()}.",
        '# Install with: pip install torch==2.13.0 && pip install -c constraints.txt -e ".[test]"',
        "# Regenerate after a passing suite: python scripts/freeze_constraints.py",
    ]
    args.out.write_text("\n".join(header + [f"{name}=={version}" for name, version in sorted(pins.items())]) + "\n")
    print(f"{len(pins)} packages -> {args.out}", file=sys.stderr)
    print(f"result: packages={len(pins)} file={args.out.name}")


if __name__ == "__main__":
    main()
