package testjndi;

import io.pyha.spi.MetaData;
import io.pyha.spi.Ocf;
import io.pyha.spi.Parameter;
import io.pyha.spi.ParameterType;
import io.pyha.spi.PluginContext;
import io.pyha.spi.ResourcePlugin;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;
import javax.naming.NamingEnumeration;
import javax.naming.NamingException;
import javax.naming.directory.Attribute;
import javax.naming.directory.BasicAttributes;
import javax.naming.directory.DirContext;
import javax.naming.directory.SearchControls;
import javax.naming.directory.SearchResult;

/** A test plugin: each operation logs the groups and the epoch it reads from the directory. */
public final class DirectoryReader implements ResourcePlugin {
    @Override
    public MetaData metaData() {
        return MetaData.builder("directory-reader").provider("test")
                .description("logs what PluginContext.directory() shows")
                .parameter(Parameter.optional("try_write", ParameterType.BOOLEAN, "false", "also try a write"))
                .operation("start", 20000).operation("stop", 20000).operation("monitor", 20000, 60000)
                .build();
    }

    @Override
    public int start(PluginContext c) {
        return report(c, Ocf.SUCCESS);
    }

    @Override
    public int stop(PluginContext c) {
        return Ocf.SUCCESS;
    }

    @Override
    public int monitor(PluginContext c) {
        return report(c, Ocf.SUCCESS);
    }

    private static int report(PluginContext c, int code) {
        DirContext dir = c.directory();
        if (dir == null) {
            c.log().info("directory: none");
            return code;
        }
        try {
            SearchControls one = new SearchControls();
            one.setSearchScope(SearchControls.ONELEVEL_SCOPE);
            TreeMap<Integer, String> groups = new TreeMap<>();
            NamingEnumeration<SearchResult> found = dir.search("ou=groups", "(objectClass=pyhaGroup)", one);
            while (found.hasMore()) {
                javax.naming.directory.Attributes a = found.next().getAttributes();
                groups.put(Integer.parseInt((String) a.get("pyhaPosition").get()), (String) a.get("cn").get());
            }
            Attribute epoch = dir.getAttributes("", new String[] {"pyhaEpoch"}).get("pyhaEpoch");
            c.log().info("directory: " + dir.getClass().getSimpleName() + " epoch " + epoch.get()
                    + " groups " + String.join(" ", groups.values()));
            c.log().info("same context: " + (dir == c.directory()));
            if ("true".equals(c.parameter("try_write"))) {
                List<String> refused = new ArrayList<>();
                try {
                    dir.createSubcontext("cn=rogue,ou=groups", new BasicAttributes("cn", "rogue"));
                    refused.add("created");
                } catch (NamingException e) {
                    refused.add(e.getClass().getSimpleName());
                }
                c.log().info("write: " + String.join(" ", refused));
            }
        } catch (NamingException | RuntimeException e) {
            c.log().error("directory failed: " + e);
            return Ocf.ERR_GENERIC;
        }
        return code;
    }
}
