"""The Java bridge: the JVM host process, its channel to the cluster server, the jar builds."""
