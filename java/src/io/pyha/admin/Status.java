package io.pyha.admin;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The cluster as the answering node sees it: a typed view of the main fields of the
 * {@code status} answer (the Python client's {@code StatusReport}). The whole answer,
 * timing included, is {@code admin.call("status")}. {@code omitted} counts the resources
 * a lean answer leaves out (more than 200, none asked in full); 0: all are listed.
 *
 * <p>Fields the answer lacks read as null, 0 or false, so an older or newer endpoint
 * still gives a view.
 */
public record Status(String cluster, String answeredBy, String mode, String coordinator, long term,
                     long epoch, boolean quorum, boolean maintenance, List<String> members,
                     String decision, List<Node> nodes, List<Group> groups, List<Resource> resources,
                     long omitted) {

    /** One node: reachable, standby, maintenance, and whether it coordinates. */
    public record Node(String name, boolean online, boolean standby, boolean maintenance,
                       boolean coordinator) {
    }

    /**
     * One group: the node it runs on (null unless every member runs there), where its
     * members are active, its state in a word, where the scheduler wants it, and why.
     */
    public record Group(String name, String node, List<String> activeOn, String state, String target,
                        String why) {
    }

    /** One resource: where it is active, its role, fail counts per node, the last message. */
    public record Resource(String name, String group, String type, String node, String role,
                           Map<String, Long> failCounts, String message) {
    }

    /** The view of a {@code status} answer. */
    static Status of(Map<String, Object> m) {
        return new Status(text(m, "cluster"), text(m, "answered_by"), text(m, "mode"),
                text(m, "coordinator"), whole(m, "term"), whole(m, "epoch"), flag(m, "quorum"),
                flag(m, "maintenance"), texts(m, "members"), text(m, "decision"),
                rows(m, "nodes").stream().map(Status::node).toList(),
                rows(m, "groups").stream().map(Status::group).toList(),
                rows(m, "resources").stream().map(Status::resource).toList(), whole(m, "omitted"));
    }

    private static Node node(Map<String, Object> m) {
        return new Node(text(m, "name"), flag(m, "online"), flag(m, "standby"), flag(m, "maintenance"),
                flag(m, "coordinator"));
    }

    static Group group(Map<String, Object> m) {
        return new Group(text(m, "name"), text(m, "node"), texts(m, "active_on"), text(m, "state"),
                text(m, "target"), text(m, "why"));
    }

    private static Resource resource(Map<String, Object> m) {
        Map<String, Long> counts = new LinkedHashMap<>();
        for (Map.Entry<String, Object> e : map(m.get("fail_counts")).entrySet()) {
            counts.put(e.getKey(), e.getValue() instanceof Number n ? n.longValue() : 0L);
        }
        return new Resource(text(m, "name"), text(m, "group"), text(m, "type"), text(m, "node"),
                text(m, "role"), Map.copyOf(counts), text(m, "message"));
    }

    // -- reading the answer's plain values (shared by the other views) --------------------

    static String text(Map<String, Object> m, String key) {
        Object value = m.get(key);
        return value == null ? null : value.toString();
    }

    static boolean flag(Map<String, Object> m, String key) {
        return Boolean.TRUE.equals(m.get(key));
    }

    static long whole(Map<String, Object> m, String key) {
        return m.get(key) instanceof Number n ? n.longValue() : 0L;
    }

    static List<String> texts(Map<String, Object> m, String key) {
        List<String> out = new ArrayList<>();
        if (m.get(key) instanceof List<?> list) {
            for (Object item : list) {
                out.add(String.valueOf(item));
            }
        }
        return List.copyOf(out);
    }

    static List<Map<String, Object>> rows(Map<String, Object> m, String key) {
        return rows(m.get(key));
    }

    static List<Map<String, Object>> rows(Object value) {
        List<Map<String, Object>> out = new ArrayList<>();
        if (value instanceof List<?> list) {
            for (Object item : list) {
                out.add(map(item));
            }
        }
        return out;
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> map(Object value) {
        // Json.parse gives every JSON object as a Map<String, Object>
        return value instanceof Map<?, ?> ? (Map<String, Object>) value : Map.of();
    }
}
