package io.pyha.spi;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * Finds a server's process in {@code /proc} by its command line, for plugins whose servers
 * run detached from the JVM host: no pid file is kept, so a reused pid or a server started
 * by hand is judged by what runs now.
 *
 * <p>Invariant: {@link #find} reports a process only if its matcher accepts it and it is
 * alive (not a zombie); a process that exits, or cannot be read, while it is looked at is
 * passed over, never an error.
 */
public final class ProcessFinder {
    private static final Path PROC = Path.of("/proc");

    private ProcessFinder() {
    }

    /** Tells whether a process is the one sought, from its pid and its command line. */
    @FunctionalInterface
    public interface Matcher {
        /** True if {@code pid}, run with {@code commandLine} (its arguments, argv[0] first), is it. */
        boolean matches(long pid, List<String> commandLine);
    }

    /**
     * The pid of the first live process whose command line {@code matcher} accepts, if any.
     *
     * @throws IllegalStateException if {@code /proc} cannot be listed
     */
    public static Optional<Long> find(Matcher matcher) {
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(PROC, "[0-9]*")) {
            for (Path entry : entries) {
                long pid = Long.parseLong(entry.getFileName().toString());
                if (matcher.matches(pid, commandLine(pid)) && alive(pid)) {
                    return Optional.of(pid);
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot list processes in /proc: " + e.getMessage(), e);
        }
        return Optional.empty();
    }

    /** True while {@code pid} exists and is not a zombie (an exited child not yet reaped). */
    public static boolean alive(long pid) {
        try {
            String stat = Files.readString(PROC.resolve(Long.toString(pid)).resolve("stat"));
            // The state follows the command name, which is in parentheses and may hold anything.
            char state = stat.charAt(stat.lastIndexOf(')') + 2);
            return state != 'Z' && state != 'X';
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /** The arguments {@code pid} runs with; empty if it is gone or not ours to read. */
    public static List<String> commandLine(long pid) {
        try {
            byte[] raw = Files.readAllBytes(PROC.resolve(Long.toString(pid)).resolve("cmdline"));
            return List.of(new String(raw, StandardCharsets.UTF_8).split("\0"));
        } catch (IOException | RuntimeException e) {
            return List.of();
        }
    }

    /** The working directory of {@code pid}, links resolved; empty if it is gone or another user's. */
    public static Optional<Path> workingDirectory(long pid) {
        try {
            return Optional.of(Files.readSymbolicLink(PROC.resolve(Long.toString(pid)).resolve("cwd")).normalize());
        } catch (IOException | RuntimeException e) {
            return Optional.empty();
        }
    }

    /** {@code text} (an argument's value) as an absolute, normalised path; empty if it is not a path. */
    public static Optional<Path> path(String text) {
        try {
            return Optional.of(Path.of(text).toAbsolutePath().normalize());
        } catch (RuntimeException e) {
            return Optional.empty();
        }
    }
}
