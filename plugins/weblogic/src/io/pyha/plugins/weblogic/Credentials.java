package io.pyha.plugins.weblogic;

import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;

/**
 * The user name and password of a credentials file: a Java properties file with the keys
 * {@code username} and {@code password}, in clear text (the keys of WebLogic's
 * boot.properties; its encrypted {@code {AES}} form cannot be read outside the server).
 *
 * <p>Invariant: the password never appears in {@link #toString()} nor in any message this
 * class makes; problems name the file and the key, never a value.
 */
record Credentials(String username, String password) {
    private static final Set<PosixFilePermission> SHARED = EnumSet.of(
        PosixFilePermission.GROUP_READ, PosixFilePermission.GROUP_WRITE,
        PosixFilePermission.OTHERS_READ, PosixFilePermission.OTHERS_WRITE);

    /** Reads {@code file}; IOException with a message naming the parameter when it is unusable. */
    static Credentials read(Path file) throws IOException {
        List<String> problems = problems(file);
        if (!problems.isEmpty()) {
            throw new IOException(problems.get(0));
        }
        Properties props = load(file);
        return new Credentials(props.getProperty("username").strip(), props.getProperty("password").strip());
    }

    /** What is wrong with {@code file}, each message starting with "credentials_file:". */
    static List<String> problems(Path file) {
        List<String> problems = new ArrayList<>();
        if (!Files.isRegularFile(file) || !Files.isReadable(file)) {
            problems.add("credentials_file: cannot read " + file);
            return problems;
        }
        try {
            Set<PosixFilePermission> mode = Files.getPosixFilePermissions(file);
            mode.retainAll(SHARED);
            if (!mode.isEmpty()) {
                problems.add("credentials_file: " + file + " is readable or writable by group or others; chmod 600 it");
            }
            Properties props = load(file);
            for (String key : List.of("username", "password")) {
                String value = props.getProperty(key);
                if (value == null || value.isBlank()) {
                    problems.add("credentials_file: " + file + " has no " + key + "=");
                } else if (value.strip().startsWith("{")) {
                    problems.add("credentials_file: the " + key + " in " + file
                        + " is encrypted ({AES}...); pyha needs it in clear text in a file only it can read");
                }
            }
        } catch (IOException | IllegalArgumentException e) {
            problems.add("credentials_file: cannot read " + file + ": " + e.getClass().getSimpleName());
        }
        return problems;
    }

    private static Properties load(Path file) throws IOException {
        Properties props = new Properties();
        try (Reader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            props.load(in);
        }
        return props;
    }

    @Override
    public String toString() {
        return "Credentials[username=" + username + ", password=(hidden)]";
    }
}
