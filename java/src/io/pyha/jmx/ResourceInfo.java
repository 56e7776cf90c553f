package io.pyha.jmx;

import java.beans.ConstructorProperties;

/** One resource as {@link ClusterMXBean#getResources()} shows it (a CompositeData to clients). */
public final class ResourceInfo {
    private final String name;
    private final String group;
    private final String type;
    private final String node;
    private final String role;
    private final String[] activeOn;
    private final String message;
    private final String lastOperation;

    /** A resource row; the parameter names are the composite item names. */
    @ConstructorProperties({"name", "group", "type", "node", "role", "activeOn", "message",
                            "lastOperation"})
    public ResourceInfo(String name, String group, String type, String node, String role,
                        String[] activeOn, String message, String lastOperation) {
        this.name = name;
        this.group = group;
        this.type = type;
        this.node = node;
        this.role = role;
        this.activeOn = activeOn.clone();
        this.message = message;
        this.lastOperation = lastOperation;
    }

    /** The resource's name. */
    public String getName() { return name; }

    /** The group it belongs to. */
    public String getGroup() { return group; }

    /** Its resource type, class:provider:type. */
    public String getType() { return type; }

    /** The node it is active on, when exactly one; null otherwise. */
    public String getNode() { return node; }

    /** started, stopped, promoted, failed, ... */
    public String getRole() { return role; }

    /** Every node it is active on. */
    public String[] getActiveOn() { return activeOn.clone(); }

    /** The last thing its plugin said. */
    public String getMessage() { return message; }

    /** Its most recent operation, in words. */
    public String getLastOperation() { return lastOperation; }
}
