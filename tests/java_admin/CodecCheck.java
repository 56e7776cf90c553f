import io.pyha.admin.Json;
import io.pyha.admin.PyhaAdminException;
import io.pyha.admin.PyhaTls;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.PrivateKey;
import java.security.interfaces.ECPrivateKey;
import java.security.interfaces.RSAPrivateKey;
import java.util.HexFormat;

/**
 * Checks of the Java admin client's codecs, for the test to compare with Python's.
 *
 * <pre>
 * java -cp CLASSES CodecCheck json        # each stdin line: parsed, then written back
 * java -cp CLASSES CodecCheck keys FILE...  # each key: its algorithm and a SHA-256 of its secret
 * </pre>
 *
 * A line that fails prints {@code ERROR <message>}.
 */
public final class CodecCheck {
    private CodecCheck() {
    }

    public static void main(String[] args) throws IOException, NoSuchAlgorithmException {
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        if (args[0].equals("json")) {
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            for (String line = in.readLine(); line != null; line = in.readLine()) {
                try {
                    out.println(Json.write(Json.parse(line)));
                } catch (IllegalArgumentException e) {
                    out.println("ERROR " + e.getMessage());
                }
            }
            return;
        }
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        for (int i = 1; i < args.length; i++) {
            try {
                PrivateKey key = PyhaTls.privateKey(Files.readString(Path.of(args[i])));
                out.println(key.getAlgorithm() + " " + HexFormat.of().formatHex(sha.digest(secret(key))));
            } catch (PyhaAdminException e) {
                out.println("ERROR " + e.getMessage());
            }
        }
    }

    /** The key's secret numbers (its encodings may differ in optional fields). */
    private static byte[] secret(PrivateKey key) {
        if (key instanceof ECPrivateKey ec) {
            return (ec.getParams().toString() + ec.getS()).getBytes(StandardCharsets.UTF_8);
        }
        if (key instanceof RSAPrivateKey rsa) {
            return (rsa.getModulus() + "/" + rsa.getPrivateExponent()).getBytes(StandardCharsets.UTF_8);
        }
        return key.getEncoded();
    }
}
