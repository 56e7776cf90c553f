"""The container definitions, checked without an engine: every Dockerfile and the compose file.

A small Dockerfile parser and hadolint-style rules of pyha's own: bases pinned to an exact
version or a digest, a non-root user in every image that runs, no secrets baked in, a
health check in every image that runs a service, exec-form commands, tidy apt use. The
compose file is checked for its structure and against the cluster file it mounts.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from pyha.model.config import ClusterConfig, parse_endpoint

REPO = Path(__file__).resolve().parents[2]
CONTAINERS = REPO / "containers"
DOCKERFILES = sorted(CONTAINERS.rglob("Dockerfile"))
COMPOSE = CONTAINERS / "compose.yaml"
CLUSTER = CONTAINERS / "cluster.toml"
SUBNET = ipaddress.ip_network("198.18.30.0/24")
ROOT_USERS = {"root", "0", "root:root", "0:0"}
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)
SECRET_FILE = re.compile(r"(\.key|\.pem|\.p12|\.pfx|\.password|id_rsa[^/]*|/secrets?/.*)$")
VERSIONED_TAG = re.compile(r"\d+\.\d+")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


# -- the parser ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: keyword (upper case), its text, and its first line."""

    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    """A build stage: its base, its name, and its instructions after FROM."""

    base: str
    name: str | None
    line: int
    body: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.body if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and blank lines dropped."""
    found: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not parts and (not line or line.startswith("#")):
            continue
        if parts and (not line or line.startswith("#")):
            continue  # Docker drops comments and empty lines inside a continuation
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line)
        keyword, _, args = " ".join(parts).partition(" ")
        found.append(Instruction(keyword.upper(), args.strip(), start))
        parts = []
    if parts:
        raise ValueError(f"line {start}: the last instruction ends in a continuation")
    return found


def split_stages(instructions: list[Instruction]) -> list[Stage]:
    """The build stages, in order; instructions before the first FROM must be ARGs."""
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, ins.line))
        elif not stages:
            if ins.keyword != "ARG":
                raise ValueError(f"line {ins.line}: {ins.keyword} before the first FROM")
        else:
            stages[-1].body.append(ins)
    return stages


def exec_form(args: str) -> list[str] | None:
    """The JSON array of an exec-form argument, or None for the shell form."""
    try:
        value = json.loads(args)
    except ValueError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def env_pairs(args: str) -> list[tuple[str, str]]:
    """NAME=value pairs of an ENV or ARG instruction (legacy `ENV NAME value` too)."""
    words = shlex.split(args)
    if len(words) >= 2 and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    return [(w.partition("=")[0], w.partition("=")[2]) for w in words]


# -- the rules -----------------------------------------------------------------------------


def pinned(base: str) -> bool:
    """An exact version tag (with at least major.minor) or a digest; never `latest`."""
    if DIGEST.search(base):
        return True
    name, _, tag = base.rpartition(":")
    if not name or "/" in tag:
        return False
    return tag != "latest" and bool(VERSIONED_TAG.search(tag))


@dataclass(frozen=True)
class Effective:
    """What a stage's image runs with: its user and whether it has a command / health check."""

    user: str | None
    runs: bool
    healthcheck: str | None


def effective(stages: list[Stage]) -> dict[int, Effective]:
    """Per stage index, the settings it ends with, inherited from an earlier stage's FROM."""
    out: dict[int, Effective] = {}
    names: dict[str, int] = {}
    for index, stage in enumerate(stages):
        parent = out.get(names[stage.base]) if stage.base in names else None
        user = parent.user if parent else None
        runs = parent.runs if parent else False
        health = parent.healthcheck if parent else None
        for ins in stage.body:
            if ins.keyword == "USER":
                user = ins.args.split()[0]
            elif ins.keyword in ("CMD", "ENTRYPOINT"):
                runs = True
            elif ins.keyword == "HEALTHCHECK":
                health = ins.args
        out[index] = Effective(user, runs, health)
        if stage.name:
            names[stage.name] = index
    return out


def check_dockerfile(text: str) -> list[str]:
    """Every rule's complaints about one Dockerfile, as 'line N: ...' strings."""
    stages = split_stages(parse_dockerfile(text))
    problems: list[str] = []
    seen: set[str] = set()
    ends = effective(stages)
    for index, stage in enumerate(stages):
        problems += _base_problems(stage, seen)
        problems += _secret_problems(stage)
        problems += _form_problems(stage)
        problems += _apt_problems(stage)
        runs = ends[index].runs or index == len(stages) - 1
        if runs:
            problems += _runtime_problems(stage, ends[index])
        if stage.name:
            seen.add(stage.name)
    return problems


