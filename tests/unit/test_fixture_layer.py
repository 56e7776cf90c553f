"""The fixture layer's pure parts: the provider choice, the container specs, the endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyha.testing.fixtures import (
    ENV_VAR,
    NO_ENGINE,
    Choice,
    ContainerProvider,
    EngineStatus,
    FixtureError,
    LdapEndpoint,
    LocalProvider,
    PgEndpoint,
    choose,
    forced,
    make_provider,
    probe_engine,
)
from pyha.testing.fixtures import containers as cont
from pyha.testing.fixtures.local import jmx_options

UP = EngineStatus(True, "Docker engine at unix:///var/run/docker.sock, API 1.45")
DOWN = EngineStatus(False, "/var/run/docker.sock does not exist")


@pytest.mark.parametrize(("wanted", "engine", "expected"), [
    ("auto", DOWN, Choice("local", NO_ENGINE)),
    ("auto", UP, Choice("containers", UP.detail)),
    ("local", UP, Choice("local", f"forced by {ENV_VAR}=local")),
    ("local", DOWN, Choice("local", f"forced by {ENV_VAR}=local")),
    ("containers", UP, Choice("containers", f"forced by {ENV_VAR}=containers; {UP.detail}")),
])
def test_choose(wanted: str, engine: EngineStatus, expected: Choice) -> None:
    assert choose(wanted, engine) == expected


def test_forcing_containers_without_an_engine_fails_clearly() -> None:
    with pytest.raises(FixtureError) as caught:
        choose("containers", DOWN)
    assert str(caught.value) == (f"{ENV_VAR}=containers, but no Docker engine reachable: "
                                 "/var/run/docker.sock does not exist")


def test_the_header_line() -> None:
    assert choose("auto", DOWN).header() == \
        "pyha fixtures: local provider (no Docker engine reachable)"


@pytest.mark.parametrize(("value", "expected"), [
    ("", "auto"), ("  Local ", "local"), ("containers", "containers"), ("auto", "auto")])
def test_forced_reads_the_environment(value: str, expected: str) -> None:
    assert forced({ENV_VAR: value}) == expected
    assert forced({}) == "auto"


def test_a_wrong_forced_value_is_refused() -> None:
    with pytest.raises(FixtureError, match="must be containers, local or auto"):
        forced({ENV_VAR: "docker"})


def test_the_probe_says_unreachable_for_a_missing_socket(tmp_path: Path) -> None:
    status = probe_engine(environ={"DOCKER_HOST": f"unix://{tmp_path}/docker.sock"})
    assert status == EngineStatus(False, f"{tmp_path}/docker.sock does not exist")
    bad = probe_engine(environ={"DOCKER_HOST": "tcp://127.0.0.1"})
    assert bad == EngineStatus(False, "DOCKER_HOST=tcp://127.0.0.1: no port")


def test_make_provider() -> None:
    assert isinstance(make_provider("local"), LocalProvider)
    assert isinstance(make_provider("containers"), ContainerProvider)
    with pytest.raises(FixtureError, match="no provider called 'docker'"):
        make_provider("docker")


def test_the_containers_provider_reports_no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cont, "probe_engine", lambda: DOWN)
    provider = ContainerProvider()
    assert provider.unavailable("slapd") == f"{NO_ENGINE}: {DOWN.detail}"
    with pytest.raises(FixtureError, match="containers provider cannot start tomcat: no Docker"):
        provider.check("tomcat")
    with pytest.raises(FixtureError, match="unknown component"):
        provider.check("weblogic")


def test_the_containers_provider_needs_a_source_checkout(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.setattr(cont, "probe_engine", lambda: UP)
    assert ContainerProvider(tmp_path).unavailable("slapd") == \
        f"{tmp_path}/containers is missing (the provider needs a source checkout)"
    assert ContainerProvider().unavailable("slapd") is None


# -- container specs ---------------------------------------------------------------------------


def test_the_specs() -> None:
    ldap = cont.slapd_spec("pw")
    assert (ldap.image, ldap.dockerfile) == ("pyha/openldap:pyha-test",
                                             "containers/openldap/Dockerfile")
    assert ldap.env == {"LDAP_ADMIN_PASSWORD": "pw", "LDAP_BASE_TREE": "suffix"}
    assert ldap.ports == (1389,)
    tomcat = cont.tomcat_spec(40123, "127.0.0.1")
    assert tomcat.env == {"JMX_PORT": "40123", "JMX_HOSTNAME": "127.0.0.1"}
    assert (tomcat.ports, tomcat.fixed_ports) == ((8080,), (40123,))
    pg = cont.postgresql_spec("pw")
    assert (pg.image, pg.dockerfile) == ("postgres:15.10-bookworm", None)
    assert pg.command == ("postgres", "-c", "fsync=off")
    for spec in (ldap, tomcat):
        assert spec.dockerfile is not None
        assert (cont.REPO / spec.dockerfile).is_file()


class RecordingContainer:
    """Stands in for testcontainers' DockerContainer: records what it is told."""

    def __init__(self) -> None:
        self.ports: dict[str, Any] = {}
        self.calls: list[tuple[str, Any]] = []

    def with_env(self, key: str, value: str) -> RecordingContainer:
        self.calls.append(("env", (key, value)))
        return self

    def with_exposed_ports(self, *ports: int) -> RecordingContainer:
        self.calls.append(("expose", ports))
        for port in ports:
            self.ports[str(port)] = None
        return self

    def with_command(self, command: list[str]) -> RecordingContainer:
        self.calls.append(("command", command))
        return self


