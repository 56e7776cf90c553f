#!/opt/pyha/bin/python
"""pyha-init-key PATH: make the cluster key at PATH once; an existing good key is kept.

Run as the pyha user into a volume, the key is owned by that user with mode 600, as
`pyha server` wants it, and never exists on the Docker host's file system or in an image.
"""

from __future__ import annotations

import sys
from pathlib import Path


def ensure_key(path: Path) -> str:
    """Create the key unless one is there; load it either way (refusing a bad one)."""
    from pyha.membership.keys import generate_key, load_key

    made = not path.exists()
    if made:
        generate_key(path)
    load_key(path)
    return f"{'made a new' if made else 'kept the'} cluster key at {path}"


def main(argv: list[str]) -> int:
    """PATH."""
    if len(argv) != 1:
        print("usage: pyha-init-key PATH", file=sys.stderr)
        return 2
    from pyha.errors import PyhaError

    try:
        print(ensure_key(Path(argv[0])))
    except PyhaError as exc:
        print(f"pyha-init-key: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
