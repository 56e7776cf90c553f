package io.pyha.admin;

import java.util.Map;

/** The caller as the answering node sees it: the node, the certificate's name and role. */
public record Whoami(String node, String name, String role) {
    static Whoami of(Map<String, Object> m) {
        return new Whoami(Status.text(m, "node"), Status.text(m, "name"), Status.text(m, "role"));
    }
}
