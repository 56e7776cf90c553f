"""Run a command inside a cgroup from its first instruction: `python -m pyha.fencing.enter`."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from pyha.fencing.cgroup import place_in_cgroup
from pyha.fencing.device import FenceError

USAGE = "usage: python -m pyha.fencing.enter CGROUP -- COMMAND [ARG...]"


def main(args: Sequence[str]) -> int:
    """Join cgroup args[0], then replace this process with the command after `--`."""
    if len(args) < 3 or args[1] != "--":
        print(USAGE, file=sys.stderr)
        return 2
    try:
        place_in_cgroup(args[0], os.getpid())
    except FenceError as exc:
        print(exc, file=sys.stderr)
        return 1
    # Exec, not spawn: the command keeps this pid, already inside the cgroup, so nothing
    # it forks can escape before the cgroup holds it.
    os.execvp(args[2], list(args[2:]))  # noqa: S606 - argv runs directly, never via a shell


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