def _base_problems(stage: Stage, earlier: set[str]) -> list[str]:
    if stage.base in earlier or pinned(stage.base):
        return []
    return [f"line {stage.line}: FROM {stage.base} is not pinned to an exact version or digest"]


def _secret_problems(stage: Stage) -> list[str]:
    problems = []
    for ins in stage.all("ENV") + stage.all("ARG"):
        for name, value in env_pairs(ins.args):
            # A path names where a secret is read at run time; it is not the secret.
            if SECRET_NAME.search(name) and value and not value.startswith("/"):
                problems.append(f"line {ins.line}: {ins.keyword} {name} bakes a secret value "
                                "into the image")
    for ins in stage.all("COPY") + stage.all("ADD"):
        words = [w for w in shlex.split(ins.args) if not w.startswith("--")]
        problems += [f"line {ins.line}: {ins.keyword} {src} copies a key or secret file"
                     for src in words[:-1] if SECRET_FILE.search(src)]
    return problems


def _form_problems(stage: Stage) -> list[str]:
    problems = []
    for ins in stage.all("CMD") + stage.all("ENTRYPOINT"):
        if exec_form(ins.args) is None:
            problems.append(f"line {ins.line}: {ins.keyword} in shell form (signals would "
                            "not reach the program)")
    for ins in stage.all("HEALTHCHECK"):
        _, sep, command = ins.args.partition("CMD ")
        if ins.args.strip() != "NONE" and (not sep or exec_form(command) is None):
            problems.append(f"line {ins.line}: HEALTHCHECK needs CMD in exec form")
    problems += [f"line {ins.line}: ADD from a URL; download in a RUN with a checksum"
                 for ins in stage.all("ADD") if "://" in ins.args]
    return problems


def _apt_problems(stage: Stage) -> list[str]:
    problems = []
    for ins in stage.all("RUN"):
        if "apt-get install" not in ins.args:
            continue
        if "--no-install-recommends" not in ins.args or " -y" not in ins.args:
            problems.append(f"line {ins.line}: apt-get install needs -y and "
                            "--no-install-recommends")
        if "rm -rf /var/lib/apt/lists" not in ins.args:
            problems.append(f"line {ins.line}: the apt lists must be removed in the same RUN")
    problems += [f"line {ins.line}: sudo in a RUN" for ins in stage.all("RUN")
                 if re.search(r"\bsudo\b", ins.args)]
    return problems


def _runtime_problems(stage: Stage, end: Effective) -> list[str]:
    problems = []
    if end.user is None or end.user in ROOT_USERS:
        problems.append(f"line {stage.line}: stage {stage.name or stage.base} runs as root "
                        "(add a USER that is not root)")
    if end.healthcheck is None or end.healthcheck.strip() == "NONE":
        problems.append(f"line {stage.line}: stage {stage.name or stage.base} has no "
                        "HEALTHCHECK")
    return problems


# -- the parser and the rules on small examples ------------------------------------------------

GOOD = """\
# syntax=docker/dockerfile:1
FROM debian:12.11-slim AS base
RUN apt-get update \\
 # a comment inside a continuation
 && apt-get install -y --no-install-recommends curl \\
 && rm -rf /var/lib/apt/lists/*
ENV DATA_DIR=/srv KEY_FILE=/run/key
USER app
HEALTHCHECK --interval=5s CMD ["true"]
CMD ["app"]

FROM base AS more
RUN echo more
"""


def test_the_parser_joins_continuations_and_splits_stages() -> None:
    instructions = parse_dockerfile(GOOD)
    assert [i.keyword for i in instructions] == [
        "FROM", "RUN", "ENV", "USER", "HEALTHCHECK", "CMD", "FROM", "RUN"]
    run = instructions[1]
    assert run.line == 3
    assert run.args.startswith("apt-get update && apt-get install -y")
    stages = split_stages(instructions)
    assert [(s.base, s.name) for s in stages] == [("debian:12.11-slim", "base"),
                                                  ("base", "more")]
    assert env_pairs("DATA_DIR=/srv KEY_FILE=/run/key") == [("DATA_DIR", "/srv"),
                                                            ("KEY_FILE", "/run/key")]
    assert env_pairs("LEGACY some value") == [("LEGACY", "some value")]


def test_a_clean_file_passes_and_a_derived_stage_inherits_user_and_healthcheck() -> None:
    assert check_dockerfile(GOOD) == []


@pytest.mark.parametrize(("base", "ok"), [
    ("python:3.11.11-slim-bookworm", True), ("debian:12.11-slim", True),
    ("postgres:15.10-bookworm", True),
    ("debian@sha256:" + "a" * 64, True), ("python:latest", False), ("python", False),
    ("debian:bookworm-slim", False), ("python:3-slim", False),
    ("registry.example:5000/img", False),
])
def test_pinned_bases(base: str, ok: bool) -> None:
    assert pinned(base) is ok


