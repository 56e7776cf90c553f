package io.pyha.jmx;

import java.beans.ConstructorProperties;

/** One node as {@link ClusterMXBean#getNodes()} shows it (a CompositeData to JMX clients). */
public final class NodeInfo {
    private final String name;
    private final boolean online;
    private final boolean standby;
    private final boolean maintenance;
    private final boolean coordinator;
    private final int votes;

    /** A node row; the parameter names are the composite item names. */
    @ConstructorProperties({"name", "online", "standby", "maintenance", "coordinator", "votes"})
    public NodeInfo(String name, boolean online, boolean standby, boolean maintenance,
                    boolean coordinator, int votes) {
        this.name = name;
        this.online = online;
        this.standby = standby;
        this.maintenance = maintenance;
        this.coordinator = coordinator;
        this.votes = votes;
    }

    /** The node's name. */
    public String getName() { return name; }

    /** True when the answering node hears it (heartbeats arrive). */
    public boolean isOnline() { return online; }

    /** True when it is in standby: nothing runs there. */
    public boolean isStandby() { return standby; }

    /** True when it is in maintenance: its resources are left as they are. */
    public boolean isMaintenance() { return maintenance; }

    /** True when it coordinates the cluster. */
    public boolean isCoordinator() { return coordinator; }

    /** Its votes towards quorum. */
    public int getVotes() { return votes; }
}
