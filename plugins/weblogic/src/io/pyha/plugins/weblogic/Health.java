package io.pyha.plugins.weblogic;

import java.lang.reflect.Method;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.management.openmbean.CompositeData;

/**
 * A server's self-reported health: the {@code State} of WebLogic's
 * {@code weblogic.health.HealthState} (0 HEALTH_OK, 1 HEALTH_WARN, 2 HEALTH_CRITICAL,
 * 3 HEALTH_FAILED, 4 HEALTH_OVERLOADED) and its reason codes.
 *
 * <p>Invariant: {@code state} is one of those codes, or -1 when the attribute had a shape
 * this class does not know; only CRITICAL and FAILED count as unhealthy (a WARN or
 * OVERLOADED server still serves; restarting it would make things worse).
 */
record Health(int state, List<String> reasons) {
    static final List<String> NAMES = List.of(
        "HEALTH_OK", "HEALTH_WARN", "HEALTH_CRITICAL", "HEALTH_FAILED", "HEALTH_OVERLOADED");
    private static final Pattern NAMED = Pattern.compile("HEALTH_[A-Z]+");

    /**
     * Reads the HealthState attribute in any shape WebLogic hands it out: open data (a
     * CompositeData with an int item {@code State}), the HealthState object itself (its
     * {@code getState()}, when the client jars carry the class), a number, or text naming
     * the state ("HEALTH_OK", or a toString() holding it).
     */
    static Health of(Object value) {
        if (value instanceof CompositeData data) {
            Object state = data.containsKey("State") ? data.get("State") : null;
            Object reasons = data.containsKey("ReasonCode") ? data.get("ReasonCode") : null;
            return new Health(code(state), texts(reasons));
        }
        if (value instanceof Number || value instanceof String || value == null) {
            return new Health(code(value), List.of());
        }
        try {
            Method getState = value.getClass().getMethod("getState");
            Object reasons = value.getClass().getMethod("getReasonCode").invoke(value);
            return new Health(code(getState.invoke(value)), texts(reasons));
        } catch (ReflectiveOperationException | RuntimeException e) {
            return new Health(code(String.valueOf(value)), List.of());
        }
    }

    /** False only for HEALTH_CRITICAL and HEALTH_FAILED. */
    boolean healthy() {
        return state != 2 && state != 3;
    }

    /** True for HEALTH_OK. */
    boolean ok() {
        return state == 0;
    }

    private static int code(Object value) {
        if (value instanceof Number number && number.intValue() >= 0 && number.intValue() < NAMES.size()) {
            return number.intValue();
        }
        if (value != null) {
            Matcher m = NAMED.matcher(String.valueOf(value).toUpperCase(Locale.ROOT));
            if (m.find()) {
                return NAMES.indexOf(m.group());
            }
        }
        return -1;
    }

    private static List<String> texts(Object reasons) {
        if (reasons instanceof String[] array) {
            return Arrays.stream(array).filter(Objects::nonNull).toList();
        }
        return List.of();
    }

    @Override
    public String toString() {
        String name = state >= 0 ? NAMES.get(state) : "health unknown";
        return reasons.isEmpty() ? name : name + " " + reasons;
    }
}
