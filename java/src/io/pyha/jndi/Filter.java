package io.pyha.jndi;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import javax.naming.NamingEnumeration;
import javax.naming.NamingException;
import javax.naming.directory.Attribute;
import javax.naming.directory.Attributes;
import javax.naming.directory.InvalidSearchFilterException;

/**
 * An LDAP search filter (RFC 4515) evaluated against a snapshot's entries: and, or, not,
 * equality, presence, substrings, {@code >=}, {@code <=} and {@code ~=} (as equality).
 *
 * <p>Invariant: a parsed filter is immutable. Values match ignoring case unless the tree
 * says the attribute is case-exact, as the pyha schema's matching rules do; ordering
 * compares numbers as numbers when both sides are integers. Extensible matches
 * ({@code :=}) are refused with {@link InvalidSearchFilterException}.
 */
abstract class Filter {
    private static final int MAX_DEPTH = 64;

    /** Whether the entry with {@code attrs} of {@code tree} matches. */
    abstract boolean matches(Tree tree, Attributes attrs) throws NamingException;

    /** {@code text} parsed; InvalidSearchFilterException says where it is wrong. */
    static Filter parse(String text) throws InvalidSearchFilterException {
        String trimmed = text.strip();
        if (!trimmed.startsWith("(")) {
            trimmed = "(" + trimmed + ")";  // JNDI's LDAP provider takes "cn=x" too
        }
        Parser parser = new Parser(trimmed);
        Filter filter = parser.filter(0);
        if (parser.at != trimmed.length()) {
            throw parser.error("text after the filter");
        }
        return filter;
    }

    /** {@code expression} with each {@code {n}} replaced by argument n, escaped (RFC 4515). */
    static String substitute(String expression, Object[] args) throws InvalidSearchFilterException {
        StringBuilder out = new StringBuilder();
        int i = 0;
        while (i < expression.length()) {
            char c = expression.charAt(i);
            if (c != '{') {
                out.append(c);
                i++;
                continue;
            }
            int close = expression.indexOf('}', i);
            if (close < 0) {
                throw new InvalidSearchFilterException("unbalanced { in " + expression);
            }
            int index;
            try {
                index = Integer.parseInt(expression.substring(i + 1, close).strip());
            } catch (NumberFormatException e) {
                throw new InvalidSearchFilterException("bad argument reference in " + expression);
            }
            if (args == null || index < 0 || index >= args.length) {
                throw new InvalidSearchFilterException("no argument {" + index + "} for " + expression);
            }
            out.append(escape(args[index]));
            i = close + 1;
        }
        return out.toString();
    }

