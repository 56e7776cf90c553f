package io.pyha.emulators.weblogic;

import javax.management.openmbean.CompositeData;

/**
 * EMULATOR (tests only, not WebLogic): the part of WebLogic's documented
 * {@code weblogic.management.runtime.ServerRuntimeMBean} that pyha's weblogic plugin uses,
 * registered as {@code com.bea:Name=<server>,Type=ServerRuntime}.
 */
public interface ServerRuntimeMBean {
    /** The server's name (the {@code -Dweblogic.Name} it was started with). */
    String getName();

    /** The life-cycle state: STARTING, STANDBY, ADMIN, RESUMING, RUNNING, SUSPENDING, SHUTTING_DOWN, FAILED ... */
    String getState();

    /**
     * The self-reported health, as open data of type {@code weblogic.health.HealthState}:
     * items {@code State} (int, 0 HEALTH_OK ... 4 HEALTH_OVERLOADED), {@code Subsystem} (String)
     * and {@code ReasonCode} (String[]).
     */
    CompositeData getHealthState();

    /** Graceful shutdown with the server's default timeout; returns once it has begun. */
    void shutdown();

    /** Graceful shutdown: sessions are waited for up to {@code timeout} seconds unless ignored. */
    void shutdown(int timeout, boolean ignoreSessions);

    /** Immediate shutdown, in-flight work dropped. */
    void forceShutdown();
}
