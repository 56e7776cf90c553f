package io.pyha.plugins.weblogic;

import io.pyha.spi.ProcessFinder;
import io.pyha.spi.ServerControl;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The JVM of one WebLogic server on this node: found in /proc, launched through the
 * domain's start script in its own session, signalled by pid.
 *
 * <p>Invariant: a process counts as the server only if its command line holds
 * {@code -Dweblogic.Name=<server>} and its root directory is the domain (its working
 * directory, or {@code -Dweblogic.RootDirectory}), and it is not a zombie; no pid file
 * is trusted, so a reused pid or a server started by hand is judged right.
 */
final class ServerProcess {
    private ServerProcess() {
    }

    /** The pid of the server {@code name} of {@code domain}, if it runs here. */
    static Optional<Long> find(Path domain, String name) {
        Set<Path> wanted = new HashSet<>();
        wanted.add(domain.toAbsolutePath().normalize());
        try {
            wanted.add(domain.toRealPath());  // /proc shows the working directory with links resolved
        } catch (IOException e) {
            // No such domain here: only the configured path can match.
        }
        String nameArg = "-Dweblogic.Name=" + name;
        return ProcessFinder.find((pid, args) -> args.contains(nameArg) && rootIs(pid, args, wanted));
    }

    /**
     * Runs the start script in its own session (the server outlives the JVM host), from the
     * domain folder, its output appended to {@link Settings#outFile()}; the launcher's handle.
     */
    static Process launch(Settings s) throws IOException {
        List<String> argv = new ArrayList<>();
        argv.add(s.startScript().toString());
        argv.addAll(s.scriptArguments());
        Map<String, String> env = new HashMap<>();
        env.put("HOME", s.domainHome().toString());
        env.put("DOMAIN_HOME", s.domainHome().toString());
        env.put("SERVER_NAME", s.serverName());
        if (s.managed()) {
            env.put("ADMIN_URL", s.adminUrl());
        }
        return ServerControl.launch(argv, s.domainHome(), env, s.outFile());
    }

    /** The end of the server's .out file, to say why a start failed. */
    static String logTail(Settings s) {
        return ServerControl.logTail(s.outFile());
    }

    private static boolean rootIs(long pid, List<String> args, Set<Path> wanted) {
        String prefix = "-Dweblogic.RootDirectory=";
        for (String arg : args) {
            if (arg.startsWith(prefix)) {
                return ProcessFinder.path(arg.substring(prefix.length())).map(wanted::contains).orElse(false);
            }
        }
        // gone meanwhile, or another user's process: not the server
        return ProcessFinder.workingDirectory(pid).map(wanted::contains).orElse(false);
    }
}
