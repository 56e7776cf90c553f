package io.pyha.spi;

import java.util.List;
import java.util.Objects;

/**
 * One parameter a resource type takes.
 *
 * @param name          the parameter's name, as written in the resource's configuration
 * @param type          how pyha checks and converts the value before the plugin sees it
 * @param required      true if every resource of the type must set it
 * @param defaultValue  the value used when the resource does not set it, or null for none
 * @param description   one or two sentences shown by {@code pyha resource-type show}
 * @param secret        true for passwords and keys: never logged or shown
 * @param options       the allowed values of a {@link ParameterType#SELECT}, else empty
 */
public record Parameter(
        String name, ParameterType type, boolean required, String defaultValue, String description,
        boolean secret, List<String> options) {

    /** Checks the invariant: a name, a type, a description (maybe empty), options only for selects. */
    public Parameter {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(type, "type");
        description = description == null ? "" : description;
        options = options == null ? List.of() : List.copyOf(options);
        if (name.isEmpty()) {
            throw new IllegalArgumentException("a parameter needs a name");
        }
        if (type == ParameterType.SELECT && options.isEmpty()) {
            throw new IllegalArgumentException("select parameter " + name + " needs options");
        }
    }

    /** An optional parameter without options. */
    public static Parameter optional(String name, ParameterType type, String defaultValue, String description) {
        return new Parameter(name, type, false, defaultValue, description, false, List.of());
    }

    /** A required parameter without options. */
    public static Parameter required(String name, ParameterType type, String description) {
        return new Parameter(name, type, true, null, description, false, List.of());
    }

    /** The same parameter, marked secret. */
    public Parameter asSecret() {
        return new Parameter(name, type, required, defaultValue, description, true, options);
    }
}
