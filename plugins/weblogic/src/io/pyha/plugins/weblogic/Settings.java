package io.pyha.plugins.weblogic;

import io.pyha.spi.Words;
import java.net.MalformedURLException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import javax.management.remote.JMXServiceURL;

/**
 * A weblogic resource's parameters, parsed.
 *
 * <p>Invariant: built only from parameters that passed {@link #problems(Map)}, so the paths
 * are absolute, the server name is safe in paths and object names, and the JMX URL parses.
 */
record Settings(
        Path domainHome, String serverName, String adminUrl, Path startScript, String jmxUrl,
        Path credentialsFile, List<Path> clientJars, String providerPackages, boolean ignoreSessions) {

    private static final Pattern SERVER = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]*");
    private static final Set<String> ADMIN_SCHEMES = Set.of("t3", "t3s", "http", "https", "iiop", "iiops");

    /** The parameters as pyha hands them over (already typed and defaulted). */
    static Settings from(Map<String, String> p) {
        Path domain = Path.of(p.get("domain_home")).normalize();
        String admin = blank(p.get("admin_url"));
        String script = blank(p.get("start_script"));
        List<Path> jars = new ArrayList<>();
        for (String word : Words.split(p.getOrDefault("client_jars", ""))) {
            jars.add(Path.of(word));
        }
        return new Settings(
            domain,
            p.getOrDefault("server_name", "AdminServer"),
            admin,
            script != null ? Path.of(script) : defaultScript(domain, admin),
            p.get("jmx_service_url").strip(),
            Path.of(p.get("credentials_file")),
            List.copyOf(jars),
            p.getOrDefault("protocol_provider_packages", ""),
            Boolean.parseBoolean(p.getOrDefault("ignore_sessions", "false")));
    }

    /**
     * The domain's own script: {@code bin/startManagedWebLogic.sh} when an admin URL names
     * the Administration Server to join (a Managed Server), else {@code bin/startWebLogic.sh}.
     */
    static Path defaultScript(Path domain, String adminUrl) {
        return domain.resolve("bin").resolve(adminUrl != null ? "startManagedWebLogic.sh" : "startWebLogic.sh");
    }

    /** True for a Managed Server (it has an admin URL). */
    boolean managed() {
        return adminUrl != null;
    }

    /** The arguments the start script gets: SERVER_NAME ADMIN_URL for a Managed Server, none otherwise. */
    List<String> scriptArguments() {
        return managed() ? List.of(serverName, adminUrl) : List.of();
    }

    /** Where the server's console output goes: servers/NAME/logs/NAME.out, as Node Manager puts it. */
    Path outFile() {
        return domainHome.resolve("servers").resolve(serverName).resolve("logs").resolve(serverName + ".out");
    }

    /**
     * What is wrong with the parameters, each message naming its parameter; empty if nothing.
     * Files that may sit on storage another resource of the group mounts (the domain, the
     * credentials file) need not exist on every node: start and monitor report them missing.
     * A credentials file that is there is checked (mode, content) everywhere.
     */
    static List<String> problems(Map<String, String> p) {
        List<String> problems = new ArrayList<>();
        absolute("domain_home", blank(p.get("domain_home")), problems);
        String server = p.getOrDefault("server_name", "AdminServer");
        if (!SERVER.matcher(server).matches()) {
            problems.add("server_name: " + server + " is not a server name (letters, digits, '_', '.', '-')");
        }
        adminUrl(blank(p.get("admin_url")), problems);
        String script = blank(p.get("start_script"));
        if (script != null) {
            absolute("start_script", script, problems);
        }
        List<Path> jars = clientJars(p.getOrDefault("client_jars", ""), problems);
        String credentials = blank(p.get("credentials_file"));
        if (absolute("credentials_file", credentials, problems) && Files.exists(Path.of(credentials))) {
            problems.addAll(Credentials.problems(Path.of(credentials)));
        }
        String url = blank(p.get("jmx_service_url"));
        if (url == null) {
            problems.add("jmx_service_url: required");
        } else {
            String problem = Jmx.checkUrl(url, jars, p.getOrDefault("protocol_provider_packages", ""));
            if (problem != null) {
                problems.add("jmx_service_url: " + problem);
            }
        }
        return problems;
    }

    private static boolean absolute(String name, String value, List<String> problems) {
        if (value == null) {
            problems.add(name + ": required");
            return false;
        }
        if (!value.startsWith("/")) {
            problems.add(name + ": must be an absolute path, got " + value);
            return false;
        }
        return true;
    }

    private static void adminUrl(String value, List<String> problems) {
        if (value == null) {
            return;
        }
        try {
            URI uri = new URI(value);
            if (uri.getScheme() == null || !ADMIN_SCHEMES.contains(uri.getScheme()) || uri.getHost() == null
                    || uri.getPort() < 1) {
                problems.add("admin_url: must be PROTOCOL://HOST:PORT with a protocol of " + ADMIN_SCHEMES
                    + ", got " + value);
            }
        } catch (URISyntaxException e) {
            problems.add("admin_url: not a URL: " + e.getMessage());
        }
    }

    private static List<Path> clientJars(String text, List<String> problems) {
        List<Path> jars = new ArrayList<>();
        List<String> words;
        try {
            words = Words.split(text);
        } catch (IllegalArgumentException e) {
            problems.add("client_jars: " + e.getMessage());
            return jars;
        }
        for (String word : words) {
            if (!word.startsWith("/")) {
                problems.add("client_jars: must be absolute paths, got " + word);
            } else if (!Files.isRegularFile(Path.of(word)) || !Files.isReadable(Path.of(word))) {
                problems.add("client_jars: cannot read " + word);
            } else {
                jars.add(Path.of(word));
            }
        }
        return jars;
    }

    /** The JMX service URL, parsed; callers hold a URL that passed {@link #problems(Map)}. */
    JMXServiceURL serviceUrl() {
        try {
            return new JMXServiceURL(jmxUrl);
        } catch (MalformedURLException e) {
            throw new IllegalStateException("jmx_service_url: " + e.getMessage(), e);
        }
    }

    static String blank(String value) {
        return value == null || value.isBlank() ? null : value.strip();
    }
}
