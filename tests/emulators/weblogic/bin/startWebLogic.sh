#!/bin/sh
# EMULATOR (pyha tests), not WebLogic: starts the emulated server the way a domain's
# bin/startWebLogic.sh starts WebLogic: source setDomainEnv.sh, run java in the
# foreground from DOMAIN_HOME with -Dweblogic.Name=${SERVER_NAME}.
DOMAIN_HOME=$(cd "$(dirname "$0")/.." && pwd)
. "${DOMAIN_HOME}/bin/setDomainEnv.sh"
SERVER_NAME=${SERVER_NAME:-AdminServer}
cd "${DOMAIN_HOME}" || exit 1
echo "Starting the WebLogic EMULATOR: server ${SERVER_NAME}, domain ${DOMAIN_HOME}"
"${JAVA_HOME}/bin/java" -Xshare:auto -XX:TieredStopAtLevel=1 -Xmx64m \
    -Dweblogic.Name="${SERVER_NAME}" -Djava.rmi.server.hostname=127.0.0.1 \
    -cp "${EMULATOR_CLASSPATH}" io.pyha.emulators.weblogic.Emulator "${DOMAIN_HOME}"
status=$?
echo "the WebLogic EMULATOR exited with status ${status}"
exit ${status}
