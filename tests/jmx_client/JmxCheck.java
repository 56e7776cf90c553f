import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import javax.management.Attribute;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.openmbean.CompositeData;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;
import javax.rmi.ssl.SslRMIClientSocketFactory;

/**
 * A JDK-only JMX client for pyha's tests: connects with a user and password, runs the
 * steps given on the command line in order, and prints one line per step.
 *
 * <pre>
 * java JmxCheck URL USER PASSWORD STEP...
 *   get:ATTRIBUTE            the attribute (composite arrays as name=...;name=...)
 *   call:OPERATION[:ARG...]  invoke an operation with String arguments ("true"/"false"
 *                            become booleans for setMaintenance)
 *   set:ATTRIBUTE:VALUE      setAttribute with a String value
 *   other:OPERATION          invoke an operation on java.lang:type=Memory
 * </pre>
 * With {@code -Dpyha.jmx.tls=true} the registry is reached over TLS too (the connector's
 * stub says so itself); the trust store comes from {@code javax.net.ssl.trustStore}.
 * A step that fails prints {@code ERROR <exception class>: <message>} (the innermost
 * cause that is not a JMX wrapper) and the client goes on; a connection that fails
 * prints {@code CONNECT-ERROR ...} and exits 3.
 */
public final class JmxCheck {
    private JmxCheck() {
    }

    public static void main(String[] args) throws Exception {
        JMXServiceURL url = new JMXServiceURL(args[0]);
        Map<String, Object> env = new HashMap<>();
        env.put(JMXConnector.CREDENTIALS, new String[] {args[1], args[2]});
        if (Boolean.getBoolean("pyha.jmx.tls")) {
            env.put("com.sun.jndi.rmi.factory.socket", new SslRMIClientSocketFactory());
        }
        JMXConnector connector;
        try {
            connector = JMXConnectorFactory.connect(url, env);
        } catch (Exception exc) {
            System.out.println("CONNECT-ERROR " + describe(exc));
            System.exit(3);
            return;
        }
        try {
            MBeanServerConnection server = connector.getMBeanServerConnection();
            ObjectName cluster = new ObjectName("io.pyha:type=Cluster");
            for (int i = 3; i < args.length; i++) {
                try {
                    System.out.println(args[i] + " = " + step(server, cluster, args[i]));
                } catch (Exception exc) {
                    System.out.println(args[i] + " ERROR " + describe(exc));
                }
            }
        } finally {
            connector.close();
        }
    }

    private static String step(MBeanServerConnection server, ObjectName cluster, String step)
            throws Exception {
        String[] parts = step.split(":", -1);
        switch (parts[0]) {
            case "get":
                return show(server.getAttribute(cluster, parts[1]));
            case "set":
                server.setAttribute(cluster, new Attribute(parts[1], parts[2]));
                return "done";
            case "other":
                return show(server.invoke(new ObjectName("java.lang:type=Memory"), parts[1],
                                          null, null));
            case "call":
                String[] strings = Arrays.copyOfRange(parts, 2, parts.length);
                Object[] values = new Object[strings.length];
                String[] types = new String[strings.length];
                for (int i = 0; i < strings.length; i++) {
                    boolean flag = "setMaintenance".equals(parts[1]);
                    values[i] = flag ? (Object) Boolean.valueOf(strings[i]) : strings[i];
                    types[i] = flag ? "boolean" : String.class.getName();
                }
                return show(server.invoke(cluster, parts[1], values, types));
            default:
                throw new IllegalArgumentException("unknown step " + step);
        }
    }

    private static String show(Object value) {
        if (value instanceof CompositeData[] rows) {
            StringBuilder text = new StringBuilder();
            for (CompositeData row : rows) {
                text.append(text.length() == 0 ? "" : ";").append(row.get("name")).append('@');
                Object where = row.getCompositeType().containsKey("node") ? row.get("node") : "";
                text.append(where);
            }
            return text.toString();
        }
        return String.valueOf(value);
    }

    private static String describe(Throwable exc) {
        Throwable inner = exc;
        while (inner.getCause() != null && isWrapper(inner)) {
            inner = inner.getCause();
        }
        String message = String.valueOf(inner.getMessage()).replaceAll("\\s+", " ");
        return inner.getClass().getName() + ": " + message;
    }

    private static boolean isWrapper(Throwable exc) {
        String name = exc.getClass().getName();
        return name.startsWith("javax.management.") || name.startsWith("java.rmi.")
            || name.equals("java.lang.reflect.UndeclaredThrowableException");
    }
}
