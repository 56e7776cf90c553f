package io.pyha.admin;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The JSON the admin endpoint speaks (Pyro5's json serializer is Python's {@code json}
 * module), read into plain Java values and written from them, with the JDK only.
 *
 * <p>Reading gives {@code Map<String, Object>} (in the document's order), {@code
 * List<Object>}, {@code String}, {@code Long} (or {@code BigInteger} beyond a long),
 * {@code Double}, {@code Boolean} and {@code null}; Python's {@code NaN}, {@code
 * Infinity} and {@code -Infinity} are read as the doubles they stand for. Maps and lists
 * read are unmodifiable. Writing takes the same types, any {@code Number}, arrays,
 * collections and enums (by name).
 *
 * <p>Invariant: the reader accepts one JSON value with nothing but white space after
 * it, nested at most {@value #MAX_DEPTH} deep; anything else is an
 * {@link IllegalArgumentException} that names the offset.
 */
public final class Json {
    /** The deepest nesting read: deeper input is refused instead of exhausting the stack. */
    public static final int MAX_DEPTH = 256;

    private final String text;
    private int at;

    private Json(String text) {
        this.text = text;
    }

    /** The value {@code text} holds. */
    public static Object parse(String text) {
        Json reader = new Json(text);
        Object value = reader.value(0);
        reader.space();
        if (reader.at != text.length()) {
            throw reader.error("text after the value");
        }
        return value;
    }

    /** {@code value} as compact JSON text. */
    public static String write(Object value) {
        StringBuilder out = new StringBuilder();
        write(value, out);
        return out.toString();
    }

    /** {@code value} as JSON text indented by two spaces per level (for people to read). */
    public static String pretty(Object value) {
        StringBuilder out = new StringBuilder();
        pretty(value, out, 0);
        return out.toString();
    }

    // ------------------------------------------------------------------ writing

    private static void write(Object value, StringBuilder out) {
        if (value instanceof Map<?, ?> map) {
            out.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> entry : map.entrySet()) {
                out.append(first ? "" : ",");
                first = false;
                string(key(entry.getKey()), out);
                out.append(':');
                write(entry.getValue(), out);
            }
            out.append('}');
        } else if (isList(value)) {
            out.append('[');
            boolean first = true;
            for (Object item : items(value)) {
                out.append(first ? "" : ",");
                first = false;
                write(item, out);
            }
            out.append(']');
        } else {
            scalar(value, out);
        }
    }

    private static void pretty(Object value, StringBuilder out, int depth) {
        String inner = "\n" + "  ".repeat(depth + 1);
        if (value instanceof Map<?, ?> map && !map.isEmpty()) {
            out.append('{');
            String comma = "";
            for (Map.Entry<?, ?> entry : map.entrySet()) {
                out.append(comma).append(inner);
                comma = ",";
                string(key(entry.getKey()), out);
                out.append(": ");
                pretty(entry.getValue(), out, depth + 1);
            }
            out.append('\n').append("  ".repeat(depth)).append('}');
        } else if (isList(value) && !items(value).isEmpty()) {
            out.append('[');
            String comma = "";
            for (Object item : items(value)) {
                out.append(comma).append(inner);
                comma = ",";
                pretty(item, out, depth + 1);
            }
            out.append('\n').append("  ".repeat(depth)).append(']');
        } else {
            write(value, out);
        }
    }

    private static String key(Object key) {
        if (key instanceof String text) {
            return text;
        }
        throw new IllegalArgumentException("JSON object keys must be strings, got " + key);
    }

    private static boolean isList(Object value) {
        return value instanceof Collection<?> || value instanceof Object[]
                || value instanceof int[] || value instanceof long[] || value instanceof double[];
    }

    private static List<Object> items(Object value) {
        List<Object> items = new ArrayList<>();
        if (value instanceof Collection<?> collection) {
            items.addAll(collection);
        } else if (value instanceof Object[] array) {
            Collections.addAll(items, array);
        } else if (value instanceof int[] ints) {
            for (int i : ints) {
                items.add(i);
            }
        } else if (value instanceof long[] longs) {
            for (long l : longs) {
                items.add(l);
            }
        } else if (value instanceof double[] doubles) {
            for (double d : doubles) {
                items.add(d);
            }
        }
        return items;
    }

    private static void scalar(Object value, StringBuilder out) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof Boolean flag) {
            out.append(flag.booleanValue());
        } else if (value instanceof Double || value instanceof Float) {
            out.append(number(((Number) value).doubleValue()));
        } else if (value instanceof Number number) {
            out.append(number instanceof BigDecimal big ? big.toString() : number.toString());
        } else if (value instanceof Enum<?> constant) {
            string(constant.name(), out);
        } else if (value instanceof CharSequence || value instanceof Character) {
            string(value.toString(), out);
        } else {
            throw new IllegalArgumentException(
                    "cannot write a " + value.getClass().getName() + " as JSON");
        }
    }

    private static String number(double d) {
        if (Double.isNaN(d)) {
            return "NaN";
        }
        if (Double.isInfinite(d)) {
            return d > 0 ? "Infinity" : "-Infinity";
        }
        if (d == Math.rint(d) && Math.abs(d) < 1e15) {
            return (long) d + ".0";
        }
        return Double.toString(d);
    }

    private static void string(String text, StringBuilder out) {
        out.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20 || c == 0x2028 || c == 0x2029) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    // ------------------------------------------------------------------ reading

    private Object value(int depth) {
        if (depth > MAX_DEPTH) {
            throw error("nested more than " + MAX_DEPTH + " deep");
        }
        space();
        if (at >= text.length()) {
            throw error("a value is missing");
        }
        char c = text.charAt(at);
        return switch (c) {
            case '{' -> object(depth);
            case '[' -> array(depth);
            case '"' -> string();
            case 't' -> word("true", Boolean.TRUE);
            case 'f' -> word("false", Boolean.FALSE);
            case 'n' -> word("null", null);
            case 'N' -> word("NaN", Double.NaN);
            case 'I' -> word("Infinity", Double.POSITIVE_INFINITY);
            default -> {
                if (c == '-' && text.startsWith("-Infinity", at)) {
                    yield word("-Infinity", Double.NEGATIVE_INFINITY);
                }
                if (c == '-' || (c >= '0' && c <= '9')) {
                    yield number();
                }
                throw error("unexpected character '" + c + "'");
            }
        };
    }

    private Map<String, Object> object(int depth) {
        at++;  // {
        Map<String, Object> map = new LinkedHashMap<>();
        space();
        if (peek() == '}') {
            at++;
            return Collections.unmodifiableMap(map);
        }
        while (true) {
            space();
            if (peek() != '"') {
                throw error("an object key must be a string");
            }
            String key = string();
            space();
            expect(':');
            map.put(key, value(depth + 1));
            space();
            char c = next();
            if (c == '}') {
                return Collections.unmodifiableMap(map);
            }
            if (c != ',') {
                throw error("expected ',' or '}' in an object");
            }
        }
    }

    private List<Object> array(int depth) {
        at++;  // [
        List<Object> list = new ArrayList<>();
        space();
        if (peek() == ']') {
            at++;
            return Collections.unmodifiableList(list);
        }
        while (true) {
            list.add(value(depth + 1));
            space();
            char c = next();
            if (c == ']') {
                return Collections.unmodifiableList(list);
            }
            if (c != ',') {
                throw error("expected ',' or ']' in an array");
            }
        }
    }

    private String string() {
        at++;  // "
        StringBuilder out = new StringBuilder();
        while (true) {
            char c = next();
            if (c == '"') {
                return out.toString();
            }
            if (c == '\\') {
                char e = next();
                switch (e) {
                    case '"', '\\', '/' -> out.append(e);
                    case 'n' -> out.append('\n');
                    case 'r' -> out.append('\r');
                    case 't' -> out.append('\t');
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'u' -> out.append(hex4());
                    default -> throw error("bad escape '\\" + e + "'");
                }
            } else if (c < 0x20) {
                throw error("a control character inside a string");
            } else {
                out.append(c);
            }
        }
    }

    private char hex4() {
        if (at + 4 > text.length()) {
            throw error("a \\u escape needs four hex digits");
        }
        try {
            char c = (char) Integer.parseInt(text.substring(at, at + 4), 16);
            at += 4;
            return c;
        } catch (NumberFormatException e) {
            throw error("a \\u escape needs four hex digits");
        }
    }

    private Object number() {
        int start = at;
        boolean decimal = false;
        if (peek() == '-') {
            at++;
        }
        while (at < text.length()) {
            char c = text.charAt(at);
            if (c == '.' || c == 'e' || c == 'E' || c == '+' || (c == '-' && at > start)) {
                decimal = true;
            } else if (c < '0' || c > '9') {
                break;
            }
            at++;
        }
        String digits = text.substring(start, at);
        try {
            if (decimal) {
                return Double.parseDouble(digits);
            }
            BigInteger whole = new BigInteger(digits);
            return whole.bitLength() < 64 ? (Object) whole.longValue() : whole;
        } catch (NumberFormatException e) {
            throw error("bad number '" + digits + "'");
        }
    }

    private Object word(String word, Object value) {
        if (!text.startsWith(word, at)) {
            throw error("unexpected text");
        }
        at += word.length();
        return value;
    }

    private void expect(char c) {
        if (next() != c) {
            throw error("expected '" + c + "'");
        }
    }

    private char peek() {
        return at < text.length() ? text.charAt(at) : '\0';
    }

    private char next() {
        if (at >= text.length()) {
            throw error("the text ends too soon");
        }
        return text.charAt(at++);
    }

    private void space() {
        while (at < text.length()) {
            char c = text.charAt(at);
            if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
                return;
            }
            at++;
        }
    }

    private IllegalArgumentException error(String what) {
        return new IllegalArgumentException("bad JSON at offset " + at + ": " + what);
    }
}
