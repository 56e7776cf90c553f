package io.pyha.plugins.tomcat;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The Tomcat process of one CATALINA_BASE: found in /proc by its command line, launched
 * as its own session, signalled by pid.
 *
 * <p>Invariant: a process counts as this instance's Tomcat only if it runs Tomcat's
 * Bootstrap class with {@code -Dcatalina.base} naming this base, and is not a zombie;
 * no pid file is trusted, so a reused pid or a Tomcat started by hand is judged right.
 */
final class Instance {
    static final String BOOTSTRAP = "org.apache.catalina.startup.Bootstrap";
    static final String UMASK = "0027";
    private static final Path PROC = Path.of("/proc");
    private static final Path SETSID = Path.of("/usr/bin/setsid");
    private static final Path SETPRIV = Path.of("/usr/bin/setpriv");
    private static final int LOG_TAIL = 2000;

    private Instance() {
    }

    /** The pid of the Tomcat running {@code base}, if any. */
    static Optional<Long> find(Path base) {
        Path wanted = base.toAbsolutePath().normalize();
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(PROC, "[0-9]*")) {
            for (Path entry : entries) {
                long pid = Long.parseLong(entry.getFileName().toString());
                List<String> args = commandLine(pid);
                if (args.contains(BOOTSTRAP) && matches(args, wanted) && alive(pid)) {
                    return Optional.of(pid);
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot list processes in /proc: " + e.getMessage(), e);
        }
        return Optional.empty();
    }

    /** True while {@code pid} exists and is not a zombie (an exited child not yet reaped). */
    static boolean alive(long pid) {
        try {
            String stat = Files.readString(PROC.resolve(Long.toString(pid)).resolve("stat"));
            // The state follows the command name, which is in parentheses and may hold anything.
            char state = stat.charAt(stat.lastIndexOf(')') + 2);
            return state != 'Z' && state != 'X';
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /** Starts Tomcat for {@code s}; its pid (the JVM's: every wrapper execs). */
    static long launch(Settings s, String gid) throws IOException {
        ProcessBuilder builder = new ProcessBuilder(argv(s, gid));
        Map<String, String> env = builder.environment();
        String lang = env.get("LANG");
        env.clear();
        env.put("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        env.put("LANG", lang == null ? "C.UTF-8" : lang);
        env.put("HOME", s.base().toString());
        env.put("CATALINA_HOME", s.home().toString());
        env.put("CATALINA_BASE", s.base().toString());
        env.put("JAVA_HOME", s.javaHome().toString());
        Path logs = s.base().resolve("logs");
        Files.createDirectories(logs);
        File out = logs.resolve("catalina.out").toFile();
        builder.directory(s.base().toFile())
            .redirectInput(new File("/dev/null"))
            .redirectOutput(ProcessBuilder.Redirect.appendTo(out))
            .redirectErrorStream(true);
        return builder.start().pid();
    }

    /**
     * The command: setsid (Tomcat outlives the JVM host), setpriv when a user is set, a fixed
     * {@code sh -c} that only sets the umask catalina.sh would set and execs, then java with
     * what catalina.sh run passes. The options never pass through a shell.
     */
    static List<String> argv(Settings s, String gid) {
        List<String> argv = new ArrayList<>();
        if (Files.isExecutable(SETSID)) {
            argv.add(SETSID.toString());
        }
        if (s.user() != null) {
            argv.addAll(List.of(SETPRIV.toString(), "--reuid=" + s.user(), "--regid=" + gid, "--init-groups"));
        }
        argv.addAll(List.of("/bin/sh", "-c", "umask " + UMASK + " && exec \"$@\"", "tomcat"));
        argv.add(s.javaHome().resolve("bin").resolve("java").toString());
        argv.addAll(javaOptions(s));
        argv.addAll(List.of(
            "-classpath", classpath(s),
            "-Dcatalina.base=" + s.base().toAbsolutePath().normalize(),
            "-Dcatalina.home=" + s.home(),
            "-Djava.io.tmpdir=" + s.base().resolve("temp"),
            BOOTSTRAP, "start"));
        return argv;
    }

    private static List<String> javaOptions(Settings s) {
        List<String> options = new ArrayList<>();
        Path logging = s.base().resolve("conf").resolve("logging.properties");
        options.add(Files.isReadable(logging) ? "-Djava.util.logging.config.file=" + logging : "-Dnop");
        options.addAll(List.of(
            "-Djava.util.logging.manager=org.apache.juli.ClassLoaderLogManager",
            "-Djava.awt.headless=true",
            "-Djdk.tls.ephemeralDHKeySize=2048",
            "-Djava.protocol.handler.pkgs=org.apache.catalina.webresources",
            "-Dsun.io.useCanonCaches=false",
            "-Dorg.apache.catalina.security.SecurityListener.UMASK=" + UMASK,
            "--add-opens=java.base/java.lang=ALL-UNNAMED",
            "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
            "--add-opens=java.base/java.io=ALL-UNNAMED",
            "--add-opens=java.base/java.util=ALL-UNNAMED",
            "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
            "--add-opens=java.rmi/sun.rmi.transport=ALL-UNNAMED"));
        options.addAll(s.jvmOptions());
        // Last, so the resource's own options cannot move JMX off loopback or off its port.
        String port = Integer.toString(s.jmxPort());
        options.addAll(List.of(
            "-Dcom.sun.management.jmxremote.port=" + port,
            "-Dcom.sun.management.jmxremote.rmi.port=" + port,
            "-Dcom.sun.management.jmxremote.host=127.0.0.1",
            "-Djava.rmi.server.hostname=127.0.0.1",
            "-Dcom.sun.management.jmxremote.authenticate=false",
            "-Dcom.sun.management.jmxremote.ssl=false",
            "-Dcom.sun.management.jmxremote.local.only=true"));
        return options;
    }

    private static String classpath(Settings s) {
        Path juli = s.base().resolve("bin").resolve("tomcat-juli.jar");
        if (!Files.isReadable(juli)) {
            juli = s.home().resolve("bin").resolve("tomcat-juli.jar");
        }
        return s.home().resolve("bin").resolve("bootstrap.jar") + File.pathSeparator + juli;
    }

    /** The last lines of the instance's catalina.out, to say why a start failed. */
    static String logTail(Path base) {
        Path out = base.resolve("logs").resolve("catalina.out");
        try {
            String text = Files.readString(out, StandardCharsets.UTF_8);
            return text.substring(Math.max(0, text.length() - LOG_TAIL)).strip();
        } catch (IOException | RuntimeException e) {
            return "(no " + out + ")";
        }
    }

    private static List<String> commandLine(long pid) {
        try {
            byte[] raw = Files.readAllBytes(PROC.resolve(Long.toString(pid)).resolve("cmdline"));
            return List.of(new String(raw, StandardCharsets.UTF_8).split("\0"));
        } catch (IOException | RuntimeException e) {
            return List.of();  // gone meanwhile, or not ours to read
        }
    }

    private static boolean matches(List<String> args, Path wanted) {
        String prefix = "-Dcatalina.base=";
        for (String arg : args) {
            if (arg.startsWith(prefix) && sameBase(arg.substring(prefix.length()), wanted)) {
                return true;
            }
        }
        return false;
    }

    private static boolean sameBase(String text, Path wanted) {
        try {
            return Path.of(text).toAbsolutePath().normalize().equals(wanted);
        } catch (RuntimeException e) {
            return false;  // not a path at all
        }
    }
}
