package io.pyha.host;

import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import javax.net.SocketFactory;
import javax.net.ssl.SSLSocketFactory;

/**
 * The TLS sockets JNDI's LDAP provider opens for ldaps:// when the directory has a CA file
 * of its own: the provider takes a class name ({@code java.naming.ldap.factory.socket})
 * and calls its static {@link #getDefault()}, so the factory lives in a static field.
 *
 * <p>Invariant: one JVM host serves one cluster, hence one directory and one CA; the
 * factory set last is the one every new connection uses.
 */
public final class Sockets extends SSLSocketFactory {
    private static volatile SSLSocketFactory current = (SSLSocketFactory) SSLSocketFactory.getDefault();

    private final SSLSocketFactory tls;

    private Sockets(SSLSocketFactory tls) {
        this.tls = tls;
    }

    static void use(SSLSocketFactory tls) {
        current = tls;
    }

    /** What the LDAP provider calls: a factory over the directory's TLS settings. */
    public static SocketFactory getDefault() {
        return new Sockets(current);
    }

    @Override
    public String[] getDefaultCipherSuites() {
        return tls.getDefaultCipherSuites();
    }

    @Override
    public String[] getSupportedCipherSuites() {
        return tls.getSupportedCipherSuites();
    }

    @Override
    public Socket createSocket() throws IOException {
        return tls.createSocket();
    }

    @Override
    public Socket createSocket(Socket socket, String host, int port, boolean autoClose) throws IOException {
        return tls.createSocket(socket, host, port, autoClose);
    }

    @Override
    public Socket createSocket(String host, int port) throws IOException {
        return tls.createSocket(host, port);
    }

    @Override
    public Socket createSocket(String host, int port, InetAddress localHost, int localPort) throws IOException {
        return tls.createSocket(host, port, localHost, localPort);
    }

    @Override
    public Socket createSocket(InetAddress host, int port) throws IOException {
        return tls.createSocket(host, port);
    }

    @Override
    public Socket createSocket(InetAddress address, int port, InetAddress localAddress, int localPort)
            throws IOException {
        return tls.createSocket(address, port, localAddress, localPort);
    }
}
