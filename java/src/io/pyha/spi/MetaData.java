package io.pyha.spi;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * What a plugin says of itself: its type name and provider, its parameters, and its
 * operations with their default timeouts. pyha converts it to its own {@code MetaData}
 * and names the plugin {@code java:<provider>:<name>}.
 *
 * <p>Invariant: the name and provider are valid type-name parts, parameter and operation
 * names are unique, and start, stop and monitor are always listed (with a default
 * timeout of 20 s when the plugin does not list them itself).
 */
public final class MetaData {
    private static final Pattern NAME = Pattern.compile("[A-Za-z][A-Za-z0-9_.-]*");
    private static final long DEFAULT_TIMEOUT_MILLIS = 20_000;

    private final String name;
    private final String provider;
    private final String version;
    private final String description;
    private final List<Parameter> parameters;
    private final List<Operation> operations;
    private final boolean promotable;

    private MetaData(Builder b) {
        this.name = checkedName(b.name, "name");
        this.provider = checkedName(b.provider, "provider");
        this.version = b.version;
        this.description = b.description;
        this.parameters = List.copyOf(b.parameters);
        this.operations = withRequired(b.operations);
        this.promotable = b.promotable;
        unique(parameters.stream().map(Parameter::name).toList(), "parameter");
        unique(operations.stream().map(Operation::name).toList(), "operation");
    }

    /** A builder for the resource type {@code name}; the provider defaults to "local". */
    public static Builder builder(String name) {
        return new Builder(name);
    }

    /** The type part of the resource type's name ("tomcat"). */
    public String name() {
        return name;
    }

    /** The provider part ("pyha" for bundled plugins, your organisation's name otherwise). */
    public String provider() {
        return provider;
    }

    /** The plugin's version, shown by {@code pyha resource-type show}. */
    public String version() {
        return version;
    }

    /** What a resource of this type is, in a sentence or two. */
    public String description() {
        return description;
    }

    /** The parameters, in the order the plugin declared them. */
    public List<Parameter> parameters() {
        return parameters;
    }

    /** The operations with their default timeouts; start, stop and monitor always among them. */
    public List<Operation> operations() {
        return operations;
    }

    /** True if the type has a promoted role (promote and demote). */
    public boolean promotable() {
        return promotable;
    }

    @Override
    public String toString() {
        return "java:" + provider + ":" + name;
    }

    private static String checkedName(String value, String what) {
        if (value == null || !NAME.matcher(value).matches()) {
            throw new IllegalArgumentException(
                what + " " + value + " must start with a letter and hold only letters, digits, '_', '.' or '-'");
        }
        return value;
    }

    private static List<Operation> withRequired(List<Operation> declared) {
        List<Operation> all = new ArrayList<>(declared);
        for (String required : List.of("start", "stop", "monitor")) {
            if (declared.stream().noneMatch(o -> o.name().equals(required))) {
                all.add(Operation.of(required, DEFAULT_TIMEOUT_MILLIS));
            }
        }
        return List.copyOf(all);
    }

    private static void unique(List<String> names, String what) {
        Set<String> seen = new LinkedHashSet<>();
        for (String n : names) {
            if (!seen.add(n)) {
                throw new IllegalArgumentException(what + " " + n + " is declared twice");
            }
        }
    }

    /** Collects the parts of a {@link MetaData}; {@link #build()} checks them. */
    public static final class Builder {
        private final String name;
        private String provider = "local";
        private String version = "1.0";
        private String description = "";
        private final List<Parameter> parameters = new ArrayList<>();
        private final List<Operation> operations = new ArrayList<>();
        private boolean promotable;

        private Builder(String name) {
            this.name = name;
        }

        /** The provider part of the type name. */
        public Builder provider(String value) {
            this.provider = value;
            return this;
        }

        /** The plugin's version. */
        public Builder version(String value) {
            this.version = Objects.requireNonNull(value, "version");
            return this;
        }

        /** What a resource of this type is. */
        public Builder description(String value) {
            this.description = Objects.requireNonNull(value, "description");
            return this;
        }

        /** Adds a parameter. */
        public Builder parameter(Parameter value) {
            parameters.add(Objects.requireNonNull(value, "parameter"));
            return this;
        }

        /** Adds an operation with its default timeout in milliseconds. */
        public Builder operation(String opName, long timeoutMillis) {
            operations.add(Operation.of(opName, timeoutMillis));
            return this;
        }

        /** Adds an operation with its default timeout and interval in milliseconds. */
        public Builder operation(String opName, long timeoutMillis, long intervalMillis) {
            operations.add(new Operation(opName, timeoutMillis, intervalMillis));
            return this;
        }

        /** Marks the type promotable (it implements promote and demote). */
        public Builder promotable(boolean value) {
            this.promotable = value;
            return this;
        }

        /** The checked meta data; IllegalArgumentException says what is wrong. */
        public MetaData build() {
            return new MetaData(this);
        }
    }
}
