package io.pyha.plugins.tomcat;

import io.pyha.spi.MetaData;
import io.pyha.spi.Ocf;
import io.pyha.spi.Parameter;
import io.pyha.spi.ParameterType;
import io.pyha.spi.PluginContext;
import io.pyha.spi.PluginLogger;
import io.pyha.spi.ProcessFinder;
import io.pyha.spi.ResourcePlugin;
import io.pyha.spi.ServerControl;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * The tomcat resource type ({@code java:pyha:tomcat}): one Tomcat instance (a
 * CATALINA_BASE) run as its own JVM, in its own session, so it outlives the JVM host.
 *
 * <p>Start launches what {@code catalina.sh run} would, with the JDK's JMX agent on
 * loopback, and waits for {@code Catalina:type=Server} to be STARTED. Monitor asks JMX
 * (and the HTTP probe, if set). Stop sends the shutdown command to the shutdown port
 * (the Server MBean has no stop operation), waits, and kills the JVM at the deadline.
 * The instance's process is found by its command line each time, never a pid file.
 */
public final class TomcatPlugin implements ResourcePlugin {
    private static final long POLL_MILLIS = 250;
    private static final long JMX_TIMEOUT_MILLIS = 5000;

    /** For ServiceLoader. */
    public TomcatPlugin() {
    }

    @Override
    public MetaData metaData() {
        return MetaData.builder("tomcat")
            .provider("pyha")
            .version("1.0")
            .description("Apache Tomcat: an instance (CATALINA_BASE) run as its own JVM, started as catalina.sh "
                + "run would, watched through the JDK's JMX agent on 127.0.0.1, stopped through its shutdown port.")
            .parameter(Parameter.optional("catalina_home", ParameterType.STRING, "/usr/share/tomcat10",
                "Tomcat's installation (bin/bootstrap.jar, lib/)."))
            .parameter(Parameter.required("catalina_base", ParameterType.STRING,
                "The instance: conf/server.xml, webapps/, logs/ (see tomcat10-instance-create)."))
            .parameter(Parameter.optional("java_home", ParameterType.STRING, null,
                "The Java runtime to run Tomcat with; default: the JVM host's own."))
            .parameter(Parameter.optional("jvm_options", ParameterType.STRING, "",
                "More options for Tomcat's JVM, split into words as a shell would (no expansion)."))
            .parameter(new Parameter("jmx_port", ParameterType.INTEGER, true, null,
                "Port of the JMX agent, bound to 127.0.0.1 only, without authentication.", false, List.of()))
            .parameter(Parameter.optional("shutdown_port", ParameterType.INTEGER, null,
                "Tomcat's shutdown port; default: the port of <Server> in conf/server.xml."))
            .parameter(Parameter.optional("http_probe_url", ParameterType.STRING, null,
                "If set, monitor also GETs this URL and wants a status below 400."))
            .parameter(Parameter.optional("user", ParameterType.STRING, null,
                "Run Tomcat as this user (the instance must be writable by it); default: the JVM host's user."))
            .operation("start", 120_000)
            .operation("stop", 60_000)
            .operation("monitor", 20_000, 10_000)
            .build();
    }

    @Override
    public List<String> validate(Map<String, String> params) {
        return Settings.problems(params);
    }

    @Override
    public int start(PluginContext ctx) {
        Settings s = Settings.from(ctx.parameters());
        PluginLogger log = ctx.log();
        int installed = checkInstalled(s, log);
        if (installed != Ocf.SUCCESS) {
            return installed;
        }
        Optional<Long> running = Instance.find(s.base());
        if (running.isPresent() && health(s, ctx) == null) {
            log.info("Tomcat " + s.base() + " already runs (pid " + running.get() + ")");
            return Ocf.SUCCESS;
        }
        long pid;
        if (running.isPresent()) {
            pid = running.get();
            log.info("Tomcat " + s.base() + " is starting (pid " + pid + "); waiting for it");
        } else {
            Optional<String> gid = groupOf(s.user(), log);
            if (gid.isEmpty()) {
                return Ocf.ERR_INSTALLED;
            }
            try {
                pid = Instance.launch(s, gid.get());
            } catch (IOException e) {
                log.error("cannot launch Tomcat " + s.base() + ": " + e.getMessage());
                return Ocf.ERR_GENERIC;
            }
            log.info("launched Tomcat " + s.base() + " (pid " + pid + ", JMX on 127.0.0.1:" + s.jmxPort() + ")");
        }
        return awaitStarted(s, ctx, pid);
    }

    @Override
    public int monitor(PluginContext ctx) {
        Settings s = Settings.from(ctx.parameters());
        Optional<Long> pid = Instance.find(s.base());
        if (pid.isEmpty()) {
            return Ocf.NOT_RUNNING;
        }
        String problem = health(s, ctx);
        if (problem != null) {
            ctx.log().warning("Tomcat " + s.base() + " (pid " + pid.get() + ") runs but is not healthy: " + problem);
            return Ocf.ERR_GENERIC;
        }
        return Ocf.SUCCESS;
    }

