"""The resource interface, the plugin registry and the adapters for each plugin class."""
