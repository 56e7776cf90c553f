package io.pyha.spi;

import java.util.Locale;

/** The type of a parameter, as pyha checks and converts it before a plugin sees it. */
public enum ParameterType {
    /** Any text. */
    STRING,
    /** A whole number. */
    INTEGER,
    /** A number. */
    FLOAT,
    /** true or false (pyha also accepts yes/no, on/off, 1/0 and hands over true/false). */
    BOOLEAN,
    /** A duration; pyha accepts 500ms, 10s, 2m and hands over seconds. */
    DURATION,
    /** One of the parameter's options. */
    SELECT,
    /** Words; pyha hands them over joined by spaces, quoted as a POSIX shell would. */
    LIST;

    /** The name pyha's meta data uses ("integer", "duration", ...). */
    public String wireName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
