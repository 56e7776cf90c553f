package io.pyha.admin;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedKeyManager;

/**
 * The client side of the admin endpoint's mutual TLS, from the PEM files {@code pyha ca
 * issue} writes: trust only the cluster CA (never the JDK's public CAs, which would vouch
 * for certificates pyha never issued), and present this client's certificate.
 *
 * <p>Private keys may be PKCS#8 ({@code BEGIN PRIVATE KEY}, what pyha's CA writes), SEC1
 * ({@code BEGIN EC PRIVATE KEY}) or PKCS#1 ({@code BEGIN RSA PRIVATE KEY}); the last two
 * are rewrapped as PKCS#8 here, so no {@code openssl pkcs8} step is needed. Encrypted
 * keys are refused. The key store lives in memory only.
 */
public final class PyhaTls {
    private static final Pattern BLOCK = Pattern.compile(
            "-----BEGIN ([A-Z0-9 ]+)-----\\s*(.*?)-----END \\1-----", Pattern.DOTALL);
    private static final byte[] OID_EC = {0x2a, (byte) 0x86, 0x48, (byte) 0xce, 0x3d, 0x02, 0x01};
    private static final byte[] OID_RSA = {
        0x2a, (byte) 0x86, 0x48, (byte) 0x86, (byte) 0xf7, 0x0d, 0x01, 0x01, 0x01};
    private static final String[] KEY_ALGORITHMS = {"EC", "RSA", "Ed25519", "Ed448", "RSASSA-PSS"};
    private static final String ALIAS = "pyha-client";

    private PyhaTls() {
    }

    /**
     * A TLS context from PEM files: the cluster CA certificate(s), and this client's
     * certificate and private key (both may be null: the endpoint then refuses the client).
     *
     * @throws PyhaAdminException of type {@code pyha.admin.errors.CertificateError} when a
     *     file is missing or unusable
     */
    public static SSLContext fromFiles(Path ca, Path cert, Path key) {
        return fromPem(read(ca, "CA certificate"), cert == null ? null : read(cert, "certificate"),
                key == null ? null : read(key, "key"));
    }

    /** A TLS context from PEM texts (see {@link #fromFiles}). */
    public static SSLContext fromPem(String caPem, String certPem, String keyPem) {
        if ((certPem == null) != (keyPem == null)) {
            throw PyhaAdminException.local(PyhaAdminException.CERTIFICATE_ERROR,
                    "a client certificate needs its key, and a key its certificate");
        }
        try {
            KeyStore trusted = KeyStore.getInstance("PKCS12");
            trusted.load(null, null);
            List<X509Certificate> cas = certificates(caPem, "CA certificate");
            for (int i = 0; i < cas.size(); i++) {
                trusted.setCertificateEntry("pyha-ca-" + i, cas.get(i));
            }
            TrustManagerFactory trust = TrustManagerFactory.getInstance("PKIX");
            trust.init(trusted);
            KeyManager[] keys = null;
            if (certPem != null) {
                List<X509Certificate> chain = certificates(certPem, "certificate");
                keys = new KeyManager[] {new OneKey(privateKey(keyPem), chain)};
            }
            SSLContext context = SSLContext.getInstance("TLS");
            context.init(keys, trust.getTrustManagers(), null);
            return context;
        } catch (GeneralSecurityException | IOException e) {
            throw PyhaAdminException.local(PyhaAdminException.CERTIFICATE_ERROR,
                    "cannot set up TLS: " + e.getMessage());
        }
    }

    /** The private key in a PEM text: PKCS#8, SEC1 (EC) or PKCS#1 (RSA), unencrypted. */
    public static PrivateKey privateKey(String pem) {
        Matcher m = BLOCK.matcher(pem);
        while (m.find()) {
            String kind = m.group(1);
            if (!kind.endsWith("PRIVATE KEY")) {
                continue;
            }
            if (kind.startsWith("ENCRYPTED") || m.group(2).contains("ENCRYPTED")) {
                throw PyhaAdminException.local(PyhaAdminException.CERTIFICATE_ERROR,
                        "the private key is encrypted; write it unencrypted for the client "
                                + "(openssl pkey -in KEY -out PLAIN.key), readable by you only");
            }
            byte[] der = Base64.getMimeDecoder().decode(m.group(2));
            byte[] pkcs8 = switch (kind) {
                case "PRIVATE KEY" -> der;
                case "EC PRIVATE KEY" -> Der.ecToPkcs8(der);
                case "RSA PRIVATE KEY" -> Der.pkcs8(Der.sequence(Der.oid(OID_RSA), Der.NULL), der);
                default -> throw PyhaAdminException.local(PyhaAdminException.CERTIFICATE_ERROR,
                        "unknown private key kind: " + kind);
            };
            return pkcs8Key(pkcs8);
        }
        throw PyhaAdminException.local(PyhaAdminException.CERTIFICATE_ERROR,
                "no PEM private key found (expected -----BEGIN PRIVATE KEY-----)");
    }

    private static PrivateKey pkcs8Key(byte[] pkcs8) {
        for (String algorithm : KEY_ALGORITHMS) {
            try {
                return KeyFactory.getInstance(algorithm).generatePrivate(new PKCS8EncodedKeySpec(pkcs8));
            } catch (GeneralSecurityException e) {
                // not this algorithm: try the next one
            }
        }
        throw PyhaAdminException.local(PyhaAdminException.CERTIFICATE_ERROR,
                "the private key is not an EC, RSA or EdDSA key this JDK can read");
    }