@pytest.mark.parametrize(("line", "complaint"), [
    ("FROM python:latest", "is not pinned"),
    ('ENV DB_PASSWORD=hunter2', "bakes a secret value"),
    ("ARG API_TOKEN=abc", "bakes a secret value"),
    ("COPY secrets/cluster.key /etc/pyha/", "copies a key or secret file"),
    ("COPY --chown=1:1 tls/server.pem /etc/", "copies a key or secret file"),
    ("CMD pyha server", "shell form"),
    ("HEALTHCHECK CMD curl -f http://localhost/", "exec form"),
    ("ADD https://example.org/x.tgz /x", "ADD from a URL"),
    ("RUN apt-get install curl", "needs -y and --no-install-recommends"),
    ("USER root", "runs as root"),
    ("HEALTHCHECK NONE", "has no HEALTHCHECK"),
])
def test_each_rule_can_fail(line: str, complaint: str) -> None:
    text = GOOD.replace("RUN echo more", line) if not line.startswith("FROM") else \
        GOOD.replace("FROM debian:12.11-slim AS base", f"{line} AS base")
    problems = check_dockerfile(text)
    assert any(complaint in p for p in problems), problems


def test_an_image_without_user_or_healthcheck_is_refused() -> None:
    problems = check_dockerfile('FROM debian:12.11-slim\nCMD ["sleep", "1"]\n')
    assert problems == ["line 1: stage debian:12.11-slim runs as root (add a USER that is not "
                        "root)", "line 1: stage debian:12.11-slim has no HEALTHCHECK"]


# -- pyha's Dockerfiles ----------------------------------------------------------------------


def test_every_image_is_here() -> None:
    assert [p.relative_to(CONTAINERS).as_posix() for p in DOCKERFILES] == [
        "openldap/Dockerfile", "pyha/Dockerfile", "tomcat/Dockerfile"]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_follows_the_rules(path: Path) -> None:
    assert check_dockerfile(path.read_text()) == []


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_copies_only_files_that_exist(path: Path) -> None:
    for stage in split_stages(parse_dockerfile(path.read_text())):
        for ins in stage.all("COPY"):
            if "--from=" in ins.args:
                continue
            words = [w for w in shlex.split(ins.args) if not w.startswith("--")]
            for source in words[:-1]:
                assert (REPO / source).exists(), f"{path}: line {ins.line}: no {source}"


def test_the_pyha_image_has_a_slim_server_and_a_tomcat_node() -> None:
    stages = split_stages(parse_dockerfile((CONTAINERS / "pyha" / "Dockerfile").read_text()))
    assert [s.name for s in stages] == ["build", "server", "node-tomcat"]
    server = stages[1]
    assert "slim" in server.base
    assert [exec_form(i.args) for i in server.all("ENTRYPOINT")] == [["pyha"]]
    (health,) = server.all("HEALTHCHECK")
    assert health.args.endswith('CMD ["pyha-healthcheck"]')
    node = stages[2]
    assert node.base == "server"
    assert node.all("USER")[-1].args == "pyha"


def test_the_openldap_image_loads_pyhas_schema_and_base_tree() -> None:
    text = (CONTAINERS / "openldap" / "Dockerfile").read_text()
    (stage,) = split_stages(parse_dockerfile(text))
    copies = " ".join(i.args for i in stage.all("COPY"))
    assert "jndi/pyha-schema.ldif" in copies
    assert "jndi/base-tree.ldif" in copies
    assert stage.all("USER")[-1].args == "openldap"


def test_the_tomcat_image_serves_jmx_on_a_fixed_port() -> None:
    text = (CONTAINERS / "tomcat" / "Dockerfile").read_text()
    (stage,) = split_stages(parse_dockerfile(text))
    env = dict(p for i in stage.all("ENV") for p in env_pairs(i.args))
    assert env["JMX_PORT"] == "9010"
    assert any("9010" in i.args.split() for i in stage.all("EXPOSE"))
    assert "jmxremote.rmi.port=$JMX_PORT" in (CONTAINERS / "tomcat" / "setenv.sh").read_text()


# -- the compose file -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def cluster() -> ClusterConfig:
    return ClusterConfig.from_toml(CLUSTER)


