package io.pyha.jmx;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.rmi.server.RMIServerSocketFactory;
import java.util.Arrays;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLServerSocket;

/**
 * Server sockets for the RMI registry and the JMX connector, bound to the loopback address
 * only ({@code LocateRegistry.createRegistry(port)} alone binds every interface), plain
 * or TLS.
 *
 * <p>Equal factories let RMI share one port between the registry and the connector; two
 * instances are equal when they would make the same kind of socket.
 */
public final class LoopbackSockets implements RMIServerSocketFactory {
    private final SSLContext tls;
    private final boolean needClientAuth;

    private LoopbackSockets(SSLContext tls, boolean needClientAuth) {
        this.tls = tls;
        this.needClientAuth = needClientAuth;
    }

    /** Plain TCP on 127.0.0.1. */
    public static LoopbackSockets plain() {
        return new LoopbackSockets(null, false);
    }

    /** TLS on 127.0.0.1 with {@code tls}'s key; clients must show a certificate if asked. */
    public static LoopbackSockets tls(SSLContext tls, boolean needClientAuth) {
        return new LoopbackSockets(tls, needClientAuth);
    }

    /** True when the sockets speak TLS. */
    public boolean isTls() {
        return tls != null;
    }

    @Override
    public ServerSocket createServerSocket(int port) throws IOException {
        InetAddress loopback = InetAddress.getByName("127.0.0.1");
        if (tls == null) {
            return new ServerSocket(port, 50, loopback);
        }
        SSLServerSocket socket =
            (SSLServerSocket) tls.getServerSocketFactory().createServerSocket(port, 50, loopback);
        socket.setNeedClientAuth(needClientAuth);
        return socket;
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof LoopbackSockets that
            && that.tls == tls && that.needClientAuth == needClientAuth;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(new Object[] {System.identityHashCode(tls), needClientAuth});
    }
}
