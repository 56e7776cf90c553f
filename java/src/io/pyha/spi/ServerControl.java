package io.pyha.spi;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The start and stop skeleton of a plugin whose server runs as its own process, detached
 * from the JVM host: launch it in its own session, look at it until it is up or the time is
 * out, and stop it politely, then by SIGKILL near the deadline.
 *
 * <p>Invariant: no wait here outlasts the operation: each sleeps in small steps within
 * {@link PluginContext#remainingMillis()} less the margin it is given, and ends when the
 * thread is interrupted (pyha cancelled the operation).
 */
public final class ServerControl {
    private static final Path SETSID = Path.of("/usr/bin/setsid");
    private static final String PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    private static final int LOG_TAIL = 2000;
    private static final long KILL_MARGIN_MILLIS = 2000;
    private static final long GONE_POLL_MILLIS = 100;

    private ServerControl() {
    }

    // ------------------------------------------------------------------------ start

    /**
     * Starts {@code command} in its own session ({@code setsid}, when installed: the server
     * outlives the JVM host) from {@code directory}, with an environment built from scratch
     * ({@code PATH}, the host's {@code LANG} or C.UTF-8, then {@code environment}), no input,
     * and its output and errors appended to {@code output} (whose folder is created).
     */
    public static Process launch(List<String> command, Path directory, Map<String, String> environment,
                                 Path output) throws IOException {
        List<String> argv = new ArrayList<>();
        if (Files.isExecutable(SETSID)) {
            argv.add(SETSID.toString());
        }
        argv.addAll(command);
        ProcessBuilder builder = new ProcessBuilder(argv);
        Map<String, String> env = builder.environment();
        String lang = env.get("LANG");
        env.clear();
        env.put("PATH", PATH);
        env.put("LANG", lang == null ? "C.UTF-8" : lang);
        env.putAll(environment);
        Files.createDirectories(output.toAbsolutePath().getParent());
        return builder.directory(directory.toFile())
            .redirectInput(new File("/dev/null"))
            .redirectOutput(ProcessBuilder.Redirect.appendTo(output.toFile()))
            .redirectErrorStream(true)
            .start();
    }

    /** The end of a server's output file, to say why a start failed. */
    public static String logTail(Path output) {
        try {
            String text = Files.readString(output, StandardCharsets.UTF_8);
            return text.substring(Math.max(0, text.length() - LOG_TAIL)).strip();
        } catch (IOException | RuntimeException e) {
            return "(no " + output + ")";
        }
    }

    /**
     * Looks at a starting server until it is up: {@code while (poll.again()) { look; return
     * when done; poll.problem(what is missing); }}, then report {@link Poll#last()}.
     *
     * @param intervalMillis time between looks
     * @param marginMillis time left before the deadline at which the polling ends
     */
    public static Poll poll(PluginContext ctx, long intervalMillis, long marginMillis) {
        return new Poll(ctx, intervalMillis, marginMillis);
    }

    /** The looks at a starting server, one {@link #again()} each; see {@link ServerControl#poll}. */
    public static final class Poll {
        private final PluginContext ctx;
        private final long intervalMillis;
        private final long marginMillis;
        private boolean looked;
        private String last = "no answer yet";

        private Poll(PluginContext ctx, long intervalMillis, long marginMillis) {
            this.ctx = ctx;
            this.intervalMillis = intervalMillis;
            this.marginMillis = marginMillis;
        }

        /**
         * True if there is time for a look: at once the first time, after a pause of the
         * interval later on; false once the operation is cancelled or out of time.
         */
        public boolean again() {
            if (looked && !pause(Math.min(intervalMillis, ctx.remainingMillis() - marginMillis))) {
                return false;
            }
            looked = true;
            return !ctx.isCancelled();
        }

        /** Records what the last look found missing. */
        public void problem(String problem) {
            last = problem;
        }

        /** What the last look found missing ("no answer yet" before any). */
        public String last() {
            return last;
        }
    }

    // ------------------------------------------------------------------------ stop

    /** The time to keep for SIGKILL at the end of a stop: 2 s, or a quarter of what is left if less. */
    public static long killMargin(PluginContext ctx) {
        return Math.min(KILL_MARGIN_MILLIS, ctx.remainingMillis() / 4);
    }

    /** Waits until {@code pid} is gone, or only {@code marginMillis} are left; true if gone. */
    public static boolean waitGone(long pid, PluginContext ctx, long marginMillis) {
        while (ProcessFinder.alive(pid)) {
            long left = ctx.remainingMillis() - marginMillis;
            if (left <= 0 || !pause(Math.min(GONE_POLL_MILLIS, left))) {
                return !ProcessFinder.alive(pid);
            }
        }
        return true;
    }

    /**
     * The last step of a stop, when asking did not do: SIGKILL to {@code pid}, then waits
     * for it to vanish until the deadline; {@link Ocf#SUCCESS}, or {@link Ocf#ERR_GENERIC}
     * if it survived. Each step is logged, naming the server as {@code what}.
     */
    public static int kill(long pid, String what, PluginContext ctx) {
        PluginLogger log = ctx.log();
        log.warning(what + " (pid " + pid + ") did not stop in time; killing it");
        ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
        if (waitGone(pid, ctx, 0)) {
            log.info(what + " (pid " + pid + ") killed");
            return Ocf.SUCCESS;
        }
        log.error(what + " (pid " + pid + ") survived SIGKILL");
        return Ocf.ERR_GENERIC;
    }

    /** Sleeps; false if interrupted (pyha cancelled the operation) or there is no time to sleep. */
    public static boolean pause(long millis) {
        if (millis <= 0) {
            return false;
        }
        try {
            TimeUnit.MILLISECONDS.sleep(millis);
            return true;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }
}
