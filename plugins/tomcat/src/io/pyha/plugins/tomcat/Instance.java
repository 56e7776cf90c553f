package io.pyha.plugins.tomcat;

import io.pyha.spi.ProcessFinder;
import io.pyha.spi.ServerControl;
import java.io.File;
import java.io.IOException;
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
    private static final Path SETPRIV = Path.of("/usr/bin/setpriv");

    private Instance() {
    }

    /** The pid of the Tomcat running {@code base}, if any. */
    static Optional<Long> find(Path base) {
        Path wanted = base.toAbsolutePath().normalize();
        return ProcessFinder.find((pid, args) -> args.contains(BOOTSTRAP) && runs(args, wanted));
    }

    /** Starts Tomcat for {@code s}; its pid (the JVM's: every wrapper execs). */
    static long launch(Settings s, String gid) throws IOException {
        Map<String, String> env = Map.of(
            "HOME", s.base().toString(),
            "CATALINA_HOME", s.home().toString(),
            "CATALINA_BASE", s.base().toString(),
            "JAVA_HOME", s.javaHome().toString());
        return ServerControl.launch(argv(s, gid), s.base(), env, catalinaOut(s.base())).pid();
    }

    /**
     * The command, run in its own session ({@link ServerControl#launch}): setpriv when a user
     * is set, a fixed {@code sh -c} that only sets the umask catalina.sh would set and execs,
     * then java with what catalina.sh run passes. The options never pass through a shell.
     */
    static List<String> argv(Settings s, String gid) {
        List<String> argv = new ArrayList<>();
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
        return ServerControl.logTail(catalinaOut(base));
    }

    private static Path catalinaOut(Path base) {
        return base.resolve("logs").resolve("catalina.out");
    }

    /** True if one of {@code args} is {@code -Dcatalina.base=} naming {@code wanted}. */
    private static boolean runs(List<String> args, Path wanted) {
        String prefix = "-Dcatalina.base=";
        for (String arg : args) {
            if (arg.startsWith(prefix)
                    && ProcessFinder.path(arg.substring(prefix.length())).equals(Optional.of(wanted))) {
                return true;
            }
        }
        return false;
    }
}
