/*
 * Reads a pyha cluster's tree through JNDI and prints what it saw, one fact a line, so
 * that the same run against OpenLDAP (JNDI's LDAP provider) and against a snapshot
 * (io.pyha.jndi.TreeContextFactory) can be compared line by line.
 *
 *   java TreeCheck URL CLUSTER_DN [BIND_DN PASSWORD_FILE] [--writes]
 *
 * URL is ldap://... or file:///.../jndi-tree.json. --writes also tries every write
 * method and prints what each threw (the snapshot must refuse them all).
 */

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Hashtable;
import java.util.List;
import java.util.concurrent.Callable;
import javax.naming.Binding;
import javax.naming.Context;
import javax.naming.NameClassPair;
import javax.naming.NamingEnumeration;
import javax.naming.NamingException;
import javax.naming.directory.Attribute;
import javax.naming.directory.Attributes;
import javax.naming.directory.BasicAttribute;
import javax.naming.directory.BasicAttributes;
import javax.naming.directory.DirContext;
import javax.naming.directory.InitialDirContext;
import javax.naming.directory.ModificationItem;
import javax.naming.directory.SearchControls;
import javax.naming.directory.SearchResult;

public final class TreeCheck {
    private TreeCheck() {
    }

    private static DirContext connect(String[] args) throws Exception {
        Hashtable<String, Object> env = new Hashtable<>();
        if (args[0].startsWith("file:")) {
            env.put(Context.INITIAL_CONTEXT_FACTORY, "io.pyha.jndi.TreeContextFactory");
            env.put(Context.PROVIDER_URL, args[0]);
        } else {
            env.put(Context.INITIAL_CONTEXT_FACTORY, "com.sun.jndi.ldap.LdapCtxFactory");
            env.put(Context.PROVIDER_URL, args[0] + "/" + args[1]);
            env.put(Context.SECURITY_AUTHENTICATION, "simple");
            env.put(Context.SECURITY_PRINCIPAL, args[2]);
            env.put(Context.SECURITY_CREDENTIALS, Files.readString(Path.of(args[3])).strip());
        }
        return new InitialDirContext(env);
    }

    private static List<String> names(NamingEnumeration<SearchResult> found, String attribute)
            throws NamingException {
        List<String> out = new ArrayList<>();
        try {
            while (found.hasMore()) {
                SearchResult r = found.next();
                Attribute a = attribute == null ? null : r.getAttributes().get(attribute);
                out.add("[" + r.getName() + "]" + (a == null ? "" : " " + a.get()));
            }
        } catch (NamingException e) {
            out.add("then " + e.getClass().getSimpleName());
            return out;  // keep the order: the exception comes last
        }
        Collections.sort(out);
        return out;
    }

    private static SearchControls scope(int scope) {
        SearchControls c = new SearchControls();
        c.setSearchScope(scope);
        return c;
    }

    private static void show(String label, Callable<Object> what) {
        try {
            System.out.println(label + ": " + what.call());
        } catch (Exception e) {
            System.out.println(label + ": " + e.getClass().getSimpleName());
        }
    }

