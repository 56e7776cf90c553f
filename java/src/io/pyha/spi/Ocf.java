package io.pyha.spi;

/**
 * OCF result codes, numbered as OCF (and pyha's {@code OcfCode}) number them.
 *
 * <p>Every operation of a {@link ResourcePlugin} returns one of these.
 */
public final class Ocf {
    /** The operation did what was asked (a monitor: the resource runs). */
    public static final int SUCCESS = 0;
    /** A generic failure; log why. */
    public static final int ERR_GENERIC = 1;
    /** The parameters are wrong. */
    public static final int ERR_ARGS = 2;
    /** The plugin does not implement this operation. */
    public static final int ERR_UNIMPLEMENTED = 3;
    /** Not enough privileges. */
    public static final int ERR_PERM = 4;
    /** A program or file the resource needs is missing on this node. */
    public static final int ERR_INSTALLED = 5;
    /** The configuration is wrong everywhere, not just here. */
    public static final int ERR_CONFIGURED = 6;
    /** A monitor: the resource is cleanly stopped. */
    public static final int NOT_RUNNING = 7;
    /** A monitor: the resource runs in its promoted role. */
    public static final int RUNNING_PROMOTED = 8;
    /** A monitor: the resource failed in its promoted role. */
    public static final int FAILED_PROMOTED = 9;

    private Ocf() {
    }

    /** A readable name for a code: "not running (7)", or "code 42" for unknown ones. */
    public static String label(int code) {
        String[] names = {
            "success", "generic error", "invalid arguments", "unimplemented", "insufficient privileges",
            "not installed", "not configured", "not running", "running promoted", "failed promoted",
        };
        return code >= 0 && code < names.length ? names[code] + " (" + code + ")" : "code " + code;
    }
}
