package io.pyha.plugins.tomcat;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import javax.management.InstanceNotFoundException;
import javax.management.JMException;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

/**
 * Asks a running Tomcat how it is: its Server and Connector MBeans over JMX, and an
 * optional HTTP probe.
 *
 * <p>Invariant: every question returns within the time it is given; a JMX call that
 * hangs (a stopped or wedged JVM) is left behind in a daemon thread.
 */
final class Management {
    private static final ExecutorService POOL = Executors.newCachedThreadPool(task -> {
        Thread thread = new Thread(task, "pyha-tomcat-jmx");
        thread.setDaemon(true);
        return thread;
    });
    private static final HttpClient HTTP = HttpClient.newBuilder()
        .connectTimeout(Duration.ofSeconds(5))
        .followRedirects(HttpClient.Redirect.NEVER)
        .build();

    private Management() {
    }

    /** How Tomcat answered: STARTED, reachable but not (yet) STARTED, or unreachable. */
    enum Kind { STARTED, NOT_STARTED, UNREACHABLE }

    /** What JMX said, with a sentence for the log. */
    record Status(Kind kind, String detail) {
    }

    /** The instance's state through JMX, within {@code timeoutMillis}. */
    static Status status(Settings s, long timeoutMillis) {
        Future<Status> answer = POOL.submit(() -> query(s));
        String where = "JMX on 127.0.0.1:" + s.jmxPort();
        try {
            return answer.get(Math.max(1, timeoutMillis), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            answer.cancel(true);
            return new Status(Kind.UNREACHABLE, where + " did not answer within " + timeoutMillis + " ms");
        } catch (ExecutionException e) {
            return new Status(Kind.UNREACHABLE, where + " refused: " + rootCause(e));
        } catch (InterruptedException e) {
            answer.cancel(true);
            Thread.currentThread().interrupt();
            return new Status(Kind.UNREACHABLE, where + ": interrupted");
        }
    }

    private static Status query(Settings s) throws IOException {
        Map<String, Object> env = Map.of("jmx.remote.x.client.connection.check.period", 0L);
        try (JMXConnector connector = JMXConnectorFactory.connect(new JMXServiceURL(s.jmxUrl()), env)) {
            MBeanServerConnection mbeans = connector.getMBeanServerConnection();
            String server = String.valueOf(mbeans.getAttribute(new ObjectName("Catalina:type=Server"), "stateName"));
            if (!"STARTED".equals(server)) {
                return new Status(Kind.NOT_STARTED, "Catalina:type=Server is " + server);
            }
            List<String> stopped = new ArrayList<>();
            for (ObjectName name : mbeans.queryNames(new ObjectName("Catalina:type=Connector,*"), null)) {
                String state = String.valueOf(mbeans.getAttribute(name, "stateName"));
                if (!"STARTED".equals(state)) {
                    stopped.add("connector port " + name.getKeyProperty("port") + " is " + state);
                }
            }
            if (!stopped.isEmpty()) {
                return new Status(Kind.NOT_STARTED, String.join(", ", stopped));
            }
            return new Status(Kind.STARTED, "Catalina:type=Server and its connectors are STARTED");
        } catch (InstanceNotFoundException e) {
            return new Status(Kind.NOT_STARTED, "Catalina is not registered in JMX yet");
        } catch (JMException e) {
            return new Status(Kind.NOT_STARTED, "JMX: " + e);
        }
    }

    /** Null if {@code url} answers with a status below 400 within the time; else what went wrong. */
    static String probe(URI url, long timeoutMillis) {
        HttpRequest request = HttpRequest.newBuilder(url)
            .timeout(Duration.ofMillis(Math.max(1, timeoutMillis)))
            .GET()
            .build();
        try {
            int status = HTTP.send(request, HttpResponse.BodyHandlers.discarding()).statusCode();
            return status < 400 ? null : "HTTP probe " + url + " answered " + status;
        } catch (IOException e) {
            return "HTTP probe " + url + " failed: " + e;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "HTTP probe " + url + ": interrupted";
        }
    }

    private static String rootCause(Throwable e) {
        Throwable cause = e;
        while (cause.getCause() != null && cause.getCause() != cause) {
            cause = cause.getCause();
        }
        return cause.getClass().getSimpleName() + ": " + cause.getMessage();
    }
}
