package io.pyha.plugins.weblogic;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The JVM of one WebLogic server on this node: found in /proc, launched through the
 * domain's start script in its own session, signalled by pid.
 *
 * <p>Invariant: a process counts as the server only if its command line holds
 * {@code -Dweblogic.Name=<server>} and its root directory is the domain (its working
 * directory, or {@code -Dweblogic.RootDirectory}), and it is not a zombie; no pid file
 * is trusted, so a reused pid or a server started by hand is judged right.
 */
final class ServerProcess {
    private static final Path PROC = Path.of("/proc");
    private static final Path SETSID = Path.of("/usr/bin/setsid");
    private static final int LOG_TAIL = 2000;

    private ServerProcess() {
    }

    /** The pid of the server {@code name} of {@code domain}, if it runs here. */
    static Optional<Long> find(Path domain, String name) {
        Set<Path> wanted = new HashSet<>();
        wanted.add(domain.toAbsolutePath().normalize());
        try {
            wanted.add(domain.toRealPath());  // /proc shows the working directory with links resolved
        } catch (IOException e) {
            // No such domain here: only the configured path can match.
        }
        String nameArg = "-Dweblogic.Name=" + name;
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(PROC, "[0-9]*")) {
            for (Path entry : entries) {
                long pid = Long.parseLong(entry.getFileName().toString());
                List<String> args = commandLine(pid);
                if (args.contains(nameArg) && rootIs(pid, args, wanted) && alive(pid)) {
                    return Optional.of(pid);
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot list processes in /proc: " + e.getMessage(), e);
        }
        return Optional.empty();
    }

    /** True while {@code pid} exists and is not a zombie (an exited child not yet reaped). */
    static boolean alive(long pid) {
        try {
            String stat = Files.readString(PROC.resolve(Long.toString(pid)).resolve("stat"));
            // The state follows the command name, which is in parentheses and may hold anything.
            char state = stat.charAt(stat.lastIndexOf(')') + 2);
            return state != 'Z' && state != 'X';
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /**
     * Runs the start script in its own session (the server outlives the JVM host), from the
     * domain folder, its output appended to {@link Settings#outFile()}; the launcher's handle.
     */
    static Process launch(Settings s) throws IOException {
        List<String> argv = new ArrayList<>();
        if (Files.isExecutable(SETSID)) {
            argv.add(SETSID.toString());
        }
        argv.add(s.startScript().toString());
        argv.addAll(s.scriptArguments());
        ProcessBuilder builder = new ProcessBuilder(argv);
        Map<String, String> env = builder.environment();
        String lang = env.get("LANG");
        env.clear();
        env.put("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        env.put("LANG", lang == null ? "C.UTF-8" : lang);
        env.put("HOME", s.domainHome().toString());
        env.put("DOMAIN_HOME", s.domainHome().toString());
        env.put("SERVER_NAME", s.serverName());
        if (s.managed()) {
            env.put("ADMIN_URL", s.adminUrl());
        }
        Path out = s.outFile();
        Files.createDirectories(out.getParent());
        return builder.directory(s.domainHome().toFile())
            .redirectInput(new File("/dev/null"))
            .redirectOutput(ProcessBuilder.Redirect.appendTo(out.toFile()))
            .redirectErrorStream(true)
            .start();
    }

    /** The end of the server's .out file, to say why a start failed. */
    static String logTail(Settings s) {
        Path out = s.outFile();
        try {
            String text = Files.readString(out, StandardCharsets.UTF_8);
            return text.substring(Math.max(0, text.length() - LOG_TAIL)).strip();
        } catch (IOException | RuntimeException e) {
            return "(no " + out + ")";
        }
    }

    private static List<String> commandLine(long pid) {
        try {
            byte[] raw = Files.readAllBytes(PROC.resolve(Long.toString(pid)).resolve("cmdline"));
            return List.of(new String(raw, StandardCharsets.UTF_8).split("\0"));
        } catch (IOException | RuntimeException e) {
            return List.of();  // gone meanwhile, or not ours to read
        }
    }

    private static boolean rootIs(long pid, List<String> args, Set<Path> wanted) {
        String prefix = "-Dweblogic.RootDirectory=";
        for (String arg : args) {
            if (arg.startsWith(prefix)) {
                return same(arg.substring(prefix.length()), wanted);
            }
        }
        try {
            Path cwd = Files.readSymbolicLink(PROC.resolve(Long.toString(pid)).resolve("cwd"));
            return wanted.contains(cwd.normalize());
        } catch (IOException | RuntimeException e) {
            return false;  // gone meanwhile, or another user's process
        }
    }

    private static boolean same(String text, Set<Path> wanted) {
        try {
            return wanted.contains(Path.of(text).toAbsolutePath().normalize());
        } catch (RuntimeException e) {
            return false;
        }
    }
}
