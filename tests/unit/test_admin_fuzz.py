"""Fuzzing the admin service: every exposed method, found by introspection (so methods
added later are fuzzed too), called with random and malformed arguments on a fresh
single-node server. Each call either answers with JSON's types in the documented shape
or raises one of pyha's admin errors naming the argument and the reason; a refused call
changes nothing but the audit log, which gains exactly one record of the refusal."""

from __future__ import annotations

import inspect
import json
import tempfile
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from Pyro5.core import URI

from pyha.admin import errors as admin_errors
from pyha.admin.auth import AdminRole, Identity
from pyha.admin.client import AdminClient
from pyha.admin.service import AdminService
from pyha.admin.target import ServerTarget
from pyha.errors import AdminError
from pyha.executor.runner import Executor
from pyha.model.config import ClusterConfig
from pyha.resources.agent import Origin
from pyha.resources.python import PythonAgent
from pyha.resources.registry import Registry
from pyha.resources.spi import TypeName
from pyha.server import ClusterServer
from pyha.testing import DummyPlugin, FakeClock

MAX_EXAMPLES = 400
KNOWN = {"whoami", "status", "explain", "history", "audit", "cleanup", "standby", "online",
         "maintenance"}
"""Methods the service had when this test was written: the discovery must find them all."""
CLIENT_SIDE = {admin_errors.AdminUnreachable, admin_errors.ConnectionRefused,
               admin_errors.CertificateError}
"""Admin errors only the client raises (the service has no business raising them)."""


def exposed_methods() -> dict[str, Callable[..., Any]]:
    """The admin service's remote methods: those Pyro5's `expose` marked, by name."""
    return {name: func for name, func in inspect.getmembers(AdminService, inspect.isfunction)
            if getattr(func, "_pyroExposed", False)}


METHODS = exposed_methods()
SIGNATURES = {name: inspect.signature(func) for name, func in METHODS.items()}
"""Each method's own signature (functools.wraps leaves it reachable through __wrapped__)."""
SERVICE_ERRORS = tuple(sorted(
    (cls for cls in vars(admin_errors).values()
     if isinstance(cls, type) and issubclass(cls, AdminError) and cls not in CLIENT_SIDE
     and cls.__module__ == admin_errors.__name__), key=lambda cls: cls.__name__))
"""The error types a refused call may raise: pyha's admin errors (pyha/admin/errors.py)."""


def config() -> ClusterConfig:
    return ClusterConfig.from_mapping({
        "cluster": {"name": "fuzz"},
        "nodes": [{"name": "n1"}],
        "groups": [
            {"name": "web", "resources": [
                {"name": "ip", "type": "dummy",
                 "operations": [{"name": "monitor", "interval": "5s"}],
                 "meta": {"migration_threshold": 1}},
                {"name": "app", "type": "dummy", "params": {"delay": 0}}]},
            {"name": "db", "resources": [{"name": "pg", "type": "dummy"}]}],
        "constraints": [
            {"kind": "location", "id": "loc-web", "group": "web", "node": "n1", "score": 50},
            {"kind": "order", "id": "db-then-web", "first": "db", "then": "web"}],
    })


# -- arguments ------------------------------------------------------------------------------

KINDS = {"node": ["n1"], "resource": ["ip", "app", "pg"], "group": ["web", "db"],
         "resource_type": ["dummy", "python:pyha:dummy"], "type": ["dummy", "python:pyha:dummy"],
         "constraint": ["loc-web", "db-then-web"], "id": ["loc-web", "db-then-web"]}
"""Names the cluster has, by the parameter names they suit: arguments likely accepted."""
NAMES = sorted({name for names in KINDS.values() for name in names} | {"fuzz"})
BAD_NAMES = ["", " ", "n2", "nope", "IP", "ip ", "a" * 254, "a" * 300, "\x00", "web/ip",
             "cn=ip,ou=groups", "é", "../../etc/passwd", "*", "(cn=*)"]
KEYS = ["name", "type", "group", "resources", "params", "operations", "meta", "node", "score",
        "kind", "id", "first", "then", "with_group", "interval", "timeout", "target_role",
        "resource", "on", "limit", "__class__", ""]
"""Keys a configuration item (a resource, group, constraint, type) might carry."""

SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70)
           | st.floats() | st.text(max_size=12) | st.sampled_from(NAMES + BAD_NAMES))
ODD = st.sampled_from([b"ip", bytearray(b"n1"), ("ip",), {"ip"}, frozenset(), 1j, object(),
                       ValueError("boom"), URI("PYRO:obj@127.0.0.1:1"), Ellipsis,
                       float("nan"), float("inf"), -0.0, 2**200])
"""Values only a Python caller can pass (and some a Pyro5 json message can rebuild:
exceptions and URIs, from a dict with a `__class__` key)."""
ANY_VALUE = st.recursive(
    SCALARS | ODD,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5),
    max_leaves=10)
NAME = st.sampled_from(NAMES)


SHAPES: dict[str, list[Any]] = {
    "resource": [{"name": "new", "type": "dummy"},
                 {"name": "new", "type": "python:pyha:dummy", "params": {"delay": 0},
                  "operations": [{"name": "monitor", "interval": "10s"}],
                  "meta": {"migration_threshold": 2}}],
    "group": [{"name": "g9", "resources": [{"name": "r9", "type": "dummy"}]},
              {"name": "g9", "resources": [], "meta": {"target_role": "stopped"}}],
    "constraint": [
        {"kind": "location", "id": "c9", "group": "db", "node": "n1", "score": 10},
        {"kind": "colocation", "id": "c8", "group": "db", "with_group": "web",
         "score": "INFINITY"},
        {"kind": "order", "id": "c7", "first": "web", "then": "db"}],
    "resource_type": [{"name": "mine", "plugin": "python:pyha:dummy"}],
    "node": [{"name": "n2"}, {"name": "n2", "votes": 0, "attributes": {"rack": "a"}}],
    "change": [{"kind": "resource_remove", "args": {"name": "ip"}},
               {"kind": "standby", "args": {"node": "n1", "on": True}}],
}
"""Well-formed values for parameters that take a mapping, by the thing they describe."""
FIELDS: dict[str, list[dict[str, Any]]] = {
    "resource": [{"description": "x"}, {"meta": {"migration_threshold": 3}},
                 {"params": {"delay": 1}}, {"type": "dummy"}],
    "group": [{"description": "x"}, {"meta": {"target_role": "stopped"}}],
    "constraint": [{"score": 20}, {"score": "-INFINITY"}],
    "node": [{"votes": 2}, {"attributes": {"rack": "b"}}],
    "options": [{"cycle_interval": "2s"}, {"stickiness": 10}, {"no_quorum_policy": "freeze"},
                {"maintenance": True}],
}
"""Well-formed `fields` of the update methods, by what they update."""
LISTS = {"node_down": ["n1"], "standby": ["n1"], "fail": ["ip", "ip:monitor", "pg:start"]}


def kind_of(method: str, parameter: str) -> str:
    """What a parameter names: by its own name, else (name, id, fields) by its method's."""
    if parameter in SHAPES or parameter in KINDS:
        return parameter
    for kind in ("resource_type", "resource", "group", "constraint", "node", "options"):
        if method.startswith(kind):
            return kind
    return ""


@st.composite
def mutated(draw: st.DrawFn, examples: list[Any]) -> Any:
    """One of `examples`, as it is or with one key dropped, spoilt or added."""
    value = draw(st.sampled_from(examples))
    if not isinstance(value, dict) or not value or draw(st.booleans()):
        return value
    value = dict(value)
    key = draw(st.sampled_from(sorted(value)))
    how = draw(st.integers(0, 2))
    if how == 0:
        del value[key]
    elif how == 1:
        value[key] = draw(ANY_VALUE | st.sampled_from(BAD_NAMES))
    else:
        value[draw(st.sampled_from(KEYS))] = draw(ANY_VALUE)
    return value


