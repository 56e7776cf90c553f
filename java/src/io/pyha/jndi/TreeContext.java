package io.pyha.jndi;

import java.util.ArrayList;
import java.util.Hashtable;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.NoSuchElementException;
import javax.naming.Binding;
import javax.naming.CompositeName;
import javax.naming.Context;
import javax.naming.InvalidNameException;
import javax.naming.Name;
import javax.naming.NameClassPair;
import javax.naming.NameNotFoundException;
import javax.naming.NameParser;
import javax.naming.NamingEnumeration;
import javax.naming.NamingException;
import javax.naming.OperationNotSupportedException;
import javax.naming.SizeLimitExceededException;
import javax.naming.directory.Attribute;
import javax.naming.directory.Attributes;
import javax.naming.directory.BasicAttributes;
import javax.naming.directory.DirContext;
import javax.naming.directory.ModificationItem;
import javax.naming.directory.SearchControls;
import javax.naming.directory.SearchResult;
import javax.naming.ldap.LdapName;

/**
 * A read-only {@link DirContext} over one entry of a {@link Tree} snapshot, which answers
 * as JNDI's LDAP provider does: names are LDAP DNs relative to this context, search
 * results are named relative to the entry searched from, and listings name children by
 * their RDN.
 *
 * <p>Invariant: nothing changes the tree. Every write (bind, rebind, unbind, rename,
 * create or destroy a subcontext, modify attributes) throws
 * {@link OperationNotSupportedException}; the attributes handed out are copies.
 */
final class TreeContext implements DirContext {
    private static final String READ_ONLY =
            "the pyha directory snapshot is read-only; change the configuration with pyha's admin tools";
    private static final NameParser PARSER = LdapName::new;

    private final Tree tree;
    private final LdapName here;
    private final Hashtable<Object, Object> env;

    TreeContext(Tree tree, LdapName here, Hashtable<?, ?> env) {
        this.tree = tree;
        this.here = here;
        this.env = env == null ? new Hashtable<>() : new Hashtable<>(env);
    }

    // ------------------------------------------------------------ names

    private static LdapName relative(Name name) throws InvalidNameException {
        if (name instanceof LdapName) {
            return (LdapName) name;
        }
        if (name instanceof CompositeName && name.size() <= 1) {
            return new LdapName(name.isEmpty() ? "" : name.get(0));
        }
        return new LdapName(name.toString());
    }

    private LdapName full(Name name) throws NamingException {
        LdapName dn = (LdapName) here.clone();
        dn.addAll(relative(name));
        if (!tree.exists(dn)) {
            throw new NameNotFoundException(dn + " is not in the directory (epoch " + tree.epoch() + ")");
        }
        return dn;
    }

    private static Name name(String name) throws InvalidNameException {
        return new LdapName(name);
    }

    private static String below(LdapName dn, LdapName base) {
        return dn.getSuffix(base.size()).toString();
    }

    private Attributes attributes(LdapName dn, String[] ids) throws NamingException {
        Attributes stored = tree.entry(dn);
        BasicAttributes out = new BasicAttributes(true);
        if (stored == null) {
            return out;  // a suffix above the cluster's entries: no attributes of its own
        }
        boolean all = ids == null || List.of(ids).contains("*");
        NamingEnumeration<? extends Attribute> each = stored.getAll();
        while (each.hasMore()) {
            Attribute attr = each.next();
            if (all || contains(ids, attr.getID())) {
                out.put((Attribute) attr.clone());
            }
        }
        return out;
    }

    private static boolean contains(String[] ids, String id) {
        for (String wanted : ids) {
            if (wanted.equalsIgnoreCase(id)) {
                return true;
            }
        }
        return false;
    }

    // ------------------------------------------------------------ reading

    @Override
    public Object lookup(Name name) throws NamingException {
        return new TreeContext(tree, full(name), env);
    }

    @Override
    public Object lookup(String name) throws NamingException {
        return lookup(name(name));
    }

    @Override
    public Object lookupLink(Name name) throws NamingException {
        return lookup(name);
    }

    @Override
    public Object lookupLink(String name) throws NamingException {
        return lookup(name);
    }

    @Override
    public NamingEnumeration<NameClassPair> list(Name name) throws NamingException {
        return walk(full(name), SearchControls.ONELEVEL_SCOPE, 0,
                (child, rdn) -> new NameClassPair(rdn, TreeContext.class.getName(), true));
    }

    @Override
    public NamingEnumeration<NameClassPair> list(String name) throws NamingException {
        return list(name(name));
    }

    @Override
    public NamingEnumeration<Binding> listBindings(Name name) throws NamingException {
        return walk(full(name), SearchControls.ONELEVEL_SCOPE, 0, (child, rdn) ->
                new Binding(rdn, TreeContext.class.getName(), new TreeContext(tree, child, env), true));
    }