    @Override
    public int stop(PluginContext ctx) {
        Settings s = Settings.from(ctx.parameters());
        PluginLogger log = ctx.log();
        Optional<Long> found = Instance.find(s.base());
        if (found.isEmpty()) {
            log.info("Tomcat " + s.base() + " is not running");
            return Ocf.SUCCESS;
        }
        long pid = found.get();
        if (!sendShutdown(s, log)) {
            log.info("sending SIGTERM to Tomcat (pid " + pid + ")");
            ProcessHandle.of(pid).ifPresent(ProcessHandle::destroy);
        }
        if (ServerControl.waitGone(pid, ctx, ServerControl.killMargin(ctx))) {
            log.info("Tomcat " + s.base() + " (pid " + pid + ") stopped");
            return Ocf.SUCCESS;
        }
        return ServerControl.kill(pid, "Tomcat", ctx);
    }

    // ------------------------------------------------------------------------ helpers

    private static int checkInstalled(Settings s, PluginLogger log) {
        if (!Files.isReadable(s.home().resolve("bin").resolve("bootstrap.jar"))) {
            log.error("catalina_home: no bin/bootstrap.jar in " + s.home() + "; is Tomcat installed here?");
            return Ocf.ERR_INSTALLED;
        }
        if (!Files.isReadable(s.base().resolve("conf").resolve("server.xml"))) {
            log.error("catalina_base: no conf/server.xml in " + s.base());
            return Ocf.ERR_INSTALLED;
        }
        if (!Files.isExecutable(s.javaHome().resolve("bin").resolve("java"))) {
            log.error("java_home: no bin/java in " + s.javaHome());
            return Ocf.ERR_INSTALLED;
        }
        return Ocf.SUCCESS;
    }

    /** Null when JMX says STARTED and the probe (if any) answers; else what is wrong. */
    private static String health(Settings s, PluginContext ctx) {
        Management.Status status = Management.status(s, Math.min(ctx.remainingMillis(), JMX_TIMEOUT_MILLIS));
        if (status.kind() != Management.Kind.STARTED) {
            return status.detail();
        }
        return s.probe() == null ? null : Management.probe(s.probe(), Math.min(ctx.remainingMillis(), 5000));
    }

    private static int awaitStarted(Settings s, PluginContext ctx, long pid) {
        ServerControl.Poll poll = ServerControl.poll(ctx, POLL_MILLIS, 0);
        while (poll.again()) {
            if (!ProcessFinder.alive(pid)) {
                ctx.log().error("Tomcat (pid " + pid + ") exited while starting; catalina.out ends with:\n"
                    + Instance.logTail(s.base()));
                return Ocf.ERR_GENERIC;
            }
            String problem = health(s, ctx);
            if (problem == null) {
                ctx.log().info("Tomcat " + s.base() + " (pid " + pid + ") is STARTED");
                return Ocf.SUCCESS;
            }
            poll.problem(problem);
        }
        ctx.log().error("Tomcat (pid " + pid + ") did not start in time: " + poll.last());
        return Ocf.ERR_GENERIC;
    }

    private static boolean sendShutdown(Settings s, PluginLogger log) {
        ServerXml xml;
        try {
            xml = ServerXml.read(s.base());
        } catch (IOException e) {
            log.warning(e.getMessage());
            return false;
        }
        int port = s.shutdownPort() != null ? s.shutdownPort() : xml.shutdownPort();
        if (port <= 0) {
            log.info("the shutdown port is disabled in conf/server.xml");
            return false;
        }
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 2000);
            OutputStream out = socket.getOutputStream();
            out.write(xml.shutdownCommand().getBytes(StandardCharsets.UTF_8));
            out.flush();
            log.info("sent the shutdown command to 127.0.0.1:" + port);
            return true;
        } catch (IOException e) {
            log.warning("cannot reach the shutdown port 127.0.0.1:" + port + ": " + e.getMessage());
            return false;
        }
    }

    /** The primary group of {@code user} (empty string when no user is set). */
    private static Optional<String> groupOf(String user, PluginLogger log) {
        if (user == null) {
            return Optional.of("");
        }
        try {
            Process id = new ProcessBuilder("id", "-g", "--", user).redirectErrorStream(true).start();
            String out = new String(id.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
            if (id.waitFor(5, TimeUnit.SECONDS) && id.exitValue() == 0) {
                return Optional.of(out);
            }
            log.error("user: " + user + " is not a user on this node (" + out + ")");
        } catch (IOException e) {
            log.error("user: cannot look up " + user + ": " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return Optional.empty();
    }
}
