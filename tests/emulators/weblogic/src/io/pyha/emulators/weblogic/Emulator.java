package io.pyha.emulators.weblogic;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.rmi.registry.LocateRegistry;
import java.rmi.server.RMIServerSocketFactory;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.HashMap;
import java.util.Hashtable;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import javax.management.MBeanServer;
import javax.management.MBeanServerFactory;
import javax.management.ObjectName;
import javax.management.StandardMBean;
import javax.management.remote.JMXAuthenticator;
import javax.management.remote.JMXConnectorServer;
import javax.management.remote.JMXConnectorServerFactory;
import javax.management.remote.JMXPrincipal;
import javax.management.remote.JMXServiceURL;
import javax.management.remote.rmi.RMIConnectorServer;
import javax.security.auth.Subject;

/**
 * EMULATOR of a WebLogic server's runtime MBean server, for pyha's tests; NOT WebLogic.
 *
 * <p>Run with {@code -Dweblogic.Name=<server>} in the domain folder (what the domain's
 * {@code bin/startWebLogic.sh} does). It reads {@code config/emulator.properties}
 * ({@code server.<name>.jmx_port}, {@code start_delay_ms}, {@code step_ms}) and the clear-text
 * {@code servers/<name>/security/boot.properties} ({@code username}, {@code password}),
 * registers {@code com.bea:Name=<server>,Type=ServerRuntime} and serves it over the JDK's
 * JMX RMI connector on 127.0.0.1 only, with password authentication:
 * {@code service:jmx:rmi://127.0.0.1:PORT/jndi/rmi://127.0.0.1:PORT/jmxrmi}. The process
 * exits once the server reaches SHUTDOWN.
 */
public final class Emulator {
    private Emulator() {
    }

    /** Starts the emulated server; returns (the JVM exits) once it is shut down. */
    public static void main(String[] args) throws Exception {
        String name = System.getProperty("weblogic.Name", "AdminServer");
        Path domain = Path.of(args.length > 0 ? args[0] : ".").toAbsolutePath().normalize();
        Properties config = load(domain.resolve("config").resolve("emulator.properties"));
        Properties boot = load(domain.resolve("servers").resolve(name).resolve("security").resolve("boot.properties"));
        String portText = config.getProperty("server." + name + ".jmx_port");
        if (portText == null) {
            throw new IllegalArgumentException("config/emulator.properties has no server." + name + ".jmx_port");
        }
        int port = Integer.parseInt(portText.strip());
        log("Info", "EMULATOR of WebLogic Server (pyha tests), server " + name + ", domain " + domain);
        Faults faults = new Faults(domain.resolve("servers").resolve(name).resolve("emulator.faults"));
        ServerRuntime runtime = new ServerRuntime(name, faults, longOf(config, "step_ms", 100));
        MBeanServer mbeans = MBeanServerFactory.newMBeanServer();
        mbeans.registerMBean(new StandardMBean(runtime, ServerRuntimeMBean.class),
            new ObjectName("com.bea", new Hashtable<>(Map.of("Name", name, "Type", "ServerRuntime"))));
        // A hung server hangs on its way out too: SIGTERM then only ends it once the fault is gone.
        Runtime.getRuntime().addShutdownHook(new Thread(faults::hangIfAsked, "emulator-exit"));
        JMXConnectorServer connector = serve(mbeans, port, boot);
        log("Notice", "JMX connector listening on " + connector.getAddress());
        runtime.boot(longOf(config, "start_delay_ms", 200));
        runtime.exited().await();
        log("Notice", "the server is SHUTDOWN; exiting");
        System.exit(0);
    }

    /** One log line in WebLogic's shape on stdout (the start script sends it to the .out file). */
    static void log(String severity, String message) {
        System.out.println("<" + Instant.now() + "> <" + severity + "> <Emulator> <" + message + ">");
        System.out.flush();
    }

    private static JMXConnectorServer serve(MBeanServer mbeans, int port, Properties boot) throws IOException {
        RMIServerSocketFactory loopback = new LoopbackSockets();
        LocateRegistry.createRegistry(port, null, loopback);
        Map<String, Object> env = new HashMap<>();
        env.put(RMIConnectorServer.RMI_SERVER_SOCKET_FACTORY_ATTRIBUTE, loopback);
        env.put(JMXConnectorServer.AUTHENTICATOR, authenticator(boot));
        JMXServiceURL url = new JMXServiceURL(
            "service:jmx:rmi://127.0.0.1:" + port + "/jndi/rmi://127.0.0.1:" + port + "/jmxrmi");
        JMXConnectorServer server = JMXConnectorServerFactory.newJMXConnectorServer(url, env, mbeans);
        server.start();
        return server;
    }

    private static JMXAuthenticator authenticator(Properties boot) {
        byte[] user = boot.getProperty("username", "").getBytes(StandardCharsets.UTF_8);
        byte[] password = boot.getProperty("password", "").getBytes(StandardCharsets.UTF_8);
        return credentials -> {
            if (credentials instanceof String[] pair && pair.length == 2 && pair[0] != null && pair[1] != null
                    && MessageDigest.isEqual(user, pair[0].getBytes(StandardCharsets.UTF_8))
                    && MessageDigest.isEqual(password, pair[1].getBytes(StandardCharsets.UTF_8))) {
                return new Subject(true, Set.of(new JMXPrincipal(pair[0])), Set.of(), Set.of());
            }
            log("Warning", "refused a JMX connection: invalid username or password");
            throw new SecurityException("Invalid username or password");
        };
    }

    private static Properties load(Path file) throws IOException {
        Properties props = new Properties();
        try (InputStream in = Files.newInputStream(file)) {
            props.load(in);
        }
        return props;
    }

    private static long longOf(Properties props, String key, long fallback) {
        String value = props.getProperty(key);
        return value == null ? fallback : Long.parseLong(value.strip());
    }

    /** Server sockets on 127.0.0.1 only; equal instances let the registry and the connector share a port. */
    private static final class LoopbackSockets implements RMIServerSocketFactory {
        @Override
        public ServerSocket createServerSocket(int port) throws IOException {
            return new ServerSocket(port, 50, InetAddress.getLoopbackAddress());
        }

        @Override
        public boolean equals(Object other) {
            return other instanceof LoopbackSockets;
        }

        @Override
        public int hashCode() {
            return LoopbackSockets.class.hashCode();
        }
    }
}