    @Override
    public NamingEnumeration<Binding> listBindings(String name) throws NamingException {
        return listBindings(name(name));
    }

    @Override
    public Attributes getAttributes(Name name) throws NamingException {
        return attributes(full(name), null);
    }

    @Override
    public Attributes getAttributes(String name) throws NamingException {
        return getAttributes(name(name));
    }

    @Override
    public Attributes getAttributes(Name name, String[] attrIds) throws NamingException {
        return attributes(full(name), attrIds);
    }

    @Override
    public Attributes getAttributes(String name, String[] attrIds) throws NamingException {
        return getAttributes(name(name), attrIds);
    }

    // ------------------------------------------------------------ searching

    @Override
    public NamingEnumeration<SearchResult> search(Name name, String filter, SearchControls cons)
            throws NamingException {
        return search(full(name), Filter.parse(filter), cons == null ? new SearchControls() : cons);
    }

    @Override
    public NamingEnumeration<SearchResult> search(String name, String filter, SearchControls cons)
            throws NamingException {
        return search(name(name), filter, cons);
    }

    @Override
    public NamingEnumeration<SearchResult> search(Name name, String filterExpr, Object[] filterArgs,
                                                  SearchControls cons) throws NamingException {
        return search(name, Filter.substitute(filterExpr, filterArgs), cons);
    }

    @Override
    public NamingEnumeration<SearchResult> search(String name, String filterExpr, Object[] filterArgs,
                                                  SearchControls cons) throws NamingException {
        return search(name(name), filterExpr, filterArgs, cons);
    }

    @Override
    public NamingEnumeration<SearchResult> search(Name name, Attributes matchingAttributes,
                                                  String[] attributesToReturn) throws NamingException {
        StringBuilder filter = new StringBuilder("(&(objectClass=*)");
        if (matchingAttributes != null) {
            NamingEnumeration<? extends Attribute> each = matchingAttributes.getAll();
            while (each.hasMore()) {
                Attribute attr = each.next();
                if (attr.size() == 0) {
                    filter.append('(').append(attr.getID()).append("=*)");
                }
                NamingEnumeration<?> values = attr.getAll();
                while (values.hasMore()) {
                    filter.append('(').append(attr.getID()).append('=')
                            .append(Filter.escape(values.next())).append(')');
                }
            }
        }
        SearchControls cons = new SearchControls();
        cons.setSearchScope(SearchControls.ONELEVEL_SCOPE);
        cons.setReturningAttributes(attributesToReturn);
        return search(name, filter.append(')').toString(), cons);
    }

    @Override
    public NamingEnumeration<SearchResult> search(String name, Attributes matchingAttributes,
                                                  String[] attributesToReturn) throws NamingException {
        return search(name(name), matchingAttributes, attributesToReturn);
    }

    @Override
    public NamingEnumeration<SearchResult> search(Name name, Attributes matchingAttributes)
            throws NamingException {
        return search(name, matchingAttributes, null);
    }

    @Override
    public NamingEnumeration<SearchResult> search(String name, Attributes matchingAttributes)
            throws NamingException {
        return search(name(name), matchingAttributes, null);
    }

    private NamingEnumeration<SearchResult> search(LdapName base, Filter filter, SearchControls cons)
            throws NamingException {
        return walk(base, cons.getSearchScope(), cons.getCountLimit(), (dn, relative) -> {
            Attributes stored = tree.entry(dn);
            if (stored == null || !filter.matches(tree, stored)) {
                return null;
            }
            Object object = cons.getReturningObjFlag() ? new TreeContext(tree, dn, env) : null;
            SearchResult result = new SearchResult(relative, object,
                    attributes(dn, cons.getReturningAttributes()), true);
            result.setNameInNamespace(dn.toString());
            return result;
        });
    }

    // ------------------------------------------------------------ the walk

    /** What a walk makes of one entry it reaches; null leaves the entry out. */
    @FunctionalInterface
    private interface Visit<T> {
        T visit(LdapName dn, String relative) throws NamingException;
    }

    /**
     * The entries {@code scope} reaches from {@code base} (an LDAP search scope: the base
     * itself, its children, or else its whole subtree), in tree order, each named relative
     * to {@code base} and made into a result by {@code visit}; at most {@code limit} of them
     * are handed out (0: no limit).
     */
    private <T> NamingEnumeration<T> walk(LdapName base, int scope, long limit, Visit<T> visit)
            throws NamingException {
        List<LdapName> reached = new ArrayList<>();
        switch (scope) {
            case SearchControls.OBJECT_SCOPE:
                reached.add(base);
                break;
            case SearchControls.ONELEVEL_SCOPE:
                reached.addAll(tree.children(base));
                break;
            default:
                subtree(base, reached);
        }
        List<T> out = new ArrayList<>();
        for (LdapName dn : reached) {
            T item = visit.visit(dn, below(dn, base));
            if (item != null) {
                out.add(item);
            }
        }
        return new Results<>(out, limit);
    }

