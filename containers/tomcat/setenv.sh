# Sourced by catalina.sh: remote JMX on one port for both the registry and RMI, without
# authentication (pyha's test image; pyha.testing.fixtures.local.jmx_options makes the same).
#   JMX_PORT      the port (default 9010)
#   JMX_HOSTNAME  the address clients reach it at; the RMI stubs carry it (default 127.0.0.1)
#   JMX_BIND      the local address to listen on (default: every address)
JMX_PORT=${JMX_PORT:-9010}
CATALINA_OPTS="${CATALINA_OPTS:-} -Dcom.sun.management.jmxremote\
 -Dcom.sun.management.jmxremote.port=$JMX_PORT\
 -Dcom.sun.management.jmxremote.rmi.port=$JMX_PORT\
 -Dcom.sun.management.jmxremote.authenticate=false\
 -Dcom.sun.management.jmxremote.ssl=false\
 -Djava.rmi.server.hostname=${JMX_HOSTNAME:-127.0.0.1}"
if [ -n "${JMX_BIND:-}" ]; then
    CATALINA_OPTS="$CATALINA_OPTS -Dcom.sun.management.jmxremote.host=$JMX_BIND"
fi
export CATALINA_OPTS
