package io.pyha.jndi;

import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.Hashtable;
import javax.naming.ConfigurationException;
import javax.naming.Context;
import javax.naming.NamingException;
import javax.naming.directory.DirContext;
import javax.naming.spi.InitialContextFactory;

/**
 * JNDI's entry to the directory tree of a cluster that keeps its configuration in pyha's
 * embedded store: a read-only {@link DirContext} over the snapshot file the cluster
 * server writes under its state directory ({@code <state_dir>/jndi-tree.json}).
 *
 * <pre>
 *   env.put(Context.INITIAL_CONTEXT_FACTORY, "io.pyha.jndi.TreeContextFactory");
 *   env.put(Context.PROVIDER_URL, "file:///var/lib/pyha/jndi-tree.json");
 *   DirContext cluster = new InitialDirContext(env);   // at cn=&lt;cluster&gt;,&lt;base DN&gt;
 *   cluster.search("ou=groups", "(objectClass=pyhaGroup)", controls);
 * </pre>
 *
 * <p>The initial context is the cluster's entry, as an LDAP URL ending in the cluster's
 * DN gives with JNDI's LDAP provider, so the same names work against both. Each initial
 * context reads the newest snapshot (a file that did not change is not read again); a
 * context keeps the snapshot it started with.
 */
public final class TreeContextFactory implements InitialContextFactory {
    /** The snapshot file's format, as its "format" field says. */
    public static final String FORMAT = Tree.FORMAT;

    @Override
    public Context getInitialContext(Hashtable<?, ?> environment) throws NamingException {
        Object url = environment == null ? null : environment.get(Context.PROVIDER_URL);
        if (url == null) {
            throw new ConfigurationException(
                    "set " + Context.PROVIDER_URL + " to the snapshot, file:///<state_dir>/jndi-tree.json");
        }
        Tree tree = Tree.load(file(url.toString()));
        return new TreeContext(tree, tree.clusterDn(), environment);
    }

    /** A snapshot of {@code file} as a directory context at its cluster's entry. */
    public static DirContext open(Path file) throws NamingException {
        Tree tree = Tree.load(file);
        return new TreeContext(tree, tree.clusterDn(), null);
    }

    private static Path file(String url) throws NamingException {
        if (!url.startsWith("file:")) {
            return Path.of(url);
        }
        try {
            return Path.of(new URI(url));
        } catch (URISyntaxException | IllegalArgumentException e) {
            throw new ConfigurationException(url + " is not a file: URL of a snapshot: " + e.getMessage());
        }
    }
}
