package io.pyha.plugins.tomcat;

import io.pyha.spi.Words;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * A Tomcat resource's parameters, parsed.
 *
 * <p>Invariant: built only from parameters that passed {@link #problems(Map)}, so the
 * paths are absolute, the ports are in range and the probe URL is an http(s) URL.
 */
record Settings(
        Path home, Path base, Path javaHome, List<String> jvmOptions, int jmxPort, Integer shutdownPort,
        URI probe, String user) {

    private static final Pattern USER = Pattern.compile("[a-z_][a-z0-9_.-]*\\$?", Pattern.CASE_INSENSITIVE);

    /** The parameters as pyha hands them over (already typed and defaulted). */
    static Settings from(Map<String, String> p) {
        String javaHome = blankToNull(p.get("java_home"));
        String shutdown = blankToNull(p.get("shutdown_port"));
        String probe = blankToNull(p.get("http_probe_url"));
        return new Settings(
            Path.of(p.get("catalina_home")).normalize(),
            Path.of(p.get("catalina_base")).normalize(),
            Path.of(javaHome != null ? javaHome : System.getProperty("java.home")),
            Words.split(p.getOrDefault("jvm_options", "")),
            Integer.parseInt(p.get("jmx_port")),
            shutdown == null ? null : Integer.valueOf(shutdown),
            probe == null ? null : URI.create(probe),
            blankToNull(p.get("user")));
    }

    /** What is wrong with the parameters, each message naming its parameter; empty if nothing. */
    static List<String> problems(Map<String, String> p) {
        List<String> problems = new ArrayList<>();
        absolute(p, "catalina_home", problems);
        absolute(p, "catalina_base", problems);
        if (blankToNull(p.get("java_home")) != null) {
            absolute(p, "java_home", problems);
        }
        port(p, "jmx_port", problems);
        if (blankToNull(p.get("shutdown_port")) != null) {
            port(p, "shutdown_port", problems);
        }
        probeUrl(p.get("http_probe_url"), problems);
        String user = blankToNull(p.get("user"));
        if (user != null && !USER.matcher(user).matches()) {
            problems.add("user: " + user + " is not a user name");
        }
        try {
            Words.split(p.getOrDefault("jvm_options", ""));
        } catch (IllegalArgumentException e) {
            problems.add("jvm_options: " + e.getMessage());
        }
        return problems;
    }

    /** The JMX service URL of this instance: the JDK's agent on loopback. */
    String jmxUrl() {
        return "service:jmx:rmi:///jndi/rmi://127.0.0.1:" + jmxPort + "/jmxrmi";
    }

    private static void absolute(Map<String, String> p, String name, List<String> problems) {
        String value = blankToNull(p.get(name));
        if (value == null) {
            problems.add(name + ": required");
        } else if (!value.startsWith("/")) {
            problems.add(name + ": must be an absolute path, got " + value);
        }
    }

    private static void port(Map<String, String> p, String name, List<String> problems) {
        String value = blankToNull(p.get(name));
        try {
            int port = Integer.parseInt(value == null ? "" : value);
            if (port < 1 || port > 65535) {
                problems.add(name + ": must be a port from 1 to 65535, got " + port);
            }
        } catch (NumberFormatException e) {
            problems.add(name + ": must be a port number, got " + value);
        }
    }

    private static void probeUrl(String value, List<String> problems) {
        if (blankToNull(value) == null) {
            return;
        }
        try {
            URI uri = new URI(value);
            if (!("http".equals(uri.getScheme()) || "https".equals(uri.getScheme())) || uri.getHost() == null) {
                problems.add("http_probe_url: must be an http:// or https:// URL with a host, got " + value);
            }
        } catch (URISyntaxException e) {
            problems.add("http_probe_url: not a URL: " + e.getMessage());
        }
    }

    static String blankToNull(String value) {
        return value == null || value.isBlank() ? null : value.trim();
    }
}
