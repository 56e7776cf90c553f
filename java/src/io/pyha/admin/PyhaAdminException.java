package io.pyha.admin;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * An admin call that failed, carrying pyha's error type and message: {@link #getMessage()}
 * reads {@code "pyha.admin.errors.NotFound: standby: node: no node named 'n9'"}, as the last
 * line of a Python traceback would; {@link #type()} and {@link #message()} give the parts.
 *
 * <p>An error raised on the node arrives with its Python class name as pyha registered it
 * for the wire ({@code pyha.admin.errors.PermissionDenied}, {@code
 * pyha.admin.errors.NotFound}, {@code pyha.errors.ConfigError}, ...), its message (what
 * {@code str(exc)} gives in Python) and its public attributes ({@code method}, {@code
 * role}, {@code needed}, {@code argument}, {@code reason}, ...). Failures on this side
 * use the names the Python client raises for the same cases: {@link #UNREACHABLE} (no
 * connection, or it was lost), {@link #REFUSED} (the endpoint refused this client's
 * certificate) and {@link #CERTIFICATE_ERROR} (local TLS files unusable, or the endpoint's
 * certificate is not from the cluster CA). So one {@code catch} and {@link #type()} cover
 * every failure.
 */
public final class PyhaAdminException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** No admin endpoint answered, or the connection was lost mid-call. */
    public static final String UNREACHABLE = "pyha.admin.errors.AdminUnreachable";
    /** The endpoint refused this client before any method ran. */
    public static final String REFUSED = "pyha.admin.errors.ConnectionRefused";
    /** A certificate or key could not be read or used, or the endpoint's is not trusted. */
    public static final String CERTIFICATE_ERROR = "pyha.admin.errors.CertificateError";

    private final String type;
    private final String message;
    private final transient Map<String, Object> attributes;
    private final boolean remote;

    PyhaAdminException(String type, String message, Map<String, Object> attributes, boolean remote,
                       Throwable cause) {
        super(type + ": " + message, cause);
        this.type = type;
        this.message = message;
        this.attributes = Collections.unmodifiableMap(new LinkedHashMap<>(attributes));
        this.remote = remote;
    }

    /** A failure on this side, named as the Python client names it. */
    static PyhaAdminException local(String type, String message) {
        return new PyhaAdminException(type, message, Map.of(), false, null);
    }

    /** A failure on this side, with the Java exception behind it. */
    static PyhaAdminException local(String type, String message, Throwable cause) {
        return new PyhaAdminException(type, message, Map.of(), false, cause);
    }

    /** The error an endpoint sent: Pyro5's JSON form of a Python exception. */
    static PyhaAdminException fromWire(Object body) {
        if (!(body instanceof Map<?, ?> map)) {
            return new PyhaAdminException("builtins.Exception", String.valueOf(body), Map.of(), true, null);
        }
        String type = String.valueOf(map.get("__class__"));
        Map<String, Object> attributes = new LinkedHashMap<>();
        if (map.get("attributes") instanceof Map<?, ?> attrs) {
            for (Map.Entry<?, ?> e : attrs.entrySet()) {
                String name = String.valueOf(e.getKey());
                if (!name.startsWith("_")) {  // Pyro5's traceback of the server is not the caller's
                    attributes.put(name, e.getValue());
                }
            }
        }
        return new PyhaAdminException(type, message(map.get("args")), attributes, true, null);
    }

    private static String message(Object args) {
        if (!(args instanceof List<?> list) || list.isEmpty()) {
            return "";
        }
        if (list.size() == 1) {
            return String.valueOf(list.get(0));
        }
        return Json.write(list);  // as Python's str() shows an exception of several arguments
    }

    /** The full Python class name of the error, e.g. {@code pyha.admin.errors.PermissionDenied}. */
    public String type() {
        return type;
    }

    /** The class name without its module, e.g. {@code PermissionDenied}. */
    public String simpleType() {
        return type.substring(type.lastIndexOf('.') + 1);
    }

    /** True when the type is {@code name}, given in full or without its module. */
    public boolean is(String name) {
        return type.equals(name) || simpleType().equals(name);
    }

    /** True when the node raised it; false when it failed on this side. */
    public boolean remote() {
        return remote;
    }

    /** The error's public attributes (e.g. {@code needed} of PermissionDenied); may be empty. */
    public Map<String, Object> attributes() {
        return attributes == null ? Map.of() : attributes;
    }

    /** One attribute, or null. */
    public Object attribute(String name) {
        return attributes().get(name);
    }

    /** pyha's message alone, as Python's {@code str(exc)} gives it ({@link #getMessage()} leads with the type). */
    public String message() {
        return message;
    }
}
