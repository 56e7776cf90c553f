package io.pyha.admin;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * One message of Pyro5's wire protocol (version 502), as {@code Pyro5/protocol.py} frames
 * it: a 40-byte header, annotation chunks, then the payload.
 *
 * <pre>
 *  0  "PYRO"            4   magic text
 *  4  version           2   502
 *  6  type              1   1 connect, 2 connect ok, 3 connect fail, 4 invoke, 5 result, 6 ping
 *  7  serializer id     1   3 = json (the one pyha's Java client speaks)
 *  8  flags             2   bit 0 exception, bit 1 compressed (zlib), ...
 * 10  sequence number   2   a reply carries its request's
 * 12  data length       4
 * 16  annotations len.  4   total of all chunks: 4-letter id, 4-byte length, bytes
 * 20  correlation id   16
 * 36  reserved          2
 * 38  magic number      2   0x4dc5
 * </pre>
 *
 * <p>All numbers are big-endian. Invariant: a message read has a valid header, a total
 * size of at most {@link #MAX_SIZE}, and its payload decompressed.
 */
record PyroMessage(int type, int serializerId, int flags, int seq, byte[] data,
                   Map<String, byte[]> annotations) {
    static final int PROTOCOL_VERSION = 502;
    static final int HEADER_SIZE = 40;
    static final int MAGIC = 0x4dc5;

    static final int MSG_CONNECT = 1;
    static final int MSG_CONNECTOK = 2;
    static final int MSG_CONNECTFAIL = 3;
    static final int MSG_INVOKE = 4;
    static final int MSG_RESULT = 5;
    static final int MSG_PING = 6;

    static final int FLAGS_EXCEPTION = 1;
    static final int FLAGS_COMPRESSED = 1 << 1;
    static final int FLAGS_ONEWAY = 1 << 2;
    static final int FLAGS_BATCH = 1 << 3;

    static final int SERIALIZER_JSON = 3;

    /** The largest message read (the admin answers of a 10,000-resource cluster fit). */
    static final int MAX_SIZE = 256 * 1024 * 1024;

    private static final byte[] TAG = "PYRO".getBytes(StandardCharsets.US_ASCII);

    /** A message without annotations, in the json serializer. */
    static PyroMessage json(int type, int seq, String json) {
        return new PyroMessage(type, SERIALIZER_JSON, 0, seq,
                json.getBytes(StandardCharsets.UTF_8), Map.of());
    }

    /** The payload as text (the json serializer's UTF-8). */
    String text() {
        return new String(data, StandardCharsets.UTF_8);
    }

    /** Write the message, header and all, in one go. */
    void writeTo(OutputStream out) throws IOException {
        ByteArrayOutputStream chunks = new ByteArrayOutputStream();
        for (Map.Entry<String, byte[]> entry : annotations.entrySet()) {
            byte[] id = entry.getKey().getBytes(StandardCharsets.US_ASCII);
            if (id.length != 4) {
                throw new IllegalArgumentException("annotation ids are 4 letters: " + entry.getKey());
            }
            chunks.write(id);
            chunks.write(ByteBuffer.allocate(4).putInt(entry.getValue().length).array());
            chunks.write(entry.getValue());
        }
        ByteBuffer header = ByteBuffer.allocate(HEADER_SIZE);
        header.put(TAG).putShort((short) PROTOCOL_VERSION).put((byte) type).put((byte) serializerId)
                .putShort((short) (flags & ~FLAGS_COMPRESSED)).putShort((short) seq)
                .putInt(data.length).putInt(chunks.size()).put(new byte[16])
                .putShort((short) 0).putShort((short) MAGIC);
        ByteArrayOutputStream message = new ByteArrayOutputStream(HEADER_SIZE + chunks.size() + data.length);
        message.write(header.array());
        chunks.writeTo(message);
        message.write(data);
        message.writeTo(out);
        out.flush();
    }

    /** The next message on {@code in}; EOFException when the peer closed before one began. */
    static PyroMessage readFrom(DataInputStream in) throws IOException {
        byte[] header = new byte[HEADER_SIZE];
        in.readFully(header);
        ByteBuffer h = ByteBuffer.wrap(header);
        byte[] tag = new byte[4];
        h.get(tag);
        int version = h.getShort() & 0xffff;
        if (!java.util.Arrays.equals(tag, TAG) || version != PROTOCOL_VERSION
                || (h.getShort(38) & 0xffff) != MAGIC) {
            throw new IOException("not a Pyro5 protocol " + PROTOCOL_VERSION + " message");
        }
        int type = h.get() & 0xff;
        int serializer = h.get() & 0xff;
        int flags = h.getShort() & 0xffff;
        int seq = h.getShort() & 0xffff;
        long dataSize = h.getInt() & 0xffffffffL;
        long annotationsSize = h.getInt() & 0xffffffffL;
        if (dataSize + annotationsSize > MAX_SIZE) {
            throw new IOException("a message of " + (dataSize + annotationsSize) + " bytes is too large");
        }
        byte[] chunks = new byte[(int) annotationsSize];
        in.readFully(chunks);
        byte[] data = new byte[(int) dataSize];
        in.readFully(data);
        if ((flags & FLAGS_COMPRESSED) != 0) {
            data = inflate(data);
            flags &= ~FLAGS_COMPRESSED;
        }
        return new PyroMessage(type, serializer, flags, seq, data, annotations(chunks));
    }

    private static Map<String, byte[]> annotations(byte[] chunks) throws IOException {
        Map<String, byte[]> found = new LinkedHashMap<>();
        ByteBuffer b = ByteBuffer.wrap(chunks);
        while (b.remaining() >= 8) {
            byte[] id = new byte[4];
            b.get(id);
            long length = b.getInt() & 0xffffffffL;
            if (length > b.remaining()) {
                throw new IOException("an annotation chunk runs past the message");
            }
            byte[] value = new byte[(int) length];
            b.get(value);
            found.put(new String(id, StandardCharsets.US_ASCII), value);
        }
        if (b.hasRemaining()) {
            throw new IOException("annotation chunks do not fill their length");
        }
        return Collections.unmodifiableMap(found);
    }

    private static byte[] inflate(byte[] data) throws IOException {
        Inflater inflater = new Inflater();
        try {
            inflater.setInput(data);
            ByteArrayOutputStream out = new ByteArrayOutputStream(data.length * 4);
            byte[] buffer = new byte[65536];
            while (!inflater.finished()) {
                int n = inflater.inflate(buffer);
                if (n == 0 && (inflater.needsInput() || inflater.needsDictionary())) {
                    throw new EOFException("a compressed payload ends too soon");
                }
                out.write(buffer, 0, n);
                if (out.size() > MAX_SIZE) {
                    throw new IOException("a compressed payload is too large");
                }
            }
            return out.toByteArray();
        } catch (DataFormatException e) {
            throw new IOException("a compressed payload is damaged: " + e.getMessage(), e);
        } finally {
            inflater.end();
        }
    }
}