def node_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run a cluster server, by node name (their PYHA_NODE)."""
    return {s["environment"]["PYHA_NODE"]: s for s in compose["services"].values()
            if "PYHA_NODE" in (s.get("environment") or {})}


def test_services_and_network(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"directory", "keygen", "n1", "n2", "n3"}
    (config,) = compose["networks"]["pyha"]["ipam"]["config"]
    assert ipaddress.ip_network(config["subnet"]) == SUBNET
    assert ipaddress.ip_address(config["gateway"]) in SUBNET


def test_every_image_is_pinned_and_every_build_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert pinned(service["image"]), f"{name}: image {service['image']} is not pinned"
        build = service.get("build")
        if build:
            context = (COMPOSE.parent / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), name


def test_every_node_is_checked_keyed_and_addressed(compose: dict[str, Any],
                                                   cluster: ClusterConfig) -> None:
    nodes = node_services(compose)
    assert sorted(nodes) == [n.name for n in cluster.nodes]
    for name, service in nodes.items():
        health = service["healthcheck"]
        assert health["test"] == ["CMD", "pyha-healthcheck"] and not health.get("disable")
        key_mounts = [v for v in service["volumes"] if v.split(":")[1] == "/var/lib/pyha-key"]
        assert key_mounts == ["pyha-key:/var/lib/pyha-key:ro"], name
        address = ipaddress.ip_address(service["networks"]["pyha"]["ipv4_address"])
        assert address in SUBNET
        node = cluster.node(name)
        assert {parse_endpoint(a)[0] for a in node.addresses} == {str(address)}
        assert parse_endpoint(node.rpc or "")[0] == str(address)
        assert service["command"][-2:] == ["--node", name]


def test_every_fence_kills_its_own_nodes_container(compose: dict[str, Any],
                                                   cluster: ClusterConfig) -> None:
    nodes = node_services(compose)
    for node in cluster.nodes:
        fence = node.fence
        assert fence is not None and fence.kind == "command"
        container = nodes[node.name]["container_name"]
        assert fence.off == ("pyha-docker-fence", "off", container)
        assert fence.status == ("pyha-docker-fence", "status", container)
        assert "/var/run/docker.sock:/var/run/docker.sock" in nodes[node.name]["volumes"]
    assert not cluster.cluster.recovery_without_fencing


def test_the_cluster_file_says_where_the_key_is(compose: dict[str, Any],
                                                cluster: ClusterConfig) -> None:
    keygen = compose["services"]["keygen"]
    assert keygen["entrypoint"] == ["pyha-init-key", cluster.cluster.key_file]
    assert keygen["network_mode"] == "none"
    assert "./cluster.toml:/etc/pyha/cluster.toml:ro" in node_services(compose)["n1"]["volumes"]
    assert [g.name for g in cluster.groups] == ["web"]
    assert cluster.groups[0].resources[0].type == "tomcat"


def start_order(services: dict[str, Any]) -> list[str]:
    """The services in an order their depends_on allows; ValueError on a cycle."""
    order: list[str] = []
    pending = dict(services)
    while pending:
        ready = sorted(n for n, s in pending.items()
                       if all(d in order for d in (s.get("depends_on") or {})))
        if not ready:
            raise ValueError(f"depends_on cycle among {sorted(pending)}")
        order += ready
        for n in ready:
            del pending[n]
    return order


def test_depends_on_starts_the_directory_then_the_key_then_the_nodes(
        compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert start_order(services) == ["directory", "keygen", "n1", "n2", "n3"]
    for name in node_services(compose):
        assert services[name]["depends_on"] == {
            "keygen": {"condition": "service_completed_successfully"},
            "directory": {"condition": "service_healthy"}}
    with pytest.raises(ValueError, match="cycle"):
        start_order({"a": {"depends_on": {"b": {}}}, "b": {"depends_on": {"a": {}}}})


def test_no_secret_values_and_only_loopback_ports(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            assert not (SECRET_NAME.search(key) and not str(value).startswith("/")), \
                f"{name}: {key} holds a secret in the compose file"
        for port in service.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is published widely"
        assert not service.get("privileged"), name


# -- the health check's pure parts ------------------------------------------------------------


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_pyha_containers_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


healthcheck = _load(CONTAINERS / "pyha" / "healthcheck.py")


def test_udp_table_parsing() -> None:
    table = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
        "  12: 0B1E12C6:1B59 00000000:0000 07 00000000:00000000 00:00000000 00000000 10001\n"
        "  40: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0\n")
    assert healthcheck.udp_ports(table) == {7001, 53}
    assert healthcheck.udp_ports("header only\n") == set()


def test_the_health_check_finds_its_node_in_the_cluster_file() -> None:
    spot = healthcheck.target(CLUSTER, "n2")
    assert spot == healthcheck.Target("n2", ("198.18.30.12", 7002), (("198.18.30.12", 7001),))
    with pytest.raises(SystemExit, match="PYHA_NODE"):
        healthcheck.target(CLUSTER, None)
