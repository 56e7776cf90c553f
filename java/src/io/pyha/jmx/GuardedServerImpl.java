package io.pyha.jmx;

import java.io.IOException;
import java.rmi.server.RMIClientSocketFactory;
import java.rmi.server.RMIServerSocketFactory;
import java.security.Principal;
import java.util.Map;
import java.util.Set;
import javax.management.MBeanServer;
import javax.management.remote.JMXPrincipal;
import javax.management.remote.rmi.RMIConnection;
import javax.management.remote.rmi.RMIJRMPServerImpl;
import javax.security.auth.Subject;

/**
 * The RMI side of pyha's connector: each new connection, once authenticated, is bound to
 * an MBean server wrapped in a {@link Guard} for its user.
 *
 * <p>The JDK's connection object takes its MBean server from {@link #getMBeanServer()}
 * while {@link #makeClient} builds it; that is where the guard goes in. So the user is
 * known from the connection itself, not looked up in the access-control context of each
 * call (which JDK 17 without a security manager does not carry), and no connection ever
 * holds the unguarded server.
 */
final class GuardedServerImpl extends RMIJRMPServerImpl {
    private final Set<String> users;
    private final ThreadLocal<Subject> connecting = new ThreadLocal<>();
    private final ThreadLocal<Boolean> building = new ThreadLocal<>();

    GuardedServerImpl(int port, RMIClientSocketFactory clients, RMIServerSocketFactory sockets,
                      Map<String, ?> env, Set<String> users) throws IOException {
        super(port, clients, sockets, env);
        this.users = Set.copyOf(users);
    }

    @Override
    protected RMIConnection makeClient(String connectionId, Subject subject)
            throws IOException {
        building.set(Boolean.TRUE);
        connecting.set(subject);
        try {
            return super.makeClient(connectionId, subject);
        } finally {
            building.remove();
            connecting.remove();
        }
    }

    @Override
    public synchronized MBeanServer getMBeanServer() {
        MBeanServer server = super.getMBeanServer();
        if (building.get() == null || server == null) {
            return server;
        }
        return Guard.wrap(server, user(connecting.get()), users);
    }

    private static String user(Subject subject) {
        if (subject == null) {
            return null;
        }
        Set<JMXPrincipal> names = subject.getPrincipals(JMXPrincipal.class);
        if (names.size() != 1) {
            return null;
        }
        Principal only = names.iterator().next();
        return only.getName();
    }
}
