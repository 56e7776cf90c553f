package io.pyha.host;

import io.pyha.spi.ResourcePlugin;
import java.io.IOException;
import java.net.MalformedURLException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;

/**
 * Finds the plugins of one jar with {@link ServiceLoader}, each jar in its own class loader.
 *
 * <p>Invariant: a jar's plugins come from classes of that jar (or libraries it names in its
 * manifest's Class-Path), never from the host's own class path, so two jars may carry
 * different versions of the same library. A provider that cannot be loaded is reported,
 * and the jar's other plugins still load.
 */
public final class PluginLoader {
    private static final int MAX_PROVIDERS = 1000;

    private PluginLoader() {
    }

    /** One provider of a jar: the plugin, or why it could not be loaded. */
    public static final class Found {
        private final String jar;
        private final String className;
        private final ResourcePlugin plugin;
        private final String error;

        Found(String jar, String className, ResourcePlugin plugin, String error) {
            this.jar = jar;
            this.className = className;
            this.plugin = plugin;
            this.error = error;
        }

        /** The jar the provider was found in. */
        public String jar() {
            return jar;
        }

        /** The provider's class name, or null when even that is unknown. */
        public String className() {
            return className;
        }

        /** The loaded plugin, or null if it failed. */
        public ResourcePlugin plugin() {
            return plugin;
        }

        /** Why the provider failed, or null. */
        public String error() {
            return error;
        }
    }

    /** Every provider of {@link ResourcePlugin} declared by {@code jar}. */
    public static List<Found> load(String jar) {
        List<Found> found = new ArrayList<>();
        URLClassLoader loader;
        try {
            URL url = Path.of(jar).toUri().toURL();
            String name = "pyha-plugin:" + Path.of(jar).getFileName();
            loader = new URLClassLoader(name, new URL[] {url}, ResourcePlugin.class.getClassLoader());
        } catch (MalformedURLException | RuntimeException e) {
            found.add(new Found(jar, null, null, "cannot open the jar: " + e));
            return found;
        }
        Iterator<ResourcePlugin> providers = ServiceLoader.load(ResourcePlugin.class, loader).iterator();
        for (int i = 0; i < MAX_PROVIDERS; i++) {
            try {
                if (!providers.hasNext()) {
                    break;
                }
                ResourcePlugin plugin = providers.next();
                if (plugin.getClass().getClassLoader() == loader) {
                    found.add(new Found(jar, plugin.getClass().getName(), plugin, null));
                }
            } catch (ServiceConfigurationError | LinkageError e) {
                found.add(new Found(jar, null, null, describe(e)));
            }
        }
        if (found.isEmpty()) {
            closeQuietly(loader);
        }
        return found;
    }

    private static String describe(Throwable e) {
        StringBuilder text = new StringBuilder(String.valueOf(e.getMessage()));
        for (Throwable cause = e.getCause(); cause != null; cause = cause.getCause()) {
            text.append(": ").append(cause);
        }
        return text.toString();
    }

    private static void closeQuietly(URLClassLoader loader) {
        try {
            loader.close();
        } catch (IOException e) {
            // Nothing of the jar is in use; a failed close only keeps a file handle.
        }
    }
}
