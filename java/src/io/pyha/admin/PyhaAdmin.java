package io.pyha.admin;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.security.cert.CertificateException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;

/**
 * A Java console's connection to one node's admin endpoint: Pyro5's wire protocol with
 * the json serializer, over the same mutual TLS as the Python client, with the JDK only.
 *
 * <pre>{@code
 * jshell --class-path java/build/pyha-spi.jar
 * jshell> import io.pyha.admin.*
 * jshell> var admin = PyhaAdmin.connect("127.0.0.1:7790", "ca.crt", "alice.crt", "alice.key")
 * jshell> admin.groups()
 * jshell> admin.standby("n1")
 * }</pre>
 *
 * <p>Each method is one remote call of the admin service ({@code pyha/admin/service.py});
 * {@link #call} and {@link #callWith} reach any method by name, so a method the service
 * gains needs no new client. Answers are plain Java values as {@link Json} reads them
 * (maps, lists, strings, numbers, booleans), or small typed views ({@link Status},
 * {@link Whoami}). Every failure is a {@link PyhaAdminException} carrying pyha's error
 * type and message.
 *
 * <p>Invariant: one call at a time goes over the connection (methods are synchronized, so
 * the object may be shared between threads); a connection that failed mid-call is closed
 * and the next call opens a new one.
 */
public final class PyhaAdmin implements AutoCloseable {
    /** The Pyro object id of the admin service, the same on every node. */
    public static final String OBJECT_ID = "pyha.admin";
    /** The port an admin endpoint listens on unless its admin.toml says otherwise. */
    public static final int DEFAULT_PORT = 7790;
    /** Milliseconds to open the TCP connection. */
    public static final int CONNECT_TIMEOUT_MILLIS = 5_000;
    /** Milliseconds a call (and the TLS and Pyro5 handshakes) may take. */
    public static final int CALL_TIMEOUT_MILLIS = 60_000;

    private final String host;
    private final int port;
    private final SSLContext tls;
    private SSLSocket socket;
    private DataInputStream in;
    private OutputStream out;
    private int seq;
    private Map<String, Object> greeting = Map.of();
    private List<String> methods = List.of();

    private PyhaAdmin(String host, int port, SSLContext tls) {
        this.host = host;
        this.port = port;
        this.tls = tls;
    }

    // ------------------------------------------------------------------ connecting

    /**
     * Connect to the admin endpoint at {@code host:port} with PEM files: the cluster CA
     * certificate, this client's certificate and its private key (as {@code pyha ca
     * issue NAME --role ROLE} writes them). The TLS and Pyro5 handshakes run now, so a
     * refused certificate fails here.
     */
    public static PyhaAdmin connect(String host, int port, String caFile, String certFile, String keyFile) {
        return connect(host, port, PyhaTls.fromFiles(Path.of(caFile),
                certFile == null ? null : Path.of(certFile), keyFile == null ? null : Path.of(keyFile)));
    }

    /** Connect to {@code "host:port"} ({@code "[::1]:7790"} for IPv6) with PEM files. */
    public static PyhaAdmin connect(String address, String caFile, String certFile, String keyFile) {
        int colon = address.lastIndexOf(':');
        if (colon < 0 || address.endsWith("]")) {
            return connect(unbracket(address), DEFAULT_PORT, caFile, certFile, keyFile);
        }
        try {
            int port = Integer.parseInt(address.substring(colon + 1));
            return connect(unbracket(address.substring(0, colon)), port, caFile, certFile, keyFile);
        } catch (NumberFormatException e) {
            throw PyhaAdminException.local("pyha.errors.ConfigError",
                    "admin client: address: " + address + ": the port is not a number");
        }
    }

    /** Connect with a TLS context of your own (see {@link PyhaTls}). */
    public static PyhaAdmin connect(String host, int port, SSLContext tls) {
        PyhaAdmin admin = new PyhaAdmin(host, port, tls);
        synchronized (admin) {
            admin.open();
        }
        return admin;
    }

    /**
     * Connect as the Python client's environment says: {@code PYHA_ADMIN} (host:port),
     * {@code PYHA_ADMIN_CA}, {@code PYHA_ADMIN_CERT} and {@code PYHA_ADMIN_KEY}.
     */
    public static PyhaAdmin fromEnvironment() {
        Map<String, String> env = System.getenv();
        List<String> missing = new ArrayList<>();
        for (String name : List.of("PYHA_ADMIN", "PYHA_ADMIN_CA", "PYHA_ADMIN_CERT", "PYHA_ADMIN_KEY")) {
            if (env.getOrDefault(name, "").isEmpty()) {
                missing.add(name);
            }
        }
        if (!missing.isEmpty()) {
            throw PyhaAdminException.local("pyha.errors.ConfigError",
                    "admin client: set " + String.join(", ", missing));
        }
        return connect(env.get("PYHA_ADMIN"), env.get("PYHA_ADMIN_CA"), env.get("PYHA_ADMIN_CERT"),
                env.get("PYHA_ADMIN_KEY"));
    }

