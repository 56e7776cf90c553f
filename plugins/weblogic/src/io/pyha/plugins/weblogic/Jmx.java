package io.pyha.plugins.weblogic;

import java.io.IOException;
import java.net.MalformedURLException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import javax.management.JMException;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.ReflectionException;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

/**
 * Talks to a WebLogic server's {@code com.bea:Name=<server>,Type=ServerRuntime} MBean over
 * JMX: reads State and HealthState, invokes shutdown and forceShutdown.
 *
 * <p>Invariant: every call returns within the time it is given. Each runs in a daemon
 * thread with a fresh connection; one that does not answer in time (a hung or stopped
 * server) is abandoned there and ends when its socket does. Credentials go only into the
 * connector's environment, never into a message.
 */
final class Jmx {
    /** The JMX environment key of WebLogic's documented credentials (javax.naming.Context). */
    private static final String PRINCIPAL = "java.naming.security.principal";
    private static final String SECRET = "java.naming.security.credentials";
    private static final ExecutorService POOL = Executors.newCachedThreadPool(task -> {
        Thread thread = new Thread(task, "pyha-weblogic-jmx");
        thread.setDaemon(true);
        return thread;
    });
    private static final Map<List<Path>, ClassLoader> LOADERS = new ConcurrentHashMap<>();

    private Jmx() {
    }

    /** How a call ended: answered, refused (no connection, no such MBean, bad credentials) or no answer in time. */
    enum Kind { ANSWERED, REFUSED, NO_ANSWER }

    /** What the server said: its State and health, or why there is no answer. */
    record Status(Kind kind, String state, Health health, String detail) {
        static Status failed(Kind kind, String detail) {
            return new Status(kind, null, null, detail);
        }

        /** True when the server says RUNNING and its health is not critical or failed. */
        boolean runningAndHealthy() {
            return kind == Kind.ANSWERED && "RUNNING".equals(state) && health.healthy();
        }
    }

    /** Null when {@code url} parses and its protocol has a connector (with {@code jars}); else why not. */
    static String checkUrl(String url, List<Path> jars, String packages) {
        JMXServiceURL parsed;
        try {
            parsed = new JMXServiceURL(url);
        } catch (MalformedURLException e) {
            return "not a JMX service URL (" + e.getMessage() + "): " + url;
        }
        try {
            JMXConnectorFactory.newJMXConnector(parsed, environment(parsed, jars, packages, null));
            return null;
        } catch (MalformedURLException e) {
            return "no JMX connector for the protocol " + parsed.getProtocol()
                + (jars.isEmpty() ? "; put WebLogic's client jar (wlthint3client.jar) in client_jars" : "")
                + " (" + e.getMessage() + ")";
        } catch (IOException | RuntimeException e) {
            return "cannot make a connector: " + e;
        }
    }

    /** The server's State and HealthState, within {@code timeoutMillis}. */
    static Status status(Settings s, Credentials c, long timeoutMillis) {
        return bounded(s, timeoutMillis, () -> {
            try (JMXConnector connector = connect(s, c)) {
                MBeanServerConnection mbeans = connector.getMBeanServerConnection();
                ObjectName runtime = find(mbeans, s.serverName());
                if (runtime == null) {
                    String missing = "no MBean " + pattern(s.serverName()) + " (is server_name right?)";
                    return Status.failed(Kind.REFUSED, missing);
                }
                String state = String.valueOf(mbeans.getAttribute(runtime, "State"));
                Health health = Health.of(mbeans.getAttribute(runtime, "HealthState"));
                return new Status(Kind.ANSWERED, state, health, runtime + " State " + state + ", " + health);
            }
        });
    }

    /**
     * Invokes {@code shutdown(timeout, ignoreSessions)}, or {@code shutdown()} where the MBean
     * lacks that signature; ANSWERED once the server accepted it (or dropped the connection,
     * which a server that is going away does).
     */
    static Status shutdown(Settings s, Credentials c, int timeoutSeconds, long timeoutMillis) {
        return invoke(s, c, timeoutMillis, (mbeans, runtime) -> {
            try {
                mbeans.invoke(runtime, "shutdown", new Object[] {timeoutSeconds, s.ignoreSessions()},
                    new String[] {"int", "boolean"});
                return "shutdown(" + timeoutSeconds + ", " + s.ignoreSessions() + ")";
            } catch (ReflectionException e) {
                mbeans.invoke(runtime, "shutdown", new Object[0], new String[0]);
                return "shutdown()";
            }
        });
    }

    /** Invokes {@code forceShutdown()}. */
    static Status forceShutdown(Settings s, Credentials c, long timeoutMillis) {
        return invoke(s, c, timeoutMillis, (mbeans, runtime) -> {
            mbeans.invoke(runtime, "forceShutdown", new Object[0], new String[0]);
            return "forceShutdown()";
        });
    }

    /** One operation on the ServerRuntime MBean; returns what was invoked. */
    private interface Operation {
        String call(MBeanServerConnection mbeans, ObjectName runtime) throws JMException, IOException;
    }