def test_apply_spec_publishes_on_loopback_only() -> None:
    box = RecordingContainer()
    cont.apply_spec(cont.tomcat_spec(40123, "127.0.0.1"), box)
    assert box.calls == [("env", ("JMX_HOSTNAME", "127.0.0.1")), ("env", ("JMX_PORT", "40123")),
                         ("expose", (8080,))]
    assert box.ports == {"8080": None, "8080/tcp": ("127.0.0.1", None),
                         "40123/tcp": ("127.0.0.1", 40123)}
    pg = RecordingContainer()
    cont.apply_spec(cont.postgresql_spec("pw"), pg)
    assert pg.calls[-1] == ("command", ["postgres", "-c", "fsync=off"])


# -- endpoints ---------------------------------------------------------------------------------


def test_endpoints_hide_passwords() -> None:
    ldap = cont.ldap_endpoint("127.0.0.1", 40000, "s3cret", "abc123")
    assert ldap == LdapEndpoint("ldap://127.0.0.1:40000", "dc=pyha,dc=test",
                                "cn=admin,dc=pyha,dc=test", "s3cret", container="abc123")
    assert (ldap.host, ldap.port) == ("127.0.0.1", 40000)
    assert "s3cret" not in repr(ldap)
    pg = PgEndpoint("127.0.0.1", 5432, "postgres", password="s3cret")
    assert "s3cret" not in repr(pg)
    assert pg.dsn() == "host=127.0.0.1 port=5432 user=postgres dbname=postgres password=s3cret"
    assert PgEndpoint("h", 1, "u").dsn() == "host=h port=1 user=u dbname=postgres"


def test_jmx_options() -> None:
    assert jmx_options(9010, "10.0.0.5") == [
        "-Dcom.sun.management.jmxremote",
        "-Dcom.sun.management.jmxremote.port=9010",
        "-Dcom.sun.management.jmxremote.rmi.port=9010",
        "-Dcom.sun.management.jmxremote.authenticate=false",
        "-Dcom.sun.management.jmxremote.ssl=false",
        "-Djava.rmi.server.hostname=10.0.0.5",
    ]
    assert jmx_options(1, "h", bind="127.0.0.1")[-1] == \
        "-Dcom.sun.management.jmxremote.host=127.0.0.1"
