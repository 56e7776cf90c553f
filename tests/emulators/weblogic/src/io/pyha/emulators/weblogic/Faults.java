package io.pyha.emulators.weblogic;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * EMULATOR (tests only): the misbehaviour a test asks for, read from the flag file
 * {@code <domain>/servers/<server>/emulator.faults} (one word a line) on every call, so a
 * test can switch faults while the server runs.
 *
 * <p>Words: {@code hang} (every MBean call blocks while the word is there), {@code failed}
 * (the server goes to FAILED, health HEALTH_FAILED), {@code ignore-shutdown} (graceful
 * shutdown calls return and do nothing), {@code ignore-force-shutdown} (forceShutdown
 * returns and does nothing).
 */
final class Faults {
    private final Path file;

    Faults(Path file) {
        this.file = file;
    }

    /** True while the flag file holds {@code word}. */
    boolean has(String word) {
        return words().contains(word);
    }

    /** Blocks for as long as the flag file says {@code hang}. */
    void hangIfAsked() {
        while (has("hang")) {
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    private Set<String> words() {
        try {
            return Files.readAllLines(file, StandardCharsets.UTF_8).stream()
                .map(line -> line.strip().toLowerCase(Locale.ROOT))
                .filter(line -> !line.isEmpty())
                .collect(Collectors.toSet());
        } catch (IOException e) {
            return Set.of();
        }
    }
}