    public static void main(String[] args) throws Exception {
        DirContext ctx = connect(args);
        int one = SearchControls.ONELEVEL_SCOPE;
        int sub = SearchControls.SUBTREE_SCOPE;
        try {
            show("epoch", () -> ctx.getAttributes("", new String[] {"pyhaEpoch"}).get("pyhaEpoch").get());
            show("name", () -> ctx.getNameInNamespace().toLowerCase());
            show("list groups", () -> {
                List<String> out = new ArrayList<>();
                NamingEnumeration<NameClassPair> e = ctx.list("ou=groups");
                while (e.hasMore()) {
                    out.add(e.next().getName());
                }
                Collections.sort(out);
                return out;
            });
            show("bindings groups", () -> {
                List<String> out = new ArrayList<>();
                NamingEnumeration<Binding> e = ctx.listBindings("ou=groups");
                while (e.hasMore()) {
                    Binding b = e.next();
                    DirContext child = (DirContext) b.getObject();
                    out.add(b.getName() + " at " + child.getNameInNamespace().toLowerCase()
                            + " has " + child.getAttributes("").get("cn").get());
                }
                Collections.sort(out);
                return out;
            });
            show("lookup web", () -> ((DirContext) ctx.lookup("cn=web,ou=groups")).getAttributes("cn=vip").get("pyhaType").get());
            show("attrs vip", () -> {
                Attributes a = ctx.getAttributes("cn=vip,cn=web,ou=groups");
                List<String> ids = new ArrayList<>();
                NamingEnumeration<String> e = a.getIDs();
                while (e.hasMore()) {
                    ids.add(e.next().toLowerCase());
                }
                Collections.sort(ids);
                return ids;
            });
            show("attrs vip cn only", () -> ctx.getAttributes("cn=vip,cn=web,ou=groups", new String[] {"cn"}).size());
            show("missing", () -> ctx.getAttributes("cn=nope,ou=groups"));
            show("resources", () -> names(ctx.search("", "(objectClass=pyhaResource)", scope(sub)), "pyhaType"));
            show("groups one level", () -> names(ctx.search("ou=groups", "(objectClass=pyhaGroup)", scope(one)), null));
            show("object scope", () -> names(ctx.search("cn=web,ou=groups", "(objectClass=*)", scope(SearchControls.OBJECT_SCOPE)), "cn"));
            show("subtree of web", () -> names(ctx.search("cn=web,ou=groups", "(objectClass=*)", scope(sub)), "cn"));
            show("argument", () -> names(ctx.search("", "(&(objectClass=pyhaResource)(pyhaType={0}))",
                    new Object[] {"ocf:heartbeat:IPaddr2"}, scope(sub)), null));
            show("argument escaped", () -> names(ctx.search("", "(cn={0})", new Object[] {"v*"}, scope(sub)), null));
            show("substring", () -> names(ctx.search("", "(cn=v*)", scope(sub)), null));
            show("substring middle", () -> names(ctx.search("", "(pyhaType=*heart*Addr*)", scope(sub)), null));
            show("or", () -> names(ctx.search("", "(|(cn=vip)(cn=pg))", scope(sub)), null));
            show("not", () -> names(ctx.search("cn=web,ou=groups", "(!(cn=vip))", scope(one)), null));
            show("presence", () -> names(ctx.search("", "(pyhaTargetRole=*)", scope(sub)), "pyhaTargetRole"));
            show("case of a name", () -> names(ctx.search("", "(CN=VIP)", scope(sub)), null));
            show("case of a parameter", () -> names(ctx.search("", "(pyhaParameter=IP=192.0.2.10)", scope(sub)), null));
            show("parameter", () -> names(ctx.search("", "(pyhaParameter=ip=192.0.2.10)", scope(sub)), null));
            show("position >=", () -> names(ctx.search("ou=groups", "(pyhaPosition>=1)", scope(one)), null));
            show("no parentheses", () -> names(ctx.search("ou=nodes", "cn=n1", scope(one)), null));
            show("count limit", () -> {
                SearchControls c = scope(sub);
                c.setCountLimit(1);
                return names(ctx.search("", "(objectClass=pyhaResource)", c), null).size();
            });
            show("returning cn", () -> {
                SearchControls c = scope(one);
                c.setReturningAttributes(new String[] {"cn"});
                NamingEnumeration<SearchResult> e = ctx.search("ou=nodes", "(cn=n2)", c);
                return e.next().getAttributes().size();
            });
            show("matching attributes", () -> {
                BasicAttributes match = new BasicAttributes(true);
                match.put("pyhaType", "postgresql");
                return names(ctx.search("cn=db,ou=groups", match), "cn");
            });
            show("bad filter", () -> names(ctx.search("", "(&(cn=vip)", scope(sub)), null));
            if (List.of(args).contains("--writes")) {
                Attributes attrs = new BasicAttributes("cn", "x", true);
                ModificationItem[] mods = {new ModificationItem(DirContext.REPLACE_ATTRIBUTE, new BasicAttribute("cn", "y"))};
                show("bind", () -> { ctx.bind("cn=x,ou=groups", null, attrs); return "done"; });
                show("rebind", () -> { ctx.rebind("cn=web,ou=groups", null, attrs); return "done"; });
                show("unbind", () -> { ctx.unbind("cn=web,ou=groups"); return "done"; });
                show("rename", () -> { ctx.rename("cn=web,ou=groups", "cn=www,ou=groups"); return "done"; });
                show("create", () -> ctx.createSubcontext("cn=x,ou=groups", attrs));
                show("destroy", () -> { ctx.destroySubcontext("cn=db,ou=groups"); return "done"; });
                show("modify", () -> { ctx.modifyAttributes("cn=web,ou=groups", mods); return "done"; });
                show("modify op", () -> { ctx.modifyAttributes("cn=web,ou=groups", DirContext.REPLACE_ATTRIBUTE, attrs); return "done"; });
                show("still there", () -> ctx.getAttributes("cn=web,ou=groups").get("cn").get());
            }
        } finally {
            ctx.close();
        }
    }
}