    private static Status invoke(Settings s, Credentials c, long timeoutMillis, Operation operation) {
        return bounded(s, timeoutMillis, () -> {
            JMXConnector connector = connect(s, c);
            ObjectName runtime = null;
            try {
                MBeanServerConnection mbeans = connector.getMBeanServerConnection();
                runtime = find(mbeans, s.serverName());
                if (runtime == null) {
                    return Status.failed(Kind.REFUSED, "no MBean " + pattern(s.serverName()));
                }
                String invoked = operation.call(mbeans, runtime);
                return new Status(Kind.ANSWERED, null, null, "invoked " + invoked + " on " + runtime);
            } catch (IOException e) {
                if (runtime != null) {
                    // The server closed the connection during the call: it is going down.
                    return new Status(Kind.ANSWERED, null, null,
                        "the connection to " + runtime + " closed during the call (" + rootCause(e) + ")");
                }
                throw e;
            } finally {
                closeQuietly(connector);
            }
        });
    }

    private static Status bounded(Settings s, long timeoutMillis, Callable<Status> call) {
        ClassLoader loader = loader(s.clientJars());
        Future<Status> answer = POOL.submit(() -> {
            Thread.currentThread().setContextClassLoader(loader);
            return call.call();
        });
        String where = "JMX at " + s.jmxUrl();
        try {
            return answer.get(Math.max(1, timeoutMillis), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            answer.cancel(true);
            return Status.failed(Kind.NO_ANSWER, where + " did not answer within " + timeoutMillis + " ms");
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof SecurityException) {
                return Status.failed(Kind.REFUSED, where + " refused the credentials of credentials_file ("
                    + cause.getMessage() + ")");
            }
            return Status.failed(Kind.REFUSED, where + ": " + rootCause(cause));
        } catch (InterruptedException e) {
            answer.cancel(true);
            Thread.currentThread().interrupt();
            return Status.failed(Kind.NO_ANSWER, where + ": interrupted");
        }
    }

    private static JMXConnector connect(Settings s, Credentials c) throws IOException {
        JMXServiceURL url = s.serviceUrl();
        Map<String, Object> env = environment(url, s.clientJars(), s.providerPackages(), c);
        return JMXConnectorFactory.connect(url, env);
    }

    private static Map<String, Object> environment(JMXServiceURL url, List<Path> jars, String packages, Credentials c) {
        Map<String, Object> env = new HashMap<>();
        env.put("jmx.remote.x.client.connection.check.period", 0L);
        ClassLoader loader = loader(jars);
        env.put(JMXConnectorFactory.PROTOCOL_PROVIDER_CLASS_LOADER, loader);
        env.put(JMXConnectorFactory.DEFAULT_CLASS_LOADER, loader);
        boolean jdkProtocol = Set.of("rmi", "iiop").contains(url.getProtocol());
        if (!jdkProtocol && packages != null && !packages.isBlank()) {
            env.put(JMXConnectorFactory.PROTOCOL_PROVIDER_PACKAGES, packages.strip());
        }
        if (c != null) {
            env.put(JMXConnector.CREDENTIALS, new String[] {c.username(), c.password()});
            if (!jdkProtocol) {
                // WebLogic's own connectors (t3, iiop, http) document JNDI-style credentials.
                env.put(PRINCIPAL, c.username());
                env.put(SECRET, c.password());
            }
        }
        return env;
    }

    /** The plugin's own loader, or a child of it holding the client jars (one per list of jars). */
    private static ClassLoader loader(List<Path> jars) {
        ClassLoader own = Jmx.class.getClassLoader();
        if (jars.isEmpty()) {
            return own;
        }
        return LOADERS.computeIfAbsent(List.copyOf(jars), key -> {
            URL[] urls = new URL[key.size()];
            for (int i = 0; i < urls.length; i++) {
                try {
                    urls[i] = key.get(i).toUri().toURL();
                } catch (MalformedURLException e) {
                    throw new IllegalArgumentException("client_jars: " + key.get(i) + ": " + e.getMessage(), e);
                }
            }
            return new URLClassLoader("pyha-weblogic-client", urls, own);
        });
    }

    private static ObjectName find(MBeanServerConnection mbeans, String server) throws JMException, IOException {
        // The runtime MBean server names it com.bea:Name=X,Type=ServerRuntime; the domain
        // runtime one adds Location=X; a pattern finds either.
        Set<ObjectName> names = mbeans.queryNames(new ObjectName(pattern(server)), null);
        return names.isEmpty() ? null : names.iterator().next();
    }

    private static String pattern(String server) {
        return "com.bea:Name=" + server + ",Type=ServerRuntime,*";
    }

    private static void closeQuietly(JMXConnector connector) {
        try {
            connector.close();
        } catch (IOException | RuntimeException e) {
            // The server went away mid-call (it is shutting down): nothing left to close.
        }
    }

    static String rootCause(Throwable e) {
        Throwable cause = e;
        while (cause.getCause() != null && cause.getCause() != cause) {
            cause = cause.getCause();
        }
        return cause.getClass().getSimpleName() + ": " + cause.getMessage();
    }
}