def plausible(method: str, parameter: inspect.Parameter) -> st.SearchStrategy[Any]:
    """Values of the parameter's annotated type, drawn from what the cluster has."""
    hint, kind = str(parameter.annotation), kind_of(method, parameter.name)
    parts: list[st.SearchStrategy[Any]] = []
    if "None" in hint or parameter.default is None:
        parts.append(st.none())
    if "bool" in hint:
        parts.append(st.booleans())
    if "int" in hint or "float" in hint:
        parts.append(st.integers(-5, 1200))
    if "str" in hint and "dict" not in hint and "list" not in hint:
        parts.append(st.sampled_from(KINDS.get(kind, NAMES)))
        if "float" in hint:  # a duration: seconds or text
            parts.append(st.sampled_from(["30m", "10s", "1h", "0s", "-1s", "soon"]))
    if "dict" in hint or "Mapping" in hint:
        examples = FIELDS.get(kind) if parameter.name == "fields" else SHAPES.get(kind)
        parts.append(mutated(examples) if examples else
                     st.dictionaries(st.sampled_from(KEYS), SCALARS | NAME, max_size=6))
    if "list" in hint or "Sequence" in hint or "tuple" in hint:
        parts.append(st.lists(st.sampled_from(LISTS.get(parameter.name, NAMES)), max_size=3))
    if "Literal[" in hint:
        parts.append(st.sampled_from([v.strip(" '\"") for v in
                                      hint.split("Literal[", 1)[1].split("]", 1)[0].split(",")]))
    return st.one_of(*parts) if parts else ANY_VALUE | NAME


def value_for(method: str, parameter: inspect.Parameter) -> st.SearchStrategy[Any]:
    """Mostly plausible values (three in five), else a bad name or anything at all."""
    suits = plausible(method, parameter)
    return st.one_of(suits, suits, suits, st.sampled_from(BAD_NAMES), ANY_VALUE)


@dataclass(frozen=True)
class Call:
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def __repr__(self) -> str:
        shown = [repr(a)[:80] for a in self.args]
        shown += [f"{k}={v!r}"[:80] for k, v in self.kwargs.items()]
        return f"{self.method}({', '.join(shown)})"


@st.composite
def calls(draw: st.DrawFn, method: str | None = None) -> Call:
    """A call of one exposed method: some parameters positional, some by keyword, some
    left out (required ones too, now and then), and now and then one too many."""
    name = method or draw(st.sampled_from(sorted(METHODS)))
    parameters = list(SIGNATURES[name].parameters.values())[1:]  # without self
    positional = draw(st.integers(0, len(parameters)))
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for i, parameter in enumerate(parameters):
        leave_out = draw(st.integers(0, 9)) == 0 if parameter.default is inspect.Parameter.empty \
            else draw(st.booleans())
        if i < positional:
            args.append(draw(value_for(name, parameter)))
        elif not leave_out:
            kwargs[parameter.name] = draw(value_for(name, parameter))
    extra = draw(st.integers(0, 19))
    if extra == 0:
        args.append(draw(ANY_VALUE))
    elif extra == 1:
        kwargs[draw(st.sampled_from(KEYS) | st.text(max_size=8))] = draw(ANY_VALUE)
    return Call(name, tuple(args), kwargs)


# -- the node -------------------------------------------------------------------------------

class Node:
    """A single-node server whose operations run inline, and its admin service."""

    def __init__(self, state_dir: Path, role: AdminRole = AdminRole.ADMIN) -> None:
        self.clock = FakeClock()
        registry = Registry()
        registry.register(PythonAgent(DummyPlugin(), TypeName.parse("python:pyha:dummy"),
                                      Origin("bundled", "test")))
        executor = Executor(node="n1", clock=self.clock, state_dir=state_dir, inline=True)
        self.server = ClusterServer(config(), registry, clock=self.clock, state_dir=state_dir,
                                    executor=executor)
        self.caller = Identity(f"fuzzer-{role.value}", role)
        self.service = AdminService(ServerTarget(self.server), identity=lambda: self.caller,
                                    clock=self.clock.wall)
        self.server.probe()
        self.server.cycle()

    def state(self) -> Any:
        """What a refused call must leave as it was: the config in force and the next one
        (which carries the runtime flags), fail counts, the view, the resources to probe
        again, the operations run, and the cluster's files."""
        s = self.server
        return (s.config, s.next_config(), s.fail_counts.records(), s.view(),
                dict(s._reprobe), len(s.history.all()), self.files())

    def files(self) -> dict[str, bytes]:
        root = self.server.state_dir
        return {str(p.relative_to(root)): p.read_bytes()
                for p in sorted(root.rglob("*")) if p.is_file()}


