package io.pyha.plugins.weblogic;

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
import java.nio.file.Files;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The weblogic resource type ({@code java:pyha:weblogic}): one server of a WebLogic domain,
 * run by the domain's own start script in its own session, so it outlives the JVM host.
 *
 * <p>Start runs {@code bin/startWebLogic.sh} (or {@code bin/startManagedWebLogic.sh SERVER
 * ADMIN_URL}) and waits for the {@code com.bea:Name=<server>,Type=ServerRuntime} MBean to say
 * RUNNING. Monitor reads its State and HealthState over JMX. Stop invokes
 * {@code shutdown(timeout, ignoreSessions)}, then {@code forceShutdown()}, then kills the
 * JVM, each step given a share of the deadline. The server's process is found by its
 * command line each time, never a pid file; every JMX call is bounded by the deadline.
 */
public final class WebLogicPlugin implements ResourcePlugin {
    private static final long POLL_MILLIS = 250;
    private static final long JMX_TIMEOUT_MILLIS = 10_000;
    private static final long RETURN_MARGIN_MILLIS = 500;

    /** For ServiceLoader. */
    public WebLogicPlugin() {
    }

    @Override
    public MetaData metaData() {
        return MetaData.builder("weblogic")
            .provider("pyha")
            .version("1.0")
            .description("Oracle WebLogic Server: one server of a domain, started by the domain's start script, "
                + "watched through its ServerRuntime MBean (State, HealthState) over JMX, stopped by its "
                + "shutdown and forceShutdown operations, killed at the deadline.")
            .parameter(Parameter.required("domain_home", ParameterType.STRING,
                "The domain folder (bin/, config/, servers/); the server runs from it."))
            .parameter(Parameter.optional("server_name", ParameterType.STRING, "AdminServer",
                "The server's name in the domain (its -Dweblogic.Name)."))
            .parameter(Parameter.optional("admin_url", ParameterType.STRING, null,
                "For a Managed Server: the Administration Server's URL (t3://host:7001), passed to "
                + "startManagedWebLogic.sh. Unset: the server is the Administration Server."))
            .parameter(Parameter.optional("start_script", ParameterType.STRING, null,
                "The script that starts the server in the foreground; default: DOMAIN/bin/startManagedWebLogic.sh "
                + "SERVER ADMIN_URL when admin_url is set, else DOMAIN/bin/startWebLogic.sh."))
            .parameter(Parameter.required("jmx_service_url", ParameterType.STRING,
                "The JMX service URL of the server's runtime MBean server, e.g. "
                + "service:jmx:t3://host:7001/jndi/weblogic.management.mbeanservers.runtime "
                + "(t3 needs client_jars) or service:jmx:rmi:///jndi/rmi://127.0.0.1:PORT/jmxrmi."))
            .parameter(Parameter.required("credentials_file", ParameterType.STRING,
                "A properties file with username= and password= in clear text, mode 600; never logged."))
            .parameter(Parameter.optional("client_jars", ParameterType.LIST, "",
                "Jars for the JMX client, e.g. WL_HOME/server/lib/wlthint3client.jar for t3 URLs."))
            .parameter(Parameter.optional("protocol_provider_packages", ParameterType.STRING,
                "weblogic.management.remote",
                "Where JMX finds the connector of a protocol other than rmi/iiop (WebLogic's t3, t3s, http, https)."))
            .parameter(Parameter.optional("ignore_sessions", ParameterType.BOOLEAN, "false",
                "Graceful shutdown drops HTTP sessions at once instead of waiting for them."))
            .operation("start", 300_000)
            .operation("stop", 120_000)
            .operation("monitor", 30_000, 30_000)
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
        Credentials credentials = credentials(s, log);
        if (credentials == null) {
            return Ocf.ERR_CONFIGURED;
        }
        Optional<Long> running = ServerProcess.find(s.domainHome(), s.serverName());
        if (running.isPresent()) {
            Jmx.Status status = Jmx.status(s, credentials, jmxTimeout(ctx));
            if (status.runningAndHealthy()) {
                log.info(describe(s) + " already runs (pid " + running.get() + "): " + status.detail());
                return Ocf.SUCCESS;
            }
            log.info(describe(s) + " runs (pid " + running.get() + ") but is not RUNNING yet; waiting: "
                + status.detail());
        }
        return awaitRunning(s, credentials, ctx);
    }

