package io.pyha.emulators.weblogic;

import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import javax.management.openmbean.CompositeData;
import javax.management.openmbean.CompositeDataSupport;
import javax.management.openmbean.CompositeType;
import javax.management.openmbean.OpenDataException;
import javax.management.openmbean.OpenType;
import javax.management.openmbean.SimpleType;
import javax.management.openmbean.ArrayType;

/**
 * EMULATOR (tests only, not WebLogic): one server's runtime MBean and its life cycle.
 *
 * <p>Invariant: the state only moves along WebLogic's documented paths (STARTING, STANDBY,
 * ADMIN, RESUMING, RUNNING on the way up; SUSPENDING or FORCE_SUSPENDING, ADMIN,
 * SHUTTING_DOWN or FORCE_SHUTTING_DOWN, SHUTDOWN on the way down; FAILED from anywhere
 * when the fault is set), and {@link #exited()} opens once SHUTDOWN is reached.
 */
final class ServerRuntime implements ServerRuntimeMBean {
    static final int HEALTH_OK = 0;
    static final int HEALTH_FAILED = 3;
    private static final CompositeType HEALTH_TYPE = healthType();

    private final String name;
    private final Faults faults;
    private final long stepMillis;
    private final CountDownLatch exited = new CountDownLatch(1);
    private volatile String state = "STARTING";
    private volatile boolean stopping;

    ServerRuntime(String name, Faults faults, long stepMillis) {
        this.name = name;
        this.faults = faults;
        this.stepMillis = stepMillis;
    }

    /** Opens once the server reached SHUTDOWN; the process then exits. */
    CountDownLatch exited() {
        return exited;
    }

    /** Walks up to RUNNING (or FAILED when the fault is set), a step at a time. */
    void boot(long delayMillis) {
        for (String next : List.of("STANDBY", "ADMIN", "RESUMING")) {
            pause(delayMillis / 4);
            moveTo(next);
        }
        pause(delayMillis / 4);
        moveTo(faults.has("failed") ? "FAILED" : "RUNNING");
    }

    @Override
    public String getName() {
        faults.hangIfAsked();
        return name;
    }

    @Override
    public String getState() {
        faults.hangIfAsked();
        failIfAsked();
        return state;
    }

    @Override
    public CompositeData getHealthState() {
        faults.hangIfAsked();
        failIfAsked();
        boolean failed = "FAILED".equals(state);
        String[] reasons = failed ? new String[] {"emulator fault: failed"} : new String[0];
        try {
            return new CompositeDataSupport(HEALTH_TYPE, Map.of(
                "State", failed ? HEALTH_FAILED : HEALTH_OK,
                "Subsystem", "ServerRuntime",
                "ReasonCode", reasons));
        } catch (OpenDataException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public void shutdown() {
        shutdown(0, false);
    }

    @Override
    public void shutdown(int timeout, boolean ignoreSessions) {
        faults.hangIfAsked();
        Emulator.log("Notice", "received a graceful shutdown request (timeout " + timeout + " s, ignoreSessions "
            + ignoreSessions + ")");
        if (faults.has("ignore-shutdown")) {
            Emulator.log("Warning", "ignoring the graceful shutdown (emulator fault: ignore-shutdown)");
            return;
        }
        goDown("SUSPENDING", "SHUTTING_DOWN");
    }

    @Override
    public void forceShutdown() {
        faults.hangIfAsked();
        Emulator.log("Notice", "received a forced shutdown request");
        if (faults.has("ignore-force-shutdown")) {
            Emulator.log("Warning", "ignoring the forced shutdown (emulator fault: ignore-force-shutdown)");
            return;
        }
        stopping = false;  // a force shutdown overtakes a graceful one in progress
        goDown("FORCE_SUSPENDING", "FORCE_SHUTTING_DOWN");
    }

    private synchronized void goDown(String suspending, String shuttingDown) {
        if (stopping) {
            return;
        }
        stopping = true;
        Thread worker = new Thread(() -> {
            for (String next : List.of(suspending, "ADMIN", shuttingDown, "SHUTDOWN")) {
                pause(stepMillis);
                moveTo(next);
            }
            exited.countDown();
        }, "emulator-shutdown");
        worker.setDaemon(true);
        worker.start();
    }

    private void failIfAsked() {
        if (faults.has("failed") && !"FAILED".equals(state) && !stopping) {
            moveTo("FAILED");
        }
    }

    private synchronized void moveTo(String next) {
        if ("SHUTDOWN".equals(state) || state.equals(next)) {
            return;
        }
        state = next;
        Emulator.log("Notice", "BEA-000365 Server state changed to " + next + ".");
    }

    private static void pause(long millis) {
        try {
            Thread.sleep(Math.max(0, millis));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static CompositeType healthType() {
        try {
            return new CompositeType("weblogic.health.HealthState",
                "EMULATOR: a server's self-reported health (WebLogic's HealthState as open data)",
                new String[] {"State", "Subsystem", "ReasonCode"},
                new String[] {"0 HEALTH_OK, 1 HEALTH_WARN, 2 HEALTH_CRITICAL, 3 HEALTH_FAILED, 4 HEALTH_OVERLOADED",
                    "the subsystem reporting", "why the state is not HEALTH_OK"},
                new OpenType<?>[] {SimpleType.INTEGER, SimpleType.STRING, ArrayType.getArrayType(SimpleType.STRING)});
        } catch (OpenDataException e) {
            throw new ExceptionInInitializerError(e);
        }
    }
}
