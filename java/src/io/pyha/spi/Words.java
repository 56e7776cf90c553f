package io.pyha.spi;

import java.util.ArrayList;
import java.util.List;

/**
 * The words of a LIST parameter ({@link PluginContext#parameters()}), which pyha hands over
 * quoted as a POSIX shell would ({@code shlex.join}), or of any option line a user writes
 * that way: split as a shell splits, never run through one, nothing expanded.
 */
public final class Words {
    private Words() {
    }

    /**
     * The words of {@code line}: blanks separate, single and double quotes group, a backslash
     * (outside single quotes) escapes the next character.
     *
     * @throws IllegalArgumentException if a quote is not closed
     */
    public static List<String> split(String line) {
        List<String> words = new ArrayList<>();
        StringBuilder word = new StringBuilder();
        boolean started = false;
        char quote = 0;
        for (int i = 0; i < line.length(); i++) {
            char c = line.charAt(i);
            boolean escaped = c == '\\' && quote != '\'' && i + 1 < line.length();
            if (escaped) {
                word.append(line.charAt(++i));
                started = true;
            } else if (quote != 0) {
                if (c == quote) {
                    quote = 0;
                } else {
                    word.append(c);
                }
            } else if (Character.isWhitespace(c)) {
                if (started) {
                    words.add(word.toString());
                    word.setLength(0);
                    started = false;
                }
            } else {
                started = true;
                if (c == '\'' || c == '"') {
                    quote = c;
                } else {
                    word.append(c);
                }
            }
        }
        if (quote != 0) {
            throw new IllegalArgumentException("unbalanced " + quote + " quote in: " + line);
        }
        if (started) {
            words.add(word.toString());
        }
        return words;
    }
}
