package io.pyha.spi;

/**
 * Where a plugin writes its log lines; they appear in pyha's log under
 * {@code pyha.resource.<resource name>}.
 *
 * <p>pyha implements this interface on the Python side of the JVM host. A warning or
 * error logged during an operation becomes the operation's message when the plugin
 * returns a bare failure code, so log why something failed before returning it.
 * Never log secrets (passwords among the parameters).
 */
public interface PluginLogger {
    /** Detail for whoever debugs the plugin. */
    void debug(String message);

    /** Something worth knowing happened (the resource started, a step was taken). */
    void info(String message);

    /** Something is wrong but the operation goes on, or the reason a failure code is returned. */
    void warning(String message);

    /** The operation failed; say why. */
    void error(String message);
}
