package io.pyha.host;

import io.pyha.jndi.TreeContextFactory;
import java.io.IOException;
import java.io.InputStream;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.ArrayList;
import java.util.Hashtable;
import java.util.List;
import javax.naming.ConfigurationException;
import javax.naming.Context;
import javax.naming.NamingException;
import javax.naming.directory.DirContext;
import javax.naming.directory.InitialDirContext;
import javax.naming.ldap.InitialLdapContext;
import javax.naming.ldap.LdapContext;
import javax.naming.ldap.StartTlsRequest;
import javax.naming.ldap.StartTlsResponse;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocketFactory;
import javax.net.ssl.TrustManagerFactory;

/**
 * How the JVM host opens the cluster's directory for a plugin: JNDI's LDAP provider bound
 * with the cluster server's settings, or pyha's read-only snapshot of an embedded store.
 *
 * <p>Invariant: the password is kept in this object only; {@link #toString()} and every
 * message name the URLs and the bind DN, never the password. Each {@link #open()} gives a
 * new context the caller closes.
 */
public final class DirectoryAccess {
    private final String kind;
    private final List<String> urls;
    private final String clusterDn;
    private final String bindDn;
    private final String password;
    private final boolean startTls;
    private final SSLSocketFactory tls;
    private final int timeoutMillis;
    private final Path snapshot;

    private DirectoryAccess(String kind, List<String> urls, String clusterDn, String bindDn, String password,
                            boolean startTls, SSLSocketFactory tls, int timeoutMillis, Path snapshot) {
        this.kind = kind;
        this.urls = urls;
        this.clusterDn = clusterDn;
        this.bindDn = bindDn;
        this.password = password;
        this.startTls = startTls;
        this.tls = tls;
        this.timeoutMillis = timeoutMillis;
        this.snapshot = snapshot;
    }

    /**
     * An LDAP directory: {@code urls} (ldap:// or ldaps://, tried in order), the cluster
     * entry's DN (where contexts start), a simple bind, StartTLS on ldap:// URLs if asked,
     * and a CA file (PEM) to trust instead of the JDK's CAs, or null.
     */
    public static DirectoryAccess ldap(List<String> urls, String clusterDn, String bindDn, String password,
                                       boolean startTls, String caFile, int timeoutMillis) throws NamingException {
        if (urls.isEmpty()) {
            throw new ConfigurationException("no directory URL");
        }
        SSLSocketFactory tls = caFile == null ? null : trusting(Path.of(caFile));
        return new DirectoryAccess("ldap", List.copyOf(urls), clusterDn, bindDn, password, startTls, tls,
                Math.max(1, timeoutMillis), null);
    }

    /** A snapshot file written by the cluster server (see {@link TreeContextFactory}). */
    public static DirectoryAccess tree(String path) {
        return new DirectoryAccess("tree", List.of(), null, null, null, false, null, 0, Path.of(path));
    }

    /** A new context at the cluster's entry; the caller closes it. */
    public DirContext open() throws NamingException {
        if (snapshot != null) {
            return TreeContextFactory.open(snapshot);
        }
        // JNDI loads the provider and the socket factory by name through the thread's
        // context class loader, which in a plugin's thread may not see pyha's classes.
        Thread thread = Thread.currentThread();
        ClassLoader previous = thread.getContextClassLoader();
        thread.setContextClassLoader(DirectoryAccess.class.getClassLoader());
        try {
            return startTls ? startTls() : new InitialDirContext(environment(true));
        } finally {
            thread.setContextClassLoader(previous);
        }
    }

    private DirContext startTls() throws NamingException {
        LdapContext ctx = new InitialLdapContext(environment(false), null);
        try {
            StartTlsResponse response = (StartTlsResponse) ctx.extendedOperation(new StartTlsRequest());
            response.negotiate(tls != null ? tls : (SSLSocketFactory) SSLSocketFactory.getDefault());
            // The bind happens on the next operation, over the protected connection.
            ctx.addToEnvironment(Context.SECURITY_AUTHENTICATION, "simple");
            ctx.addToEnvironment(Context.SECURITY_PRINCIPAL, bindDn);
            ctx.addToEnvironment(Context.SECURITY_CREDENTIALS, password);
            ctx.getAttributes("", new String[] {"1.1"});  // bind now: fail here, not in the plugin
            return ctx;
        } catch (IOException | NamingException | RuntimeException e) {
            ctx.close();
            NamingException failed = new NamingException("StartTLS with " + urls.get(0) + " failed: " + e);
            failed.setRootCause(e);
            throw failed;
        }
    }

    private Hashtable<String, Object> environment(boolean bind) {
        Hashtable<String, Object> env = new Hashtable<>();
        env.put(Context.INITIAL_CONTEXT_FACTORY, "com.sun.jndi.ldap.LdapCtxFactory");
        List<String> withDn = new ArrayList<>();
        for (String url : urls) {
            withDn.add(url.replaceAll("/+$", "") + "/" + encode(clusterDn));
        }
        env.put(Context.PROVIDER_URL, String.join(" ", withDn));
        env.put("com.sun.jndi.ldap.connect.timeout", String.valueOf(timeoutMillis));
        env.put("com.sun.jndi.ldap.read.timeout", String.valueOf(Math.max(timeoutMillis, 10_000)));
        env.put(Context.REFERRAL, "ignore");
        env.put("java.naming.ldap.attributes.binary", "");  // pyha's attributes are all text
        if (tls != null && urls.stream().allMatch(url -> url.startsWith("ldaps:"))) {
            Sockets.use(tls);  // for ldap:// with StartTLS, negotiate() takes the factory
            env.put("java.naming.ldap.factory.socket", Sockets.class.getName());
        }
        if (bind && !bindDn.isEmpty()) {
            env.put(Context.SECURITY_AUTHENTICATION, "simple");
            env.put(Context.SECURITY_PRINCIPAL, bindDn);
            env.put(Context.SECURITY_CREDENTIALS, password);
        } else {
            env.put(Context.SECURITY_AUTHENTICATION, "none");
        }
        return env;
    }

    /** A DN as the path of an LDAP URL (RFC 4516): percent-encoded UTF-8. */
    private static String encode(String dn) {
        return URLEncoder.encode(dn, StandardCharsets.UTF_8).replace("+", "%20");
    }

    private static SSLSocketFactory trusting(Path caFile) throws NamingException {
        try (InputStream in = Files.newInputStream(caFile)) {
            KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
            store.load(null, null);
            int i = 0;
            for (Certificate cert : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                store.setCertificateEntry("ca-" + i++, cert);
            }
            TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            trust.init(store);
            SSLContext context = SSLContext.getInstance("TLS");
            context.init(null, trust.getTrustManagers(), null);
            return context.getSocketFactory();
        } catch (IOException | GeneralSecurityException e) {
            ConfigurationException failed = new ConfigurationException("cannot use the CA file " + caFile + ": " + e);
            failed.setRootCause(e);
            throw failed;
        }
    }

    @Override
    public String toString() {
        if (snapshot != null) {
            return "the directory snapshot " + snapshot;
        }
        return "the directory " + String.join(" ", urls) + " as " + (bindDn.isEmpty() ? "anonymous" : bindDn)
                + (startTls ? " with StartTLS" : "") + " at " + clusterDn;
    }

    /** Which backend: "ldap" or "tree". */
    public String kind() {
        return kind;
    }
}