    /** Runs the start script; null (after logging why) if it cannot be run. */
    private static Process launch(Settings s, PluginLogger log) {
        try {
            Process launcher = ServerProcess.launch(s);
            log.info("launched " + s.startScript() + " for " + describe(s) + " (pid " + launcher.pid()
                + ", output in " + s.outFile() + ")");
            return launcher;
        } catch (IOException e) {
            log.error("cannot run " + s.startScript() + ": " + e.getMessage());
            return null;
        }
    }

    @Override
    public int monitor(PluginContext ctx) {
        Settings s = Settings.from(ctx.parameters());
        Optional<Long> pid = ServerProcess.find(s.domainHome(), s.serverName());
        if (pid.isEmpty()) {
            return Ocf.NOT_RUNNING;
        }
        Credentials credentials = credentials(s, ctx.log());
        if (credentials == null) {
            return Ocf.ERR_CONFIGURED;
        }
        Jmx.Status status = Jmx.status(s, credentials, Math.max(1, ctx.remainingMillis() - RETURN_MARGIN_MILLIS));
        String problem = problem(status);
        if (problem != null) {
            ctx.log().warning(describe(s) + " (pid " + pid.get() + ") is not healthy: " + problem);
            return Ocf.ERR_GENERIC;
        }
        if (!status.health().ok()) {
            ctx.log().warning(describe(s) + " is RUNNING with " + status.health());
        }
        return Ocf.SUCCESS;
    }

    @Override
    public int stop(PluginContext ctx) {
        Settings s = Settings.from(ctx.parameters());
        PluginLogger log = ctx.log();
        Optional<Long> found = ServerProcess.find(s.domainHome(), s.serverName());
        if (found.isEmpty()) {
            log.info(describe(s) + " is not running");
            return Ocf.SUCCESS;
        }
        long pid = found.get();
        Credentials credentials = credentials(s, log);
        long margin = ServerControl.killMargin(ctx);
        long forceAt = System.currentTimeMillis() + (ctx.remainingMillis() - margin) / 2;
        if (credentials != null && graceful(s, credentials, ctx, pid, forceAt)) {
            return Ocf.SUCCESS;
        }
        if (forced(s, credentials, ctx, pid, margin)) {
            return Ocf.SUCCESS;
        }
        return ServerControl.kill(pid, describe(s), ctx);
    }

    // ------------------------------------------------------------------------ stop steps

    /** shutdown(timeout, ignoreSessions), then waits until {@code until}; true once the server is gone. */
    private static boolean graceful(Settings s, Credentials c, PluginContext ctx, long pid, long until) {
        long budget = until - System.currentTimeMillis();
        int seconds = (int) Math.max(1, budget / 1000);
        Jmx.Status asked = Jmx.shutdown(s, c, seconds, Math.max(1, budget));
        if (asked.kind() != Jmx.Kind.ANSWERED) {
            ctx.log().warning("graceful shutdown of " + describe(s) + " failed: " + asked.detail());
            return !ProcessFinder.alive(pid) && gone(s, ctx, pid, "exited");
        }
        ctx.log().info(asked.detail());
        return ServerControl.waitGone(pid, ctx, ctx.deadlineMillis() - until) && gone(s, ctx, pid, "shut down");
    }

    /** forceShutdown() (SIGTERM when JMX cannot take it), then waits until {@code margin} is left. */
    private static boolean forced(Settings s, Credentials c, PluginContext ctx, long pid, long margin) {
        Jmx.Status asked = c == null ? Jmx.Status.failed(Jmx.Kind.REFUSED, "no credentials")
            : Jmx.forceShutdown(s, c, Math.max(1, Math.min(JMX_TIMEOUT_MILLIS, ctx.remainingMillis() - margin)));
        if (asked.kind() == Jmx.Kind.ANSWERED) {
            ctx.log().info(asked.detail());
        } else {
            ctx.log().warning("forceShutdown of " + describe(s) + " failed (" + asked.detail()
                + "); sending SIGTERM to pid " + pid);
            ProcessHandle.of(pid).ifPresent(ProcessHandle::destroy);
        }
        return ServerControl.waitGone(pid, ctx, margin) && gone(s, ctx, pid, "force shut down");
    }