    private static List<X509Certificate> certificates(String pem, String what) {
        try {
            CertificateFactory factory = CertificateFactory.getInstance("X.509");
            List<X509Certificate> found = new ArrayList<>();
            byte[] bytes = pem.getBytes(StandardCharsets.US_ASCII);
            for (Certificate c : factory.generateCertificates(new ByteArrayInputStream(bytes))) {
                found.add((X509Certificate) c);
            }
            if (found.isEmpty()) {
                throw new CertificateException("no certificate in it");
            }
            return found;
        } catch (CertificateException e) {
            throw PyhaAdminException.local(PyhaAdminException.CERTIFICATE_ERROR,
                    "not a PEM " + what + ": " + e.getMessage());
        }
    }

    private static String read(Path path, String what) {
        try {
            return Files.readString(path, StandardCharsets.US_ASCII);
        } catch (IOException e) {
            throw PyhaAdminException.local(PyhaAdminException.CERTIFICATE_ERROR,
                    path + ": cannot read the " + what + " file (" + e + ")");
        }
    }

    /** Always presents the one certificate it holds, whatever CA names the server lists. */
    private static final class OneKey extends X509ExtendedKeyManager {
        private final PrivateKey key;
        private final X509Certificate[] chain;

        OneKey(PrivateKey key, List<X509Certificate> chain) {
            this.key = key;
            this.chain = chain.toArray(new X509Certificate[0]);
        }

        @Override
        public String[] getClientAliases(String keyType, Principal[] issuers) {
            return new String[] {ALIAS};
        }

        @Override
        public String chooseClientAlias(String[] keyType, Principal[] issuers, Socket socket) {
            return ALIAS;
        }

        @Override
        public String chooseEngineClientAlias(String[] keyType, Principal[] issuers, SSLEngine engine) {
            return ALIAS;
        }

        @Override
        public String[] getServerAliases(String keyType, Principal[] issuers) {
            return null;
        }

        @Override
        public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
            return null;
        }

        @Override
        public X509Certificate[] getCertificateChain(String alias) {
            return ALIAS.equals(alias) ? chain.clone() : null;
        }

        @Override
        public PrivateKey getPrivateKey(String alias) {
            return ALIAS.equals(alias) ? key : null;
        }
    }

    /** Just enough DER to wrap a SEC1 or PKCS#1 key as PKCS#8. */
    static final class Der {
        static final byte[] NULL = {0x05, 0x00};

        private Der() {
        }

        /** A SEC1 ECPrivateKey as PKCS#8, the curve taken from its [0] parameters. */
        static byte[] ecToPkcs8(byte[] sec1) {
            byte[] curve = null;
            int at = contentStart(sec1, 0);
            while (at < sec1.length) {
                int tag = sec1[at] & 0xff;
                int start = contentStart(sec1, at);
                int end = start + length(sec1, at);
                if (tag == 0xa0) {
                    curve = java.util.Arrays.copyOfRange(sec1, start, end);
                }
                at = end;
            }
            if (curve == null) {
                throw PyhaAdminException.local(PyhaAdminException.CERTIFICATE_ERROR,
                        "the EC private key does not name its curve");
            }
            return pkcs8(sequence(oid(OID_EC), curve), sec1);
        }

        /** PrivateKeyInfo: version 0, the algorithm identifier, the key as an octet string. */
        static byte[] pkcs8(byte[] algorithm, byte[] key) {
            return sequence(new byte[] {0x02, 0x01, 0x00}, algorithm, tlv(0x04, key));
        }

        static byte[] oid(byte[] body) {
            return tlv(0x06, body);
        }

        static byte[] sequence(byte[]... parts) {
            ByteArrayOutputStream body = new ByteArrayOutputStream();
            for (byte[] part : parts) {
                body.writeBytes(part);
            }
            return tlv(0x30, body.toByteArray());
        }

        static byte[] tlv(int tag, byte[] body) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            out.write(tag);
            int n = body.length;
            if (n < 0x80) {
                out.write(n);
            } else {
                int bytes = n > 0xffffff ? 4 : n > 0xffff ? 3 : n > 0xff ? 2 : 1;
                out.write(0x80 | bytes);
                for (int i = bytes - 1; i >= 0; i--) {
                    out.write(n >>> (8 * i));
                }
            }
            out.writeBytes(body);
            return out.toByteArray();
        }

        private static int length(byte[] der, int at) {
            checkRoom(der, at + 1);
            int first = der[at + 1] & 0xff;
            if (first < 0x80) {
                return first;
            }
            int bytes = first & 0x7f;
            if (bytes == 0 || bytes > 3) {
                throw badKey();
            }
            checkRoom(der, at + 1 + bytes);
            int n = 0;
            for (int i = 0; i < bytes; i++) {
                n = (n << 8) | (der[at + 2 + i] & 0xff);
            }
            checkRoom(der, contentStart(der, at) + n - 1);
            return n;
        }

        private static int contentStart(byte[] der, int at) {
            checkRoom(der, at + 1);
            int first = der[at + 1] & 0xff;
            return at + 2 + (first < 0x80 ? 0 : first & 0x7f);
        }

        private static void checkRoom(byte[] der, int index) {
            if (index >= der.length) {
                throw badKey();
            }
        }

        private static PyhaAdminException badKey() {
            return PyhaAdminException.local(PyhaAdminException.CERTIFICATE_ERROR,
                    "the private key is not valid DER");
        }
    }
}
