package io.pyha.jmx;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.Objects;
import java.util.Set;
import javax.management.MBeanServer;
import javax.management.MalformedObjectNameException;
import javax.management.ObjectName;

/**
 * What one authenticated JMX connection may do with the JVM's MBean server: read any
 * MBean, change only {@code io.pyha:type=Cluster}, and nothing at all unless its user is
 * one pyha maps to a role.
 *
 * <p>The platform MBean server also holds the JDK's own MBeans, and some of their
 * operations write files or load agents into the process ({@code DiagnosticCommand},
 * {@code HotSpotDiagnostic}); so invoke and setAttribute reach the pyha MBean only, and
 * creating, registering, unregistering and deserialization are refused.
 * While a call passes, the connection's user name is held in {@link Caller}.
 */
public final class Guard implements InvocationHandler {
    /** The pyha MBean's name. */
    public static final ObjectName CLUSTER = name("io.pyha:type=Cluster");

    private static final Set<String> READ = Set.of(
        "getAttribute", "getAttributes", "getMBeanInfo", "queryMBeans", "queryNames",
        "isRegistered", "getMBeanCount", "getDefaultDomain", "getDomains", "isInstanceOf",
        "getObjectInstance", "addNotificationListener", "removeNotificationListener",
        // the connector itself asks for these to read a call's arguments; no remote call can
        "getClassLoaderRepository", "getClassLoaderFor", "getClassLoader");
    private static final Set<String> CHANGE = Set.of("invoke", "setAttribute", "setAttributes");

    private final MBeanServer server;
    private final String user;
    private final boolean known;

    private Guard(MBeanServer server, String user, boolean known) {
        this.server = server;
        this.user = user;
        this.known = known;
    }

    /**
     * {@code server} as the connection of {@code user} may use it; {@code user} null (an
     * unauthenticated connection) or not in {@code users} may do nothing.
     */
    public static MBeanServer wrap(MBeanServer server, String user, Set<String> users) {
        Objects.requireNonNull(server, "server");
        Guard guard = new Guard(server, user, user != null && users.contains(user));
        return (MBeanServer) Proxy.newProxyInstance(
            MBeanServer.class.getClassLoader(), new Class<?>[] {MBeanServer.class}, guard);
    }

    @Override
    public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
        String name = method.getName();
        if (method.getDeclaringClass() == Object.class) {
            switch (name) {
                case "hashCode":
                    return System.identityHashCode(proxy);
                case "equals":
                    return proxy == args[0];
                default:
                    return "pyha JMX guard for " + user;
            }
        }
        check(name, args);
        String outer = Caller.enter(user);
        try {
            return method.invoke(server, args);
        } catch (InvocationTargetException exc) {
            throw exc.getCause();
        } finally {
            Caller.leave(outer);
        }
    }

    private void check(String method, Object[] args) {
        if (!known) {
            throw new SecurityException("JMX user " + (user == null ? "(none)" : user)
                + " has no pyha role");
        }
        if (READ.contains(method)) {
            return;
        }
        if (CHANGE.contains(method) && CLUSTER.equals(args[0])) {
            return;
        }
        String target = args != null && args.length > 0 && args[0] instanceof ObjectName
            ? " on " + args[0] : "";
        throw new SecurityException(method + target + " is not allowed over pyha's JMX "
            + "endpoint: only " + CLUSTER + " may be changed");
    }

    private static ObjectName name(String text) {
        try {
            return new ObjectName(text);
        } catch (MalformedObjectNameException exc) {
            throw new IllegalStateException(exc);
        }
    }
}
