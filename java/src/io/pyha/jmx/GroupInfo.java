package io.pyha.jmx;

import java.beans.ConstructorProperties;

/** One group as {@link ClusterMXBean#getGroups()} shows it (a CompositeData to JMX clients). */
public final class GroupInfo {
    private final String name;
    private final String node;
    private final String[] activeOn;
    private final String state;
    private final String target;
    private final String why;

    /** A group row; the parameter names are the composite item names. */
    @ConstructorProperties({"name", "node", "activeOn", "state", "target", "why"})
    public GroupInfo(String name, String node, String[] activeOn, String state, String target,
                     String why) {
        this.name = name;
        this.node = node;
        this.activeOn = activeOn.clone();
        this.state = state;
        this.target = target;
        this.why = why;
    }

    /** The group's name. */
    public String getName() { return name; }

    /** The node it runs on when every member runs there; null otherwise. */
    public String getNode() { return node; }

    /** The nodes where any of its members is active. */
    public String[] getActiveOn() { return activeOn.clone(); }

    /** running, stopped, starting, failed, or active on several nodes. */
    public String getState() { return state; }

    /** Where the scheduler wants it now; null when it should be stopped. */
    public String getTarget() { return target; }

    /** Why it is (or goes) there, in words. */
    public String getWhy() { return why; }
}
