package io.pyha.spi;

import java.nio.file.Path;
import java.util.Map;
import javax.naming.directory.DirContext;

/**
 * Everything one operation gets: the resource, its parameters, a logger, a deadline and a
 * cancel flag.
 *
 * <p>An operation must return by its deadline. When it does not, pyha gives it a short
 * grace after setting the cancel flag and interrupting its thread, then kills the whole JVM
 * host (and every other operation running in it) and reports a timeout. So wait in small
 * steps, check {@link #isCancelled()}, and never wait past {@link #remainingMillis()}.
 */
public interface PluginContext {
    /** The resource's name, as configured. */
    String resourceName();

    /** The operation being run: start, stop, monitor, promote or demote. */
    String operation();

    /** The node this JVM host runs on. */
    String node();

    /**
     * The resource's parameters, already checked against the meta data and converted to
     * text: integers and numbers in decimal, booleans as true/false, durations in seconds,
     * lists as words quoted as a POSIX shell would. Defaults are filled in.
     */
    Map<String, String> parameters();

    /** One parameter, or null if it is neither set nor has a default. */
    default String parameter(String name) {
        return parameters().get(name);
    }

    /** One parameter, or {@code fallback} if it is neither set nor has a default. */
    default String parameter(String name, String fallback) {
        String value = parameters().get(name);
        return value == null ? fallback : value;
    }

    /** For a recurring monitor, its interval in milliseconds; 0 for one-shot calls (a probe). */
    long intervalMillis();

    /** Where pyha logs what the plugin writes, under {@code pyha.resource.<name>}. */
    PluginLogger log();

    /** Wall-clock time ({@link System#currentTimeMillis()}) by which the operation must return. */
    long deadlineMillis();

    /** Milliseconds left before the deadline, never negative. */
    long remainingMillis();

    /** True once pyha gave up on the operation (deadline passed or the server cancelled it). */
    boolean isCancelled();

    /** The node's state directory, for files the plugin keeps between operations. */
    Path stateDir();

    /**
     * The cluster's directory (its LDAP tree) as a JNDI context, or null while the JVM host
     * is not connected to a directory. Plugins must cope with null.
     */
    DirContext directory();
}
