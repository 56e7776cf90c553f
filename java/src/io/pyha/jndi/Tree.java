package io.pyha.jndi;

import io.pyha.admin.Json;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import javax.naming.ConfigurationException;
import javax.naming.InvalidNameException;
import javax.naming.NamingException;
import javax.naming.directory.Attribute;
import javax.naming.directory.Attributes;
import javax.naming.directory.BasicAttribute;
import javax.naming.directory.BasicAttributes;
import javax.naming.ldap.LdapName;

/**
 * One snapshot of a cluster's directory tree, read from the JSON file the cluster server
 * writes (format {@value #FORMAT}): every entry with its attributes, indexed by DN and by
 * parent.
 *
 * <p>Invariant: a tree never changes once loaded; entries are keyed by {@link LdapName},
 * whose equality ignores case and spacing as LDAP's distinguished name matching does, and
 * children keep the order of the file. {@link #load} reads a file again only when it
 * changed (another inode, size or modification time).
 */
final class Tree {
    static final String FORMAT = "pyha-jndi-tree-1";
    private static final Map<Path, Tree> CACHE = new ConcurrentHashMap<>();

    private final Object stamp;
    private final LdapName clusterDn;
    private final long epoch;
    private final Set<String> caseExact;
    private final Map<LdapName, Attributes> entries = new HashMap<>();
    private final Map<LdapName, List<LdapName>> children = new HashMap<>();

    private Tree(Object stamp, LdapName clusterDn, long epoch, Set<String> caseExact) {
        this.stamp = stamp;
        this.clusterDn = clusterDn;
        this.epoch = epoch;
        this.caseExact = caseExact;
    }

    /** The snapshot in {@code file}, from the cache if the file did not change. */
    static Tree load(Path file) throws NamingException {
        Path key = file.toAbsolutePath().normalize();
        Object stamp = stamp(key);
        Tree cached = CACHE.get(key);
        if (cached != null && cached.stamp.equals(stamp)) {
            return cached;
        }
        Tree fresh = parse(key, stamp);
        CACHE.put(key, fresh);
        return fresh;
    }

    private static Object stamp(Path file) throws NamingException {
        try {
            BasicFileAttributes a = Files.readAttributes(file, BasicFileAttributes.class);
            return List.of(String.valueOf(a.fileKey()), a.size(), a.lastModifiedTime().toMillis());
        } catch (IOException e) {
            throw configuration(file, "cannot read it: " + e);
        }
    }

    private static Tree parse(Path file, Object stamp) throws NamingException {
        Map<?, ?> root;
        try {
            Object value = Json.parse(Files.readString(file, StandardCharsets.UTF_8));
            root = value instanceof Map ? (Map<?, ?>) value : Map.of();
        } catch (IOException | IllegalArgumentException e) {
            throw configuration(file, "not a JSON snapshot: " + e.getMessage());
        }
        if (!FORMAT.equals(root.get("format"))) {
            throw configuration(file, "not a " + FORMAT + " snapshot");
        }
        Set<String> exact = new TreeSet<>();
        for (Object name : list(root.get("case_exact"))) {
            exact.add(String.valueOf(name).toLowerCase(Locale.ROOT));
        }
        Object epoch = root.get("epoch");
        Tree tree = new Tree(stamp, name(file, root.get("cluster_dn")),
                epoch instanceof Number ? ((Number) epoch).longValue() : 0L,
                Collections.unmodifiableSet(exact));
        for (Object item : list(root.get("entries"))) {
            if (!(item instanceof Map)) {
                throw configuration(file, "an entry is not a JSON object");
            }
            tree.add(name(file, ((Map<?, ?>) item).get("dn")), attributes(((Map<?, ?>) item).get("attributes")));
        }
        if (!tree.entries.containsKey(tree.clusterDn)) {
            throw configuration(file, "it has no entry for its cluster " + tree.clusterDn);
        }
        return tree;
    }

    private static List<?> list(Object value) {
        return value instanceof List ? (List<?>) value : List.of();
    }

    private static LdapName name(Path file, Object dn) throws NamingException {
        try {
            return new LdapName(String.valueOf(Objects.requireNonNull(dn, "no DN")));
        } catch (InvalidNameException | NullPointerException e) {
            throw configuration(file, "bad DN " + dn + ": " + e.getMessage());
        }
    }

    private static Attributes attributes(Object value) {
        BasicAttributes attrs = new BasicAttributes(true);
        if (value instanceof Map) {
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                Attribute attr = new BasicAttribute(String.valueOf(e.getKey()), true);
                for (Object v : list(e.getValue())) {
                    attr.add(String.valueOf(v));
                }
                if (attr.size() > 0) {
                    attrs.put(attr);
                }
            }
        }
        return attrs;
    }

    private static NamingException configuration(Path file, String why) {
        return new ConfigurationException(file + ": " + why);
    }

    private void add(LdapName dn, Attributes attrs) {
        if (entries.put(dn, attrs) == null && !dn.isEmpty()) {
            LdapName parent = (LdapName) dn.getPrefix(dn.size() - 1);
            children.computeIfAbsent(parent, p -> new ArrayList<>()).add(dn);
        }
    }

    /** The cluster entry's DN: where a context from the factory starts. */
    LdapName clusterDn() {
        return clusterDn;
    }

    /** The configuration epoch the snapshot was taken at. */
    long epoch() {
        return epoch;
    }

    /** Whether values of {@code attribute} match case-sensitively (caseExactMatch). */
    boolean caseExact(String attribute) {
        return caseExact.contains(attribute.toLowerCase(Locale.ROOT));
    }

    /** The attributes of {@code dn} (shared: copy before handing out), or null. */
    Attributes entry(LdapName dn) {
        return entries.get(dn);
    }

    /** Whether {@code dn} is an entry, or an ancestor of one (a suffix above the cluster). */
    boolean exists(LdapName dn) {
        return entries.containsKey(dn) || children.containsKey(dn);
    }

    /** The entries directly below {@code dn}, in the snapshot's order. */
    List<LdapName> children(LdapName dn) {
        return children.getOrDefault(dn, List.of());
    }
}
