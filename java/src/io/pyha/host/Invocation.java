package io.pyha.host;

import io.pyha.spi.Ocf;
import io.pyha.spi.PluginContext;
import io.pyha.spi.PluginLogger;
import io.pyha.spi.ResourcePlugin;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import javax.naming.NamingException;
import javax.naming.directory.DirContext;

/**
 * One operation of one resource in the JVM host, and the context the plugin sees.
 *
 * <p>Invariant: the deadline is fixed when the invocation is created, from the time the
 * server had left; {@link #cancel()} only ever turns the cancel flag on.
 */
public final class Invocation implements PluginContext {
    private final ResourcePlugin plugin;
    private final String operation;
    private final String resource;
    private final String node;
    private final Map<String, String> params;
    private final long deadlineNanos;
    private final long deadlineMillis;
    private final long intervalMillis;
    private final Path stateDir;
    private final PluginLogger log;
    private final DirectoryAccess directoryAccess;
    private DirContext directory;
    private volatile boolean cancelled;
    private volatile Thread runner;

    /** An operation that must return within {@code timeoutMillis} from now, without a directory. */
    public Invocation(
            ResourcePlugin plugin, String operation, String resource, String node, Map<String, String> params,
            long timeoutMillis, long intervalMillis, String stateDir, PluginLogger log) {
        this(plugin, operation, resource, node, params, timeoutMillis, intervalMillis, stateDir, log, null);
    }

    /**
     * An operation that must return within {@code timeoutMillis} from now; {@link #directory()}
     * opens {@code directoryAccess} (null: no directory) on first use.
     */
    public Invocation(
            ResourcePlugin plugin, String operation, String resource, String node, Map<String, String> params,
            long timeoutMillis, long intervalMillis, String stateDir, PluginLogger log,
            DirectoryAccess directoryAccess) {
        this.plugin = plugin;
        this.operation = operation;
        this.resource = resource;
        this.node = node;
        this.params = Collections.unmodifiableMap(new LinkedHashMap<>(params));
        this.deadlineNanos = System.nanoTime() + Math.max(0, timeoutMillis) * 1_000_000L;
        this.deadlineMillis = System.currentTimeMillis() + Math.max(0, timeoutMillis);
        this.intervalMillis = intervalMillis;
        this.stateDir = Path.of(stateDir);
        this.log = log;
        this.directoryAccess = directoryAccess;
    }

    /** Runs the operation in the calling thread; what the plugin throws propagates. */
    public int run() {
        runner = Thread.currentThread();
        try {
            switch (operation) {
                case "start":
                    return plugin.start(this);
                case "stop":
                    return plugin.stop(this);
                case "monitor":
                    return plugin.monitor(this);
                case "promote":
                    return plugin.promote(this);
                case "demote":
                    return plugin.demote(this);
                default:
                    return Ocf.ERR_UNIMPLEMENTED;
            }
        } finally {
            runner = null;
            closeDirectory();
            Thread.interrupted();  // a late cancel must not leak into the thread's next call
        }
    }

    private synchronized void closeDirectory() {
        if (directory != null) {
            try {
                directory.close();
            } catch (NamingException e) {
                log.debug("closing " + directoryAccess + ": " + e);
            }
            directory = null;
        }
    }

    /** Turns the cancel flag on and interrupts the plugin's thread, if it still runs. */
    public void cancel() {
        cancelled = true;
        Thread thread = runner;
        if (thread != null) {
            thread.interrupt();
        }
    }

    @Override
    public String resourceName() {
        return resource;
    }

    @Override
    public String operation() {
        return operation;
    }

    @Override
    public String node() {
        return node;
    }

    @Override
    public Map<String, String> parameters() {
        return params;
    }

    @Override
    public long intervalMillis() {
        return intervalMillis;
    }

    @Override
    public PluginLogger log() {
        return log;
    }

    @Override
    public long deadlineMillis() {
        return deadlineMillis;
    }

    @Override
    public long remainingMillis() {
        return Math.max(0, (deadlineNanos - System.nanoTime()) / 1_000_000L);
    }

    @Override
    public boolean isCancelled() {
        return cancelled || System.nanoTime() - deadlineNanos >= 0;
    }

    @Override
    public Path stateDir() {
        return stateDir;
    }

    /**
     * The directory, opened on the first call and closed when the operation returns; null
     * without one, or (with a warning in the resource's log) when it cannot be opened.
     */
    @Override
    public synchronized DirContext directory() {
        if (directory == null && directoryAccess != null && runner != null) {
            try {
                directory = directoryAccess.open();
            } catch (NamingException e) {
                log.warning("cannot open " + directoryAccess + ": " + e);
            }
        }
        return directory;
    }
}
