"""Frozen models: desired state (config), observed state (status) and transitions (actions)."""
