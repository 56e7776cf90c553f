"""Shared test settings: tests marked `root` skip with a reason when not run as root."""

from __future__ import annotations

import os

import pytest

# The fixture layer (pyha.testing.fixtures): provider, ldap_server, tomcat_server, pg_server,
# the `containers` marker, and the header line naming the provider of this session.
pytest_plugins = ["pyha.testing.fixtures.pytest_plugin"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (mounts, namespaces or other users)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
