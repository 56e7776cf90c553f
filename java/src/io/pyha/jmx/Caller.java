package io.pyha.jmx;

/**
 * The JMX user of the call running on this thread, as the connector authenticated it.
 *
 * <p>{@link Guard} records it while it passes a call on, in plain Java code on the
 * connector's thread; the Python side of the MBean (reached through JPype) reads it from
 * {@link #user()}.
 */
public final class Caller {
    private static final ThreadLocal<String> CURRENT = new ThreadLocal<>();

    private Caller() {
    }

    /** The user name of the JMX call in progress on this thread; null outside one. */
    public static String user() {
        return CURRENT.get();
    }

    static String enter(String user) {
        String outer = CURRENT.get();
        CURRENT.set(user);
        return outer;
    }

    static void leave(String outer) {
        if (outer == null) {
            CURRENT.remove();
        } else {
            CURRENT.set(outer);
        }
    }
}