    private static String unbracket(String host) {
        return host.startsWith("[") && host.endsWith("]") ? host.substring(1, host.length() - 1) : host;
    }

    /** host:port as the Python client writes it. */
    public String address() {
        return host.contains(":") ? "[" + host + "]:" + port : host + ":" + port;
    }

    /** What the endpoint said at connect: {@code service}, {@code node}, {@code identity}, {@code role}. */
    public synchronized Map<String, Object> greeting() {
        return greeting;
    }

    /** The methods the admin service exposes, as Pyro5's metadata lists them. */
    public synchronized List<String> methods() {
        return methods;
    }

    /** Close the connection; a later call opens a new one. */
    @Override
    public synchronized void close() {
        drop();
    }

    // ------------------------------------------------------------------ the calls

    /** The answering node, and this client's name and role as it sees them. */
    public Whoami whoami() {
        return Whoami.of(Status.map(callWith("whoami", Map.of())));
    }

    /**
     * Nodes, coordinator, term, quorum, groups and resources (the main fields); above 200
     * resources only those not as they should be ({@link Status#omitted()} counts the others).
     */
    public Status status() {
        return status(false);
    }

    /** As {@link #status()}; with {@code full}, every resource however many there are. */
    public Status status(boolean full) {
        // full travels only when set, so that an older node still answers the default
        return Status.of(Status.map(callWith("status", full ? kwargs("full", true) : Map.of())));
    }

    /** The groups of {@link #status()}: name, node, where active, state, target, why. */
    public List<Status.Group> groups() {
        return status().groups();
    }

    /** The nodes of {@link #status()}. */
    public List<Status.Node> nodes() {
        return status().nodes();
    }

    /** Why each group is where it is, in words (what {@code pyha explain} prints). */
    public String explain() {
        return String.valueOf(Status.map(callWith("explain", Map.of())).get("text"));
    }

    /** Why {@code group} is where it is, in words. */
    public String explain(String group) {
        return String.valueOf(Status.map(callWith("explain", kwargs("group", group))).get("text"));
    }

    /** The newest {@code limit} operations (of {@code resource}, on {@code node}; either may be null). */
    public List<Map<String, Object>> history(String resource, String node, int limit) {
        return Status.rows(callWith("history", kwargs("resource", resource, "node", node, "limit", limit)));
    }

    /** The newest {@code limit} audit records of the answering node, oldest first. */
    public List<Map<String, Object>> audit(int limit) {
        return Status.rows(callWith("audit", kwargs("limit", limit)));
    }

    /** Forget the failures of {@code resource} on every node and probe it again. */
    public Map<String, Object> cleanup(String resource) {
        return Status.map(callWith("cleanup", kwargs("resource", resource)));
    }

    /** Forget the failures of {@code resource} on {@code node} and probe it again. */
    public Map<String, Object> cleanup(String resource, String node) {
        return Status.map(callWith("cleanup", kwargs("resource", resource, "node", node)));
    }

    /** Put {@code node} in standby: its groups move away and nothing new starts there. */
    public Map<String, Object> standby(String node) {
        return Status.map(callWith("standby", kwargs("node", node)));
    }

    /** Take {@code node} out of standby. */
    public Map<String, Object> online(String node) {
        return Status.map(callWith("online", kwargs("node", node)));
    }

    /** Cluster maintenance on (the cluster leaves every resource as it is) or off. */
    public Map<String, Object> maintenance(boolean on) {
        return Status.map(callWith("maintenance", kwargs("on", on)));
    }

    /** Move {@code group} to {@code node} (until {@link #unmove}). */
    public Map<String, Object> move(String group, String node) {
        return Status.map(callWith("move", kwargs("group", group, "node", node)));
    }

    /** Move {@code group} to {@code node} for {@code lifetime}: seconds (a number) or a duration text ("30m"). */
    public Map<String, Object> move(String group, String node, Object lifetime) {
        return Status.map(callWith("move", kwargs("group", group, "node", node, "lifetime", lifetime)));
    }