    private void subtree(LdapName dn, List<LdapName> out) {
        out.add(dn);
        for (LdapName child : tree.children(dn)) {
            subtree(child, out);
        }
    }

    // ------------------------------------------------------------ the context itself

    @Override
    public String getNameInNamespace() {
        return here.toString();
    }

    @Override
    public NameParser getNameParser(Name name) {
        return PARSER;
    }

    @Override
    public NameParser getNameParser(String name) {
        return PARSER;
    }

    @Override
    public Name composeName(Name name, Name prefix) throws NamingException {
        Name result = (Name) relative(prefix).clone();
        return result.addAll(relative(name));
    }

    @Override
    public String composeName(String name, String prefix) throws NamingException {
        return composeName(name(name), name(prefix)).toString();
    }

    @Override
    public Object addToEnvironment(String propName, Object propVal) {
        return env.put(propName, propVal);
    }

    @Override
    public Object removeFromEnvironment(String propName) {
        return env.remove(propName);
    }

    @Override
    public Hashtable<?, ?> getEnvironment() {
        return new Hashtable<>(env);
    }

    @Override
    public void close() {
        // Nothing to release: the snapshot is shared, read-only memory.
    }

    @Override
    public String toString() {
        return "pyha directory snapshot at " + here + " (epoch " + tree.epoch() + ")";
    }

    // ------------------------------------------------------------ writes: all refused

    @Override
    public void bind(Name name, Object obj) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void bind(String name, Object obj) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void bind(Name name, Object obj, Attributes attrs) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void bind(String name, Object obj, Attributes attrs) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void rebind(Name name, Object obj) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void rebind(String name, Object obj) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void rebind(Name name, Object obj, Attributes attrs) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void rebind(String name, Object obj, Attributes attrs) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void unbind(Name name) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void unbind(String name) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void rename(Name oldName, Name newName) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void rename(String oldName, String newName) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void destroySubcontext(Name name) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void destroySubcontext(String name) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public Context createSubcontext(Name name) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public Context createSubcontext(String name) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public DirContext createSubcontext(Name name, Attributes attrs) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public DirContext createSubcontext(String name, Attributes attrs) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void modifyAttributes(Name name, int modOp, Attributes attrs) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void modifyAttributes(String name, int modOp, Attributes attrs) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void modifyAttributes(Name name, ModificationItem[] mods) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public void modifyAttributes(String name, ModificationItem[] mods) throws NamingException {
        throw new OperationNotSupportedException(READ_ONLY);
    }

    @Override
    public DirContext getSchema(Name name) throws NamingException {
        throw new OperationNotSupportedException("the pyha directory snapshot carries no schema");
    }

    @Override
    public DirContext getSchema(String name) throws NamingException {
        return getSchema(name(name));
    }

    @Override
    public DirContext getSchemaClassDefinition(Name name) throws NamingException {
        throw new OperationNotSupportedException("the pyha directory snapshot carries no schema");
    }

    @Override
    public DirContext getSchemaClassDefinition(String name) throws NamingException {
        return getSchemaClassDefinition(name(name));
    }

    /**
     * Results in order; with a count limit, as many as the limit, then hasMore() throws
     * {@link SizeLimitExceededException} as the LDAP provider's enumerations do.
     */
    private static final class Results<T> implements NamingEnumeration<T> {
        private final Iterator<T> items;
        private final int total;
        private final long limit;
        private int given;

        Results(List<T> items, long limit) {
            this.items = items.iterator();
            this.total = items.size();
            this.limit = limit;
        }

        @Override
        public boolean hasMore() throws NamingException {
            if (limit > 0 && given >= limit && total > limit) {
                throw new SizeLimitExceededException(
                        String.format(Locale.ROOT, "%d entries match; the count limit is %d", total, limit));
            }
            return items.hasNext();
        }

        @Override
        public T next() throws NamingException {
            if (!hasMore()) {
                throw new NoSuchElementException();
            }
            given++;
            return items.next();
        }

        @Override
        public boolean hasMoreElements() {
            return (limit <= 0 || given < limit) && items.hasNext();
        }

        @Override
        public T nextElement() {
            if (!hasMoreElements()) {
                throw new NoSuchElementException();
            }
            given++;
            return items.next();
        }

        @Override
        public void close() {
            // Nothing to release.
        }
    }
}
