#!/bin/sh
# EMULATOR (pyha tests), not WebLogic: as a domain's startManagedWebLogic.sh, takes
# SERVER_NAME and ADMIN_URL as arguments and runs startWebLogic.sh for that server.
if [ $# -lt 1 ]; then
    echo "usage: $0 SERVER_NAME [ADMIN_URL]" >&2
    exit 1
fi
SERVER_NAME=$1
ADMIN_URL=${2:-}
export SERVER_NAME ADMIN_URL
exec "$(dirname "$0")/startWebLogic.sh"
