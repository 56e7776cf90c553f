package io.pyha.spi;

import java.util.List;
import java.util.Map;

/**
 * A resource type written in Java: what every Java plugin implements.
 *
 * <p>Register an implementation in your jar's
 * {@code META-INF/services/io.pyha.spi.ResourcePlugin} (one class name a line); pyha
 * finds it with {@link java.util.ServiceLoader}, so it needs a public no-argument
 * constructor. One instance serves every resource of the type, from several threads at
 * once, so keep per-resource state out of fields.
 *
 * <p>Operations return an {@link Ocf} code, must be idempotent (starting a running
 * resource, or stopping a stopped one, succeeds) and must return by the context's
 * deadline. An exception thrown by an operation counts as a failure of the call.
 */
public interface ResourcePlugin {
    /** What the plugin is: name, provider, parameters, operations. Called once, when loaded. */
    MetaData metaData();

    /**
     * Checks beyond the declared types; one message per problem, each naming its
     * parameter ("catalina_base: no such directory"). Parameters arrive as in
     * {@link PluginContext#parameters()}. No problems by default.
     */
    default List<String> validate(Map<String, String> params) {
        return List.of();
    }

    /** Starts the resource; SUCCESS once it runs. */
    int start(PluginContext ctx);

    /** Stops the resource; SUCCESS once it is gone. */
    int stop(PluginContext ctx);

    /** SUCCESS if the resource runs and is healthy, NOT_RUNNING if cleanly stopped, else a failure code. */
    int monitor(PluginContext ctx);

    /** Promotes the resource (promotable types only). */
    default int promote(PluginContext ctx) {
        return Ocf.ERR_UNIMPLEMENTED;
    }

    /** Demotes the resource (promotable types only). */
    default int demote(PluginContext ctx) {
        return Ocf.ERR_UNIMPLEMENTED;
    }
}