@contextmanager
def fresh_node(role: AdminRole = AdminRole.ADMIN) -> Iterator[Node]:
    """A new node per example: an accepted call (a deletion, say) must not shape the next."""
    with tempfile.TemporaryDirectory(prefix="pyha-fuzz-") as tmp:
        yield Node(Path(tmp), role)


# -- the checks -----------------------------------------------------------------------------

def documented_shape(method: str, answer: Any) -> None:
    """The answer is JSON's types, of the method's return annotation, and parses as the
    typed client's model for that method when the client has one."""
    assert json.loads(json.dumps(answer, allow_nan=False)) == answer
    returns = str(SIGNATURES[method].return_annotation)
    if returns.startswith("dict"):
        assert isinstance(answer, dict)
    elif returns.startswith("list"):
        assert isinstance(answer, list)
    client_method = getattr(AdminClient, method, None)
    if client_method is None:
        return
    model = typing.get_type_hints(client_method).get("return")
    if isinstance(model, type) and issubclass(model, BaseModel):
        model.model_validate(answer)
    elif typing.get_origin(model) is list:
        (item,) = typing.get_args(model)
        if isinstance(item, type) and issubclass(item, BaseModel):
            for row in answer:
                item.model_validate(row)


def clear_refusal(call: Call, exc: BaseException, role: AdminRole) -> None:
    """The error is one of pyha's admin errors and says which argument and why."""
    assert isinstance(exc, SERVICE_ERRORS), (
        f"{call!r} raised {type(exc).__module__}.{type(exc).__name__}: {exc}")
    text = str(exc)
    assert "internal error" not in text, f"{call!r} leaked an unexpected error: {text}"
    assert text.startswith(f"{call.method}: "), f"{call!r}: {text!r} does not name the method"
    if isinstance(exc, admin_errors.PermissionDenied):
        assert not role.allows(AdminRole(exc.needed)), f"{call!r}: {role.value} refused"
    if isinstance(exc, admin_errors.InvalidArgument):
        named = set(SIGNATURES[call.method].parameters) - {"self"} | {"arguments"}
        assert exc.argument in named, f"{call!r}: {exc.argument!r} is not an argument"
        assert exc.reason.strip(), f"{call!r}: no reason given"
        assert text.startswith(f"{call.method}: {exc.argument}: ")


def check(node: Node, call: Call) -> None:
    """Run `call` and hold it to the contract."""
    before, audited = node.state(), node.service.audit_log.recent(1000)
    try:
        answer = getattr(node.service, call.method)(*call.args, **call.kwargs)
    except Exception as exc:  # judged by clear_refusal, whatever its type
        clear_refusal(call, exc, node.caller.role)
        assert node.state() == before, f"{call!r} was refused ({exc}) but changed the state"
        after = node.service.audit_log.recent(1000)
        assert after[:-1] == audited, f"{call!r}: the audit log changed beyond one record"
        assert (after[-1].method, after[-1].result) in {
            (call.method, "error"), (call.method, "refused")}
        return
    documented_shape(call.method, answer)
    last = node.service.audit_log.recent(1)[0]
    assert (last.method, last.result) == (call.method, "ok")


# -- the tests ------------------------------------------------------------------------------

def test_the_discovered_methods_include_every_known_one_with_a_real_signature() -> None:
    assert set(METHODS) >= KNOWN, f"not discovered: {KNOWN - set(METHODS)}"
    assert not {"invoke", "refused", "_flags", "_known", "__init__"} & set(METHODS)
    assert all(str(sig.parameters.get("self")) == "self" for sig in SIGNATURES.values())
    assert len(SERVICE_ERRORS) >= 3 and admin_errors.InvalidArgument in SERVICE_ERRORS


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(call=calls())
def test_any_call_answers_in_its_shape_or_is_refused_clearly_and_changes_nothing(
        call: Call) -> None:
    with fresh_node() as node:
        check(node, call)


@pytest.mark.parametrize("method", sorted(METHODS))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_each_method_on_its_own(method: str, data: st.DataObject) -> None:
    """Every method gets its share, however many there are."""
    call = data.draw(calls(method))
    with fresh_node() as node:
        check(node, call)


@settings(max_examples=60, deadline=None)
@given(role=st.sampled_from(list(AdminRole)), call=calls())
def test_lesser_roles_are_refused_or_answered_the_same_way(role: AdminRole, call: Call) -> None:
    with fresh_node(role) as node:
        check(node, call)
