"""`python -m pyha.resources.ocf_shims <tool> [args...]`: what the shim executables run."""

import sys

from pyha.resources.ocf_shims import main

sys.exit(main(sys.argv[1:]))
