"""Run the scheduler scenarios and compare each with its expected files, or rewrite them.

    python -m tests.scenarios.run            # compare every scenario, list the differences
    python -m tests.scenarios.run --update   # rewrite the expected files (review the diff!)
    python -m tests.scenarios.run NAME ...   # only these scenarios
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tomllib
from pathlib import Path

from pyha.scheduler import plan
from pyha.scheduler.explain import format_plan, format_scores
from pyha.scheduler.inputs import SchedulerInput

ROOT = Path(__file__).parent
INDEX = ROOT / "index.txt"
KINDS = ("summary", "scores")


def index() -> dict[str, str]:
    """Scenario name -> its one-line description, in the index's order."""
    entries = {}
    for line in INDEX.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, description = line.partition(":")
            entries[name.strip()] = description.strip()
    return entries


def load(name: str) -> SchedulerInput:
    """The input of scenario `name`."""
    path = ROOT / "input" / f"{name}.toml"
    return SchedulerInput.from_mapping(tomllib.loads(path.read_text()), str(path))


def render(name: str) -> dict[str, str]:
    """What the scheduler makes of scenario `name`: the summary and the score table."""
    data = load(name)
    result = plan(data.config, data.view, data.now)
    head = f"# {name}: {data.description}\n"
    return {"summary": head + format_plan(result), "scores": head + format_scores(result)}


def expected_path(kind: str, name: str) -> Path:
    """Where the expected `kind` file of scenario `name` lives."""
    return ROOT / kind / f"{name}.txt"


def differences(name: str) -> list[str]:
    """A unified diff per expected file that differs from what the scheduler says now."""
    out = []
    for kind, text in render(name).items():
        path = expected_path(kind, name)
        old = path.read_text() if path.exists() else ""
        if old != text:
            out.append("".join(difflib.unified_diff(
                old.splitlines(keepends=True), text.splitlines(keepends=True),
                f"{path.relative_to(ROOT)} (expected)", f"{path.relative_to(ROOT)} (now)")))
    return out


def update(name: str) -> bool:
    """Rewrite the expected files of scenario `name`; True if any changed."""
    changed = False
    for kind, text in render(name).items():
        path = expected_path(kind, name)
        path.parent.mkdir(exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed = True
    return changed


def main(argv: list[str] | None = None) -> int:
    """Compare (or with --update, rewrite) the scenarios; exit 1 when any differs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite the expected files")
    parser.add_argument("names", nargs="*", help="scenarios to run (default: all)")
    args = parser.parse_args(argv)
    names = args.names or list(index())
    failed = 0
    for name in names:
        if args.update:
            if update(name):
                print(f"updated {name}")
            continue
        diffs = differences(name)
        failed += bool(diffs)
        for diff in diffs:
            print(diff)
    print(f"{len(names)} scenarios, {failed} differ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
