import io.pyha.admin.Json;
import io.pyha.admin.PyhaAdmin;
import io.pyha.admin.PyhaAdminException;
import io.pyha.admin.Status;
import io.pyha.admin.Whoami;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A test driver of the Java admin client: connects, runs commands, prints one JSON line
 * per command (the test reads them).
 *
 * <pre>
 * java -cp CLASSES AdminDriver HOST:PORT CA CERT|- KEY|- COMMAND...
 * </pre>
 *
 * A command is a name and its arguments joined by ':' ({@code whoami}, {@code groups},
 * {@code standby:n1}, {@code move:svc:n2}, {@code status:true} (in full), {@code
 * call:explain}). Each line is {@code {"command": ..., "ok": true, "result": ...}} or
 * {@code {"command": ..., "ok": false, "type": ..., "message": ..., "attributes": ...,
 * "remote": ...}}; a failed connect is the line of the command {@code connect}, and the
 * exit status is 2.
 */
public final class AdminDriver {
    private AdminDriver() {
    }

    public static void main(String[] args) {
        String cert = args[2].equals("-") ? null : args[2];
        String key = args[3].equals("-") ? null : args[3];
        PyhaAdmin admin;
        try {
            admin = PyhaAdmin.connect(args[0], args[1], cert, key);
        } catch (PyhaAdminException e) {
            System.out.println(failure("connect", e));
            System.exit(2);
            return;
        }
        try (admin) {
            System.out.println(line("connect", true, "result", admin.greeting()));
            for (String command : Arrays.copyOfRange(args, 4, args.length)) {
                try {
                    System.out.println(line(command, true, "result", run(admin, command.split(":"))));
                } catch (PyhaAdminException e) {
                    System.out.println(failure(command, e));
                }
            }
        }
    }

    private static Object run(PyhaAdmin admin, String[] c) {
        return switch (c[0]) {
            case "whoami" -> whoami(admin.whoami());
            case "groups" -> groups(admin.groups());
            case "status" -> status(c.length > 1 ? admin.status(Boolean.parseBoolean(c[1])) : admin.status());
            case "explain" -> c.length > 1 ? admin.explain(c[1]) : admin.explain();
            case "methods" -> admin.methods();
            case "standby" -> admin.standby(c[1]);
            case "online" -> admin.online(c[1]);
            case "maintenance" -> admin.maintenance(Boolean.parseBoolean(c[1]));
            case "cleanup" -> admin.cleanup(c[1]);
            case "move" -> admin.move(c[1], c[2]);
            case "unmove" -> admin.unmove(c[1]);
            case "call" -> admin.call(c[1], (Object[]) Arrays.copyOfRange(c, 2, c.length));
            default -> throw new IllegalArgumentException("unknown command " + c[0]);
        };
    }

    private static Map<String, Object> whoami(Whoami who) {
        return Map.of("node", who.node(), "name", who.name(), "role", who.role());
    }

    private static List<Object> groups(List<Status.Group> groups) {
        List<Object> out = new ArrayList<>();
        for (Status.Group g : groups) {
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("name", g.name());
            row.put("node", g.node());
            row.put("state", g.state());
            row.put("active_on", g.activeOn());
            row.put("target", g.target());
            out.add(row);
        }
        return out;
    }

    private static Map<String, Object> status(Status s) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("cluster", s.cluster());
        out.put("answered_by", s.answeredBy());
        out.put("coordinator", s.coordinator());
        out.put("members", s.members());
        out.put("groups", groups(s.groups()));
        List<Object> resources = new ArrayList<>();
        for (Status.Resource r : s.resources()) {
            resources.add(r.name());
        }
        out.put("resources", resources);
        out.put("omitted", s.omitted());
        List<Object> standby = new ArrayList<>();
        for (Status.Node n : s.nodes()) {
            if (n.standby()) {
                standby.add(n.name());
            }
        }
        out.put("standby", standby);
        return out;
    }

    private static String failure(String command, PyhaAdminException e) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("command", command);
        out.put("ok", false);
        out.put("type", e.type());
        out.put("simple_type", e.simpleType());
        out.put("message", e.message());
        out.put("text", e.getMessage());
        out.put("attributes", e.attributes());
        out.put("remote", e.remote());
        out.put("cause", e.getCause() == null ? null : e.getCause().toString());
        return Json.write(out);
    }

    private static String line(String command, boolean ok, String key, Object value) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("command", command);
        out.put("ok", ok);
        out.put(key, value);
        return Json.write(out);
    }
}
