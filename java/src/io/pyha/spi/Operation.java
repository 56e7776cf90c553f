package io.pyha.spi;

import java.util.Objects;
import java.util.Set;

/**
 * An operation a plugin supports, with its default timeout and, for monitor, a suggested
 * interval. A resource's own configuration overrides both.
 *
 * @param name            start, stop, monitor, promote, demote or validate
 * @param timeoutMillis   how long the operation may take by default; more than 0
 * @param intervalMillis  for monitor: how often to run it by default; 0 for one-shot operations
 */
public record Operation(String name, long timeoutMillis, long intervalMillis) {
    /** The operation names the Java SPI knows. */
    public static final Set<String> NAMES = Set.of("start", "stop", "monitor", "promote", "demote", "validate");

    /** Checks the invariant: a known name, a positive timeout, an interval not negative. */
    public Operation {
        Objects.requireNonNull(name, "name");
        if (!NAMES.contains(name)) {
            throw new IllegalArgumentException("unknown operation " + name + " (known: " + NAMES + ")");
        }
        if (timeoutMillis <= 0) {
            throw new IllegalArgumentException("operation " + name + ": the timeout must be more than 0");
        }
        if (intervalMillis < 0) {
            throw new IllegalArgumentException("operation " + name + ": the interval cannot be negative");
        }
    }

    /** A one-shot operation with a default timeout. */
    public static Operation of(String name, long timeoutMillis) {
        return new Operation(name, timeoutMillis, 0);
    }
}
