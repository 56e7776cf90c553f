package io.pyha.jmx;

/**
 * pyha's cluster as a JMX MXBean, registered as {@code io.pyha:type=Cluster} by the JMX
 * bridge ({@code python -m pyha.jvm.jmx_admin}) and served over RMI on loopback to
 * jconsole-style tools.
 *
 * <p>Every call goes to one node's admin service with the role the JMX user is mapped to,
 * so the admin service's role checks and audit apply. A refusal reaches the client as a
 * {@link SecurityException}, a bad argument (an unknown group, node or resource) as an
 * {@link IllegalArgumentException}, an unreachable or failing admin service as an
 * {@link IllegalStateException}; each inside the {@code RuntimeMBeanException} JMX wraps
 * it in.
 *
 * <p>The operations return a one-line summary of what the cluster did. They are not
 * JavaBean setters (which would make {@code setMaintenance} a write-only attribute), so
 * consoles list them as operations.
 */
public interface ClusterMXBean {
    /** Every configured node: online, standby, maintenance, coordinator, votes. */
    NodeInfo[] getNodes();

    /** Every group: the node it runs on, its state in a word, where it should be, and why. */
    GroupInfo[] getGroups();

    /** Every resource: its group, type, node, role and last message. */
    ResourceInfo[] getResources();

    /** The node that coordinates the cluster now; null while none is elected. */
    String getCoordinator();

    /** True while the answering node is part of a majority of the cluster's votes. */
    boolean isQuorum();

    /**
     * Move {@code group} to {@code node} (needs the operator role): a location preference
     * that stays until {@link #unmoveGroup} removes it.
     *
     * @return what the cluster was asked to do
     */
    String moveGroup(String group, String node);

    /** Remove the move of {@code group}: it is placed by its other rules again (operator). */
    String unmoveGroup(String group);

    /** Put {@code node} in standby: its groups move away (needs the operator role). */
    String standbyNode(String node);

    /** Take {@code node} out of standby (needs the operator role). */
    String onlineNode(String node);

    /** Forget the failures of {@code resource} on every node and probe it again (operator). */
    String cleanup(String resource);

    /** Cluster maintenance on (leave every resource as it is) or off (operator). */
    String setMaintenance(boolean on);
}