    /** Take back a move of {@code group}: the scheduler places it by its scores again. */
    public Map<String, Object> unmove(String group) {
        return Status.map(callWith("unmove", kwargs("group", group)));
    }

    /** Call {@code method} with positional arguments; the answer as {@link Json} reads it. */
    public Object call(String method, Object... args) {
        return invoke(method, Arrays.asList(args), Map.of());
    }

    /** Call {@code method} with keyword arguments (null values are sent as None). */
    public Object callWith(String method, Map<String, ?> kwargs) {
        return invoke(method, List.of(), kwargs);
    }

    /** Keyword arguments from alternating names and values: {@code kwargs("node", "n1")}. */
    public static Map<String, Object> kwargs(Object... namesAndValues) {
        if (namesAndValues.length % 2 != 0) {
            throw new IllegalArgumentException("kwargs: names and values must alternate");
        }
        Map<String, Object> map = new LinkedHashMap<>();
        for (int i = 0; i < namesAndValues.length; i += 2) {
            map.put(String.valueOf(namesAndValues[i]), namesAndValues[i + 1]);
        }
        return Collections.unmodifiableMap(map);
    }

    // ------------------------------------------------------------------ the wire

    private synchronized Object invoke(String method, List<?> params, Map<String, ?> kwargs) {
        Map<String, Object> request = new LinkedHashMap<>();
        request.put("object", OBJECT_ID);
        request.put("method", method);
        request.put("params", params);
        request.put("kwargs", kwargs);
        String payload;
        try {
            payload = Json.write(request);  // an unwritable argument fails before any I/O
        } catch (IllegalArgumentException e) {
            Map<String, Object> attributes = new LinkedHashMap<>();
            attributes.put("method", method);
            attributes.put("argument", "arguments");
            attributes.put("reason", e.getMessage());
            throw new PyhaAdminException("pyha.admin.errors.InvalidArgument",
                    method + ": arguments: " + e.getMessage(), attributes, false, e);
        }
        if (socket == null) {
            open();
        }
        seq = (seq + 1) & 0xffff;
        PyroMessage reply;
        try {
            PyroMessage.json(PyroMessage.MSG_INVOKE, seq, payload).writeTo(out);
            reply = PyroMessage.readFrom(in);
        } catch (IOException e) {
            drop();
            throw PyhaAdminException.local(PyhaAdminException.UNREACHABLE,
                    unreachable("connection lost: " + describe(e)), e);
        }
        if (reply.type() != PyroMessage.MSG_RESULT || reply.seq() != seq
                || reply.serializerId() != PyroMessage.SERIALIZER_JSON) {
            drop();
            throw PyhaAdminException.local(PyhaAdminException.UNREACHABLE, unreachable(
                    "protocol error: got message type " + reply.type() + " seq " + reply.seq()
                            + " serializer " + reply.serializerId() + " for call " + seq));
        }
        Object body = parse(reply);
        if ((reply.flags() & PyroMessage.FLAGS_EXCEPTION) != 0) {
            throw PyhaAdminException.fromWire(body);
        }
        return body;
    }

    private Object parse(PyroMessage reply) {
        try {
            return Json.parse(reply.text());
        } catch (IllegalArgumentException e) {
            drop();
            throw PyhaAdminException.local(PyhaAdminException.UNREACHABLE,
                    unreachable("the answer is not JSON: " + e.getMessage()), e);
        }
    }

    private void open() {
        Socket raw = new Socket();
        try {
            raw.setTcpNoDelay(true);  // calls are small messages
            raw.connect(new InetSocketAddress(host, port), CONNECT_TIMEOUT_MILLIS);
        } catch (IOException e) {
            closeQuietly(raw);
            throw PyhaAdminException.local(PyhaAdminException.UNREACHABLE, unreachable(describe(e)), e);
        }
        SSLSocket tlsSocket = null;
        try {
            raw.setSoTimeout(CALL_TIMEOUT_MILLIS);
            tlsSocket = (SSLSocket) tls.getSocketFactory().createSocket(raw, host, port, true);
            SSLParameters parameters = tlsSocket.getSSLParameters();
            parameters.setEndpointIdentificationAlgorithm("HTTPS");  // the name must match the certificate
            parameters.setProtocols(new String[] {"TLSv1.3", "TLSv1.2"});
            tlsSocket.setSSLParameters(parameters);
            tlsSocket.startHandshake();
        } catch (SSLHandshakeException e) {
            closeQuietly(tlsSocket == null ? raw : tlsSocket);
            throw handshakeFailure(e);
        } catch (IOException e) {
            closeQuietly(tlsSocket == null ? raw : tlsSocket);
            throw refused(e);
        }
        try {
            in = new DataInputStream(new BufferedInputStream(tlsSocket.getInputStream()));
            out = new BufferedOutputStream(tlsSocket.getOutputStream());
            socket = tlsSocket;
            seq = 0;
            handshake();
        } catch (IOException e) {
            drop();
            // With TLS 1.3 the endpoint judges the client's certificate after the client
            // finished its side: a refusal shows up here, as an alert or a closed connection.
            throw refused(e);
        } catch (RuntimeException e) {
            drop();
            throw e;
        }
    }

