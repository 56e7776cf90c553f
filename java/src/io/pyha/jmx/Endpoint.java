package io.pyha.jmx;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.rmi.AlreadyBoundException;
import java.rmi.NoSuchObjectException;
import java.rmi.registry.LocateRegistry;
import java.rmi.registry.Registry;
import java.rmi.server.RMIClientSocketFactory;
import java.rmi.server.UnicastRemoteObject;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import javax.management.remote.JMXConnectorServer;
import javax.management.remote.JMXServiceURL;
import javax.management.remote.rmi.RMIConnectorServer;
import javax.net.ssl.SSLContext;
import javax.rmi.ssl.SslRMIClientSocketFactory;

/**
 * pyha's JMX RMI connector: the platform MBean server on 127.0.0.1, one port for the RMI
 * registry and the connector, every user authenticated by the JDK's password-file login
 * ({@code jmx.remote.x.password.file}), every call passed through {@link Guard}, and TLS
 * on both the registry and the connector when an {@link SSLContext} is given.
 *
 * <p>There is no way to start it without a password file: an open JMX port would let
 * any local user drive the cluster.
 */
public final class Endpoint {
    /** The name the connector's stub is bound under in the registry (as the JDK's agent). */
    public static final String NAME = "jmxrmi";

    private final JMXConnectorServer server;
    private final Registry registry;
    private final JMXServiceURL url;

    private Endpoint(JMXConnectorServer server, Registry registry, JMXServiceURL url) {
        this.server = server;
        this.registry = registry;
        this.url = url;
    }

    /**
     * Start the connector on {@code port}.
     *
     * @param passwordFile   the JDK's format: one {@code user password} per line
     * @param users          the users pyha maps to a role; everybody else is refused
     * @param tls            null for plain TCP (loopback only), or the server's TLS
     * @param needClientAuth with TLS: clients must present a certificate {@code tls} trusts
     */
    public static Endpoint start(int port, String passwordFile, Set<String> users,
                                 SSLContext tls, boolean needClientAuth) throws IOException {
        Objects.requireNonNull(passwordFile, "a password file is required");
        LoopbackSockets sockets =
            tls == null ? LoopbackSockets.plain() : LoopbackSockets.tls(tls, needClientAuth);
        RMIClientSocketFactory clients = tls == null ? null : new SslRMIClientSocketFactory();
        Registry registry = LocateRegistry.createRegistry(port, clients, sockets);
        Map<String, Object> env = new HashMap<>();
        env.put("jmx.remote.x.password.file", passwordFile);
        JMXConnectorServer server = null;
        try {
            GuardedServerImpl rmi = new GuardedServerImpl(port, clients, sockets, env, users);
            // No JNDI path in this address: the stub is bound into the registry object
            // directly, so the server never connects to its own (TLS) registry as a client.
            server = new RMIConnectorServer(new JMXServiceURL("rmi", "127.0.0.1", port), env,
                                            rmi, ManagementFactory.getPlatformMBeanServer());
            server.start();
            registry.bind(NAME, rmi.toStub());
        } catch (IOException | RuntimeException | AlreadyBoundException exc) {
            if (server != null && server.isActive()) {
                server.stop();
            }
            UnicastRemoteObject.unexportObject(registry, true);
            throw exc instanceof IOException io ? io : new IOException(exc);
        }
        JMXServiceURL url = new JMXServiceURL(
            "service:jmx:rmi://127.0.0.1:" + port + "/jndi/rmi://127.0.0.1:" + port + "/" + NAME);
        return new Endpoint(server, registry, url);
    }

    /** The address clients connect to (jconsole's "Remote Process"). */
    public String url() {
        return url.toString();
    }

    /** Stop accepting calls, close every connection and free the port. */
    public void stop() throws IOException {
        try {
            server.stop();
        } finally {
            try {
                UnicastRemoteObject.unexportObject(registry, true);
            } catch (NoSuchObjectException gone) {
                // already unexported
            }
        }
    }
}
