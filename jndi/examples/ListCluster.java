/*
 * Lists a pyha cluster's nodes, groups and resources from its LDAP directory,
 * with nothing but the JDK (JNDI's InitialDirContext).
 *
 *   javac -d classes jndi/examples/ListCluster.java
 *   java -cp classes ListCluster ldap://127.0.0.1:38901 dc=pyha,dc=test pyha \
 *        cn=admin,dc=pyha,dc=test /path/to/admin.password
 *
 * A cluster on pyha's embedded store has no LDAP server; its nodes write the same tree to
 * a snapshot that pyha's read-only JNDI provider serves (pyha-spi.jar on the class path;
 * the bind DN and password file are not used):
 *
 *   java -cp classes:pyha-spi.jar ListCluster file:///var/lib/pyha/jndi-tree.json o=pyha pyha - -
 *
 * LDAP keeps no order among entries or values, so the order of nodes, groups and the
 * start order of resources come from each entry's pyhaPosition.
 */

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Hashtable;
import java.util.List;
import javax.naming.Context;
import javax.naming.NamingEnumeration;
import javax.naming.NamingException;
import javax.naming.directory.Attribute;
import javax.naming.directory.Attributes;
import javax.naming.directory.DirContext;
import javax.naming.directory.InitialDirContext;
import javax.naming.directory.SearchControls;
import javax.naming.directory.SearchResult;

public final class ListCluster {

    /** One entry: its RDN value, its position and its attributes. */
    private record Item(String name, int position, Attributes attributes) {
        String first(String id) throws NamingException {
            Attribute a = attributes.get(id);
            return a == null ? null : (String) a.get();
        }

        List<String> all(String id) throws NamingException {
            List<String> out = new ArrayList<>();
            Attribute a = attributes.get(id);
            if (a != null) {
                NamingEnumeration<?> values = a.getAll();
                while (values.hasMore()) {
                    out.add((String) values.next());
                }
            }
            Collections.sort(out);
            return out;
        }
    }

    private ListCluster() {
    }

    private static DirContext connect(String url, String clusterDn, String bindDn,
                                      String password) throws NamingException {
        Hashtable<String, Object> env = new Hashtable<>();
        if (url.startsWith("file:")) {
            // A snapshot of an embedded store: pyha's own read-only provider (pyha-spi.jar).
            env.put(Context.INITIAL_CONTEXT_FACTORY, "io.pyha.jndi.TreeContextFactory");
            env.put(Context.PROVIDER_URL, url);
            return new InitialDirContext(env);
        }
        env.put(Context.INITIAL_CONTEXT_FACTORY, "com.sun.jndi.ldap.LdapCtxFactory");
        env.put(Context.PROVIDER_URL, url + "/" + clusterDn);
        env.put(Context.SECURITY_AUTHENTICATION, "simple");
        env.put(Context.SECURITY_PRINCIPAL, bindDn);
        env.put(Context.SECURITY_CREDENTIALS, password);
        env.put("com.sun.jndi.ldap.connect.timeout", "5000");
        env.put("com.sun.jndi.ldap.read.timeout", "10000");
        return new InitialDirContext(env);
    }

    /** The entries of one object class directly under `where`, by position then name. */
    private static List<Item> children(DirContext ctx, String where, String objectClass)
            throws NamingException {
        SearchControls controls = new SearchControls();
        controls.setSearchScope(SearchControls.ONELEVEL_SCOPE);
        List<Item> items = new ArrayList<>();
        NamingEnumeration<SearchResult> found =
                ctx.search(where, "(objectClass={0})", new Object[] {objectClass}, controls);
        while (found.hasMore()) {
            SearchResult result = found.next();
            Attributes attrs = result.getAttributes();
            Attribute position = attrs.get("pyhaPosition");
            int pos = position == null ? Integer.MAX_VALUE
                                       : Integer.parseInt((String) position.get());
            String rdn = result.getName().split(",", 2)[0];
            items.add(new Item(rdn.substring(rdn.indexOf('=') + 1), pos, attrs));
        }
        items.sort(Comparator.comparingInt(Item::position).thenComparing(Item::name));
        return items;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: ListCluster URL BASE_DN CLUSTER BIND_DN PASSWORD_FILE");
            System.exit(2);
        }
        String password = args[0].startsWith("file:") ? ""
                : Files.readString(Path.of(args[4]), StandardCharsets.UTF_8).strip();
        String clusterDn = "cn=" + args[2] + "," + args[1];
        DirContext ctx = connect(args[0], clusterDn, args[3], password);
        try {
            Attributes cluster = ctx.getAttributes("", new String[] {"pyhaEpoch"});
            Attribute epoch = cluster.get("pyhaEpoch");
            System.out.println("cluster " + args[2] + " epoch " + (epoch == null ? "0" : epoch.get()));
            for (Item node : children(ctx, "ou=nodes", "pyhaNode")) {
                System.out.println("node " + node.name() + " " + String.join(" ", node.all("pyhaAddress")));
            }
            for (Item group : children(ctx, "ou=groups", "pyhaGroup")) {
                System.out.println("group " + group.name());
                for (Item r : children(ctx, "cn=" + group.name() + ",ou=groups", "pyhaResource")) {
                    String role = r.first("pyhaTargetRole");
                    System.out.println("  resource " + r.name() + " type=" + r.first("pyhaType")
                            + (role == null ? "" : " target-role=" + role));
                    for (String parameter : r.all("pyhaParameter")) {
                        System.out.println("    " + parameter);
                    }
                }
            }
        } finally {
            ctx.close();
        }
    }
}