    /** Pyro5's connect handshake: the endpoint checks the certificate's role here. */
    private void handshake() throws IOException {
        String hello = Json.write(kwargs("handshake", "hello", "object", OBJECT_ID));
        PyroMessage.json(PyroMessage.MSG_CONNECT, 0, hello).writeTo(out);
        PyroMessage reply = PyroMessage.readFrom(in);
        Object body;
        try {
            body = Json.parse(reply.text());
        } catch (IllegalArgumentException e) {
            throw new IOException("the endpoint's handshake answer is not JSON: " + e.getMessage(), e);
        }
        if (reply.type() == PyroMessage.MSG_CONNECTFAIL) {
            throw PyhaAdminException.local(PyhaAdminException.REFUSED, refusedText(String.valueOf(body)));
        }
        if (reply.type() != PyroMessage.MSG_CONNECTOK) {
            throw new IOException("unexpected message type " + reply.type() + " at the Pyro5 handshake");
        }
        Map<String, Object> answer = Status.map(body);
        greeting = Collections.unmodifiableMap(new LinkedHashMap<>(Status.map(answer.get("handshake"))));
        methods = Status.texts(Status.map(answer.get("meta")), "methods");
    }

    private PyhaAdminException handshakeFailure(SSLHandshakeException e) {
        for (Throwable cause = e.getCause(); cause != null; cause = cause.getCause()) {
            if (cause instanceof CertificateException) {  // this side did not trust the endpoint
                return PyhaAdminException.local(PyhaAdminException.CERTIFICATE_ERROR,
                        address() + ": the endpoint's certificate is not trusted: " + e.getMessage(), e);
            }
        }
        return refused(e);  // an alert from the endpoint, or it closed the connection
    }

    private PyhaAdminException refused(IOException e) {
        return PyhaAdminException.local(PyhaAdminException.REFUSED, refusedText(tlsReason(e)), e);
    }

    private String refusedText(String reason) {
        return "the admin endpoint at " + address() + " refused the connection: " + reason;
    }

    private String unreachable(String reason) {
        return "cannot reach the admin endpoint at " + address() + ": " + reason;
    }

    /** Why the endpoint dropped us at the TLS handshake, in the Python client's words. */
    static String tlsReason(IOException e) {
        String text = describe(e);
        String upper = text.toUpperCase(Locale.ROOT).replace(' ', '_');
        if (upper.contains("CERTIFICATE_REQUIRED")) {
            return "the endpoint requires a client certificate signed by the cluster CA";
        }
        if (upper.contains("UNKNOWN_CA") || upper.contains("BAD_CERTIFICATE")
                || upper.contains("CERTIFICATE_UNKNOWN")) {
            return "the endpoint does not trust this client's certificate (another CA?)";
        }
        if (upper.contains("EXPIRED")) {
            return "this client's certificate has expired";
        }
        if (e instanceof EOFException || e instanceof SocketException || upper.contains("EOF")
                || upper.contains("CLOSED") || upper.contains("RESET") || upper.contains("BROKEN_PIPE")
                || (e instanceof SSLException && upper.contains("REMOTE_HOST_TERMINATED"))) {
            return "the endpoint closed the connection at the TLS handshake: it did not accept this "
                    + "client's certificate (missing, expired, or from another CA)";
        }
        return text;
    }

    private static String describe(IOException e) {
        if (e instanceof UnknownHostException) {
            return "unknown host " + e.getMessage();
        }
        String message = e.getMessage();
        return message == null || message.isEmpty() ? e.getClass().getSimpleName() : message;
    }

    private void drop() {
        if (socket != null) {
            closeQuietly(socket);
        }
        socket = null;
        in = null;
        out = null;
    }

    private static void closeQuietly(Socket s) {
        try {
            s.close();
        } catch (IOException e) {
            // closing a broken connection: nothing more to do
        }
    }
}
