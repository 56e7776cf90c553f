"""The configuration directory: the LDAP tree of a cluster, its schema, backends and watchers."""