    /** {@code arg} escaped for a filter's value: {@code *()\\} and NUL as hex, bytes all as hex. */
    static String escape(Object arg) {
        StringBuilder out = new StringBuilder();
        if (arg instanceof byte[]) {
            for (byte b : (byte[]) arg) {
                out.append(String.format("\\%02x", b & 0xff));
            }
            return out.toString();
        }
        for (char c : String.valueOf(arg).toCharArray()) {
            if (c == '*' || c == '(' || c == ')' || c == '\\' || c == 0) {
                out.append(String.format("\\%02x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }

    /** The values of {@code id} in {@code attrs}, as strings; empty when absent. */
    static List<String> values(Attributes attrs, String id) throws NamingException {
        List<String> out = new ArrayList<>();
        Attribute attr = attrs.get(id);
        if (attr != null) {
            NamingEnumeration<?> all = attr.getAll();
            while (all.hasMore()) {
                out.add(String.valueOf(all.next()));
            }
        }
        return out;
    }

    // ------------------------------------------------------------ the filters

    /** (&...) and (|...): every part must match, or any one part suffices. */
    private static final class Combined extends Filter {
        private final List<Filter> parts;
        private final boolean any;

        Combined(List<Filter> parts, boolean any) {
            this.parts = parts;
            this.any = any;
        }

        @Override
        boolean matches(Tree tree, Attributes attrs) throws NamingException {
            for (Filter part : parts) {
                if (part.matches(tree, attrs) == any) {
                    return any;
                }
            }
            return !any;
        }
    }

    private static final class Not extends Filter {
        private final Filter inner;

        Not(Filter inner) {
            this.inner = inner;
        }

        @Override
        boolean matches(Tree tree, Attributes attrs) throws NamingException {
            return !inner.matches(tree, attrs);
        }
    }

    private static final class Present extends Filter {
        private final String attribute;

        Present(String attribute) {
            this.attribute = attribute;
        }

        @Override
        boolean matches(Tree tree, Attributes attrs) {
            Attribute attr = attrs.get(attribute);
            return attr != null && attr.size() > 0;
        }
    }

    /** Equality, ordering or approximate match of one attribute against one value. */
    private static final class Compare extends Filter {
        private final String attribute;
        private final String op;
        private final String value;

        Compare(String attribute, String op, String value) {
            this.attribute = attribute;
            this.op = op;
            this.value = value;
        }

        @Override
        boolean matches(Tree tree, Attributes attrs) throws NamingException {
            boolean exact = tree.caseExact(attribute) && !op.equals("~=");
            for (String v : values(attrs, attribute)) {
                int order = compare(v, value, exact);
                if (op.equals(">=") ? order >= 0 : op.equals("<=") ? order <= 0 : order == 0) {
                    return true;
                }
            }
            return false;
        }

        private static int compare(String a, String b, boolean exact) {
            try {
                return Long.compare(Long.parseLong(a.strip()), Long.parseLong(b.strip()));
            } catch (NumberFormatException e) {
                return exact ? a.compareTo(b) : fold(a).compareTo(fold(b));
            }
        }
    }

    /** A substrings match: initial*any*...*final, each part optional. */
    private static final class Substrings extends Filter {
        private final String attribute;
        private final List<String> parts;

        Substrings(String attribute, List<String> parts) {
            this.attribute = attribute;
            this.parts = parts;
        }

        @Override
        boolean matches(Tree tree, Attributes attrs) throws NamingException {
            boolean exact = tree.caseExact(attribute);
            for (String v : values(attrs, attribute)) {
                if (match(exact ? v : fold(v), exact)) {
                    return true;
                }
            }
            return false;
        }

        private boolean match(String v, boolean exact) {
            int last = parts.size() - 1;
            String first = exact ? parts.get(0) : fold(parts.get(0));
            String end = exact ? parts.get(last) : fold(parts.get(last));
            if (!v.startsWith(first) || v.length() < first.length() + end.length()
                    || !v.endsWith(end)) {
                return false;
            }
            int at = first.length();
            int limit = v.length() - end.length();
            for (int i = 1; i < last; i++) {
                String any = exact ? parts.get(i) : fold(parts.get(i));
                int found = v.indexOf(any, at);
                if (found < 0 || found + any.length() > limit) {
                    return false;
                }
                at = found + any.length();
            }
            return true;
        }
    }

    private static String fold(String s) {
        return s.strip().replaceAll("\\s+", " ").toLowerCase(Locale.ROOT);
    }

    // ------------------------------------------------------------ parsing

    private static final class Parser {
        private final String text;
        private int at;

        Parser(String text) {
            this.text = text;
        }

        InvalidSearchFilterException error(String why) {
            return new InvalidSearchFilterException(why + " at offset " + at + " of " + text);
        }

        private void expect(char c) throws InvalidSearchFilterException {
            if (at >= text.length() || text.charAt(at) != c) {
                throw error("expected '" + c + "'");
            }
            at++;
        }

        Filter filter(int depth) throws InvalidSearchFilterException {
            if (depth > MAX_DEPTH) {
                throw error("filter nested too deep");
            }
            expect('(');
            if (at >= text.length()) {
                throw error("unexpected end");
            }
            Filter result;
            switch (text.charAt(at)) {
                case '&':
                    at++;
                    result = new Combined(list(depth), false);
                    break;
                case '|':
                    at++;
                    result = new Combined(list(depth), true);
                    break;
                case '!':
                    at++;
                    result = new Not(filter(depth + 1));
                    break;
                default:
                    result = item();
            }
            expect(')');
            return result;
        }

        private List<Filter> list(int depth) throws InvalidSearchFilterException {
            List<Filter> parts = new ArrayList<>();
            while (at < text.length() && text.charAt(at) == '(') {
                parts.add(filter(depth + 1));
            }
            return parts;
        }

        private Filter item() throws InvalidSearchFilterException {
            int start = at;
            while (at < text.length() && "=<>~:()".indexOf(text.charAt(at)) < 0) {
                at++;
            }
            String attribute = text.substring(start, at).strip();
            int semicolon = attribute.indexOf(';');
            if (semicolon >= 0) {
                attribute = attribute.substring(0, semicolon);  // options such as ;binary
            }
            if (attribute.isEmpty() || at >= text.length()) {
                throw error("expected an attribute and a comparison");
            }
            char c = text.charAt(at);
            if (c == ':') {
                throw error("extensible matches are not supported");
            }
            String op;
            if (c == '=') {
                op = "=";
                at++;
            } else if ((c == '<' || c == '>' || c == '~') && text.startsWith("=", at + 1)) {
                op = c + "=";
                at += 2;
            } else {
                throw error("expected =, >=, <= or ~=");
            }
            List<String> parts = value(!op.equals("="));
            if (op.equals("=") && parts.size() == 2 && parts.get(0).isEmpty() && parts.get(1).isEmpty()) {
                return new Present(attribute);
            }
            if (parts.size() > 1) {
                return new Substrings(attribute, parts);
            }
            return new Compare(attribute, op, parts.get(0));
        }

        /** The value up to ')', unescaped and split at unescaped '*' (unless literal). */
        private List<String> value(boolean literal) throws InvalidSearchFilterException {
            List<String> parts = new ArrayList<>();
            ByteArrayOutputStream part = new ByteArrayOutputStream();
            while (at < text.length() && text.charAt(at) != ')') {
                char c = text.charAt(at);
                if (c == '(') {
                    throw error("unescaped '(' in a value");
                }
                if (c == '*' && !literal) {
                    parts.add(part.toString(StandardCharsets.UTF_8));
                    part.reset();
                    at++;
                } else if (c == '\\') {
                    if (at + 3 > text.length()) {
                        throw error("bad escape");
                    }
                    try {
                        part.write(Integer.parseInt(text.substring(at + 1, at + 3), 16));
                    } catch (NumberFormatException e) {
                        throw error("bad escape");
                    }
                    at += 3;
                } else {
                    int point = text.codePointAt(at);
                    byte[] bytes = new String(Character.toChars(point)).getBytes(StandardCharsets.UTF_8);
                    part.write(bytes, 0, bytes.length);
                    at += Character.charCount(point);
                }
            }
            parts.add(part.toString(StandardCharsets.UTF_8));
            return parts;
        }
    }
}
