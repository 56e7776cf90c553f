package io.pyha.plugins.weblogic;

import java.util.ArrayList;
import java.util.List;

/** The words of a LIST parameter, which pyha hands over quoted as a POSIX shell would; never a shell. */
final class Words {
    private Words() {
    }

    /** Blanks separate, single and double quotes group, a backslash escapes the next character. */
    static List<String> split(String line) {
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