    private static boolean gone(Settings s, PluginContext ctx, long pid, String how) {
        ctx.log().info(describe(s) + " (pid " + pid + ") " + how);
        return true;
    }

    // ------------------------------------------------------------------------ helpers

    private static int checkInstalled(Settings s, PluginLogger log) {
        if (!Files.isDirectory(s.domainHome())) {
            log.error("domain_home: no such directory: " + s.domainHome());
            return Ocf.ERR_INSTALLED;
        }
        if (!Files.isExecutable(s.startScript())) {
            log.error("start_script: " + s.startScript() + " is not an executable file");
            return Ocf.ERR_INSTALLED;
        }
        return Ocf.SUCCESS;
    }

    /** The credentials, or null after logging why they cannot be read (the password never is). */
    private static Credentials credentials(Settings s, PluginLogger log) {
        try {
            return Credentials.read(s.credentialsFile());
        } catch (IOException e) {
            log.error(e.getMessage());
            return null;
        }
    }

    /** Null when the server answered RUNNING and healthy; else what is wrong, in a sentence. */
    private static String problem(Jmx.Status status) {
        if (status.kind() != Jmx.Kind.ANSWERED) {
            return status.detail();
        }
        if (!"RUNNING".equals(status.state())) {
            return "State is " + status.state() + ", not RUNNING (" + status.detail() + ")";
        }
        if (!status.health().healthy()) {
            return "HealthState is " + status.health() + " (" + status.detail() + ")";
        }
        return null;
    }

    /**
     * Launches the server when it does not run (again, if one that was already there exits
     * meanwhile: it was shutting down), then polls until it is RUNNING and healthy.
     */
    private static int awaitRunning(Settings s, Credentials c, PluginContext ctx) {
        ServerControl.Poll poll = ServerControl.poll(ctx, POLL_MILLIS, RETURN_MARGIN_MILLIS);
        Process launcher = null;
        boolean launched = false;
        while (poll.again()) {
            Optional<Long> pid = ServerProcess.find(s.domainHome(), s.serverName());
            if (pid.isEmpty() && (launcher == null || !launcher.isAlive())) {
                if (launched) {
                    ctx.log().error(describe(s) + " exited while starting; " + s.outFile() + " ends with:\n"
                        + ServerProcess.logTail(s));
                    return Ocf.ERR_GENERIC;
                }
                launcher = launch(s, ctx.log());
                if (launcher == null) {
                    return Ocf.ERR_GENERIC;
                }
                launched = true;
            }
            if (pid.isPresent()) {
                Jmx.Status status = Jmx.status(s, c, jmxTimeout(ctx));
                String problem = problem(status);
                if (problem == null) {
                    ctx.log().info(describe(s) + " (pid " + pid.get() + ") is RUNNING, " + status.health());
                    return Ocf.SUCCESS;
                }
                boolean unhealthy = status.kind() == Jmx.Kind.ANSWERED && "RUNNING".equals(status.state());
                if (unhealthy || "FAILED".equals(status.state())) {
                    ctx.log().error(describe(s) + " (pid " + pid.get() + ") failed to start: " + problem);
                    return Ocf.ERR_GENERIC;
                }
                poll.problem(problem);
            }
        }
        ctx.log().error(describe(s) + " did not reach RUNNING in time: " + poll.last());
        return Ocf.ERR_GENERIC;
    }

    private static long jmxTimeout(PluginContext ctx) {
        return Math.max(1, Math.min(JMX_TIMEOUT_MILLIS, ctx.remainingMillis() - RETURN_MARGIN_MILLIS));
    }

    private static String describe(Settings s) {
        return "WebLogic server " + s.serverName() + " of " + s.domainHome();
    }
}
