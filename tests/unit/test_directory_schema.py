"""Entries <-> models: every field round-trips, and every error names DN, attribute, reason."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from pyha.directory import ldapschema
from pyha.directory.codecs import decode_param, encode_param, format_time, parse_time
from pyha.directory.records import AuditRecord, StatusRecord
from pyha.directory.schema import (
    AUDIT_ATTRS,
    COLOCATION_ATTRS,
    GROUP_ATTRS,
    LOCATION_ATTRS,
    NODE_ATTRS,
    OPTIONS_ATTRS,
    ORDER_ATTRS,
    RESOURCE_ATTRS,
    STATUS_ATTRS,
    TYPE_ATTRS,
    Attr,
    ParseMemo,
    audit_from_entry,
    audit_to_entry,
    config_from_entries,
    config_to_entries,
    status_from_entry,
    status_to_entry,
)
from pyha.directory.transfer import base_tree_ldif, config_from_ldif
from pyha.directory.tree import ClusterNotFound, Entry, EntryError, Layout
from pyha.errors import ConfigError
from pyha.model.config import (
    ClusterConfig,
    ClusterOptions,
    ColocationConstraint,
    GroupMeta,
    LocationConstraint,
    Node,
    Operation,
    OrderConstraint,
    Resource,
    ResourceMeta,
    ResourceType,
)
from pyha.model.status import Role
from pyha.testing.directory import sample_config

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = Layout("dc=pyha,dc=test", "pyha")


def shuffled(entries: list[Entry], seed: int) -> list[Entry]:
    """The entries in another order, each attribute's values in another order (as LDAP)."""
    rng = random.Random(seed)
    out = [Entry(e.dn, {k: tuple(rng.sample(v, len(v))) for k, v in e.attrs.items()})
           for e in entries]
    rng.shuffle(out)
    return out


def entries_of(config: ClusterConfig) -> dict[str, Entry]:
    return {e.dn: e for e in config_to_entries(config, LAYOUT)}


def with_attrs(config: ClusterConfig, dn: str, **attrs: Any) -> list[Entry]:
    """The entries of `config` with some attributes of one entry replaced."""
    entries = entries_of(config)
    old = dict(entries[dn].attrs)
    for name, values in attrs.items():
        if values is None:
            old.pop(name.lower(), None)
        else:
            old[name.lower()] = (values,) if isinstance(values, str) else tuple(values)
    entries[dn] = Entry(dn, old)
    return list(entries.values())


# -- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_field_round_trips_whatever_order_ldap_returns(seed: int) -> None:
    config = sample_config()
    back = config_from_entries(shuffled(config_to_entries(config, LAYOUT), seed), LAYOUT)
    assert back == config
    assert [o.name for o in back.resource("b").operations] == ["monitor", "start"]


WHOLE_JSON = {"FenceConfig"}
"""Nested models stored as one JSON value (pyhaFence): every field of theirs round-trips."""


def _defaults_left(model: BaseModel, path: str) -> list[str]:
    left = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if name == "kind":
            continue
        if not info.is_required() and value == info.get_default(call_default_factory=True):
            left.append(f"{path}.{name}")
        if isinstance(value, BaseModel) and type(value).__name__ not in WHOLE_JSON:
            left += _defaults_left(value, f"{path}.{name}")
    return left


def test_the_sample_sets_every_field_of_every_model() -> None:
    config = sample_config()
    seen: dict[type, list[BaseModel]] = {}
    stack: list[Any] = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, BaseModel):
            seen.setdefault(type(item), []).append(item)
            stack += [getattr(item, f) for f in type(item).model_fields]
        elif isinstance(item, tuple | list):
            stack += list(item)
    for cls, instances in seen.items():
        if cls.__name__ in WHOLE_JSON:
            continue
        # A field counts as covered when at least one instance sets it.
        left = set.intersection(*(set(_defaults_left(i, cls.__name__)) for i in instances))
        assert not left, f"the sample leaves these at their defaults: {sorted(left)}"


def _fields(cls: type[BaseModel], prefix: str = "") -> set[str]:
    out = set()
    for name, info in cls.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel) and name == "meta":
            out |= _fields(ann, f"{name}.")
        else:
            out.add(prefix + name)
    return out


@pytest.mark.parametrize(("model", "table", "from_dn"), [
    (ClusterOptions, OPTIONS_ATTRS, {"name"}),
    (Node, NODE_ATTRS, {"name"}),
    (ResourceType, TYPE_ATTRS, {"name"}),
    (Resource, RESOURCE_ATTRS, {"name"}),
    (LocationConstraint, LOCATION_ATTRS, {"id", "kind"}),
    (ColocationConstraint, COLOCATION_ATTRS, {"id", "kind"}),
    (OrderConstraint, ORDER_ATTRS, {"id", "kind"}),
    (StatusRecord, STATUS_ATTRS, {"resource"}),
    (AuditRecord, AUDIT_ATTRS, {"id"}),
])
def test_every_model_field_has_an_attribute_of_its_own(
        model: type[BaseModel], table: tuple[Attr, ...], from_dn: set[str]) -> None:
    missing = _fields(model) - {a.field for a in table} - from_dn
    assert not missing, (f"{model.__name__}: add attributes for {sorted(missing)} to "
                         "pyha/directory/ldapschema.py and schema.py (until then they "
                         "travel in pyhaExtra)")


def test_group_fields_have_attributes() -> None:
    table = {a.field for a in GROUP_ATTRS}
    assert {f"meta.{f}" for f in GroupMeta.model_fields} <= table
    assert {f"meta.{f}" for f in ResourceMeta.model_fields} <= {a.field for a in RESOURCE_ATTRS}
    assert set(Operation.model_fields) == {"name", "interval", "timeout", "on_fail", "role"}


def test_entries_look_as_an_ldap_user_expects() -> None:
    entries = entries_of(sample_config())
    resource = entries["cn=b,cn=g,ou=groups,cn=pyha,dc=pyha,dc=test"]
    assert resource.values("objectClass") == ("pyhaResource",)
    assert resource.values("pyhaType") == ("dummy",)
    assert "i=1" in resource.values("pyhaParameter")
    assert 's="1"' in resource.values("pyhaParameter")  # a string that reads as a number
    assert "eq=k=v" in resource.values("pyhaParameter")
    assert resource.values("pyhaPosition") == ("0",)
    assert resource.values("pyhaMigrationThreshold") == ("5",)
    assert resource.values("pyhaFailureTimeout") == ("0s",)
    node = entries["cn=n2,ou=nodes,cn=pyha,dc=pyha,dc=test"]
    assert node.values("pyhaAddress") == ("{0}10.0.0.2:5405", "{1}[fe80::1]:5405")
    assert node.values("pyhaStandby") == ("TRUE",)
    cluster = entries["cn=pyha,dc=pyha,dc=test"]
    assert cluster.values("pyhaEpoch") == ("7",)
    assert cluster.values("pyhaDeadAfter") == ("0.1234",)
    assert cluster.values("pyhaHeartbeatInterval") == ("50ms",)
    assert not any("pyhaextra" in e.attrs for e in entries.values())


def test_defaults_are_not_written() -> None:
    config = ClusterConfig.from_mapping({"cluster": {"name": "pyha"}, "nodes": [{"name": "n1"}],
                                         "groups": [{"name": "g", "resources": [
                                             {"name": "r", "type": "dummy"}]}]})
    entries = entries_of(config)
    assert dict(entries["cn=r,cn=g,ou=groups,cn=pyha,dc=pyha,dc=test"].attrs) == {
        "objectclass": ("pyhaResource",), "cn": ("r",), "pyhatype": ("dummy",),
        "pyhaposition": ("0",)}
    assert config_from_entries(entries.values(), LAYOUT) == config


def test_hand_written_entries_without_positions_or_prefixes_load() -> None:
    base = "cn=pyha,dc=pyha,dc=test"
    entries = [
        Entry.of(base, {"objectClass": "pyhaCluster", "cn": "pyha"}),
        Entry.of(f"cn=n1,ou=nodes,{base}", {"objectClass": "pyhaNode",
                                             "pyhaAddress": "10.0.0.1:5405"}),
        Entry.of(f"ou=nodes,{base}", {"objectClass": "organizationalUnit"}),
        Entry.of(f"cn=web,ou=types,{base}", {"objectClass": "pyhaResourceType",
                                              "pyhaPlugin": "python:pyha:dummy"}),
        Entry.of(f"cn=zz,ou=groups,{base}", {"objectClass": "pyhaGroup"}),
        Entry.of(f"cn=b,cn=zz,ou=groups,{base}", {"objectClass": "pyhaResource",
                                                   "pyhaType": f"cn=web,ou=types,{base}"}),
        Entry.of(f"cn=a,cn=zz,ou=groups,{base}", {"objectClass": "pyhaResource",
                                                   "pyhaType": "dummy", "pyhaPosition": "5"}),
    ]
    config = config_from_entries(entries, LAYOUT)
    assert config.epoch == 0
    assert config.nodes[0].addresses == ("10.0.0.1:5405",)
    # positioned entries first, the rest by name; a type's DN names the type
    assert [(r.name, r.type) for r in config.groups[0].resources] == [("a", "dummy"),
                                                                      ("b", "web")]


def test_a_model_field_without_an_attribute_travels_in_pyha_extra() -> None:
    config = sample_config()
    dn = "cn=n2,ou=nodes,cn=pyha,dc=pyha,dc=test"
    back = config_from_entries(with_attrs(config, dn, pyhaVotes=None, pyhaExtra="votes=9"),
                               LAYOUT)
    assert back.node("n2").votes == 9


# -- errors name DN, attribute and reason -------------------------------------------------------


R_DN = "cn=b,cn=g,ou=groups,cn=pyha,dc=pyha,dc=test"


@pytest.mark.parametrize(("dn", "attrs", "expected"), [
    (R_DN, {"pyhaMigrationThreshold": "many"},
     f"{R_DN}: pyhaMigrationThreshold: 'many' is not an integer"),
    (R_DN, {"pyhaTargetRole": "sideways"}, f"{R_DN}: pyhaTargetRole: Input should be"),
    (R_DN, {"pyhaOperation": "monitor interval=soon"},
     f"{R_DN}: pyhaOperation: value 'monitor interval=soon': interval: 'soon' is not a "
     "duration"),
    (R_DN, {"pyhaOperation": "monitor soon"},
     f"{R_DN}: pyhaOperation: 'monitor soon': 'soon' is not key=value"),
    (R_DN, {"pyhaParameter": ["a=1", "a=2"]}, f"{R_DN}: pyhaParameter: a is given twice"),
    (R_DN, {"pyhaParameter": "novalue"}, f"{R_DN}: pyhaParameter: 'novalue' is not name=value"),
    (R_DN, {"pyhaType": ["x", "y"]}, f"{R_DN}: pyhaType: has 2 values; only one is allowed"),
    (R_DN, {"pyhaType": None}, f"{R_DN}: pyhaType: required field is missing"),
    (R_DN, {"pyhaStickiness": "lots"}, f"{R_DN}: pyhaStickiness: 'lots' is not a score"),
    (R_DN, {"pyhaExtra": "bogus=1"}, f"{R_DN}: pyhaExtra: unknown field"),
    (R_DN, {"pyhaPosition": "first"}, f"{R_DN}: pyhaPosition: 'first' is not an integer"),
    ("cn=n2,ou=nodes,cn=pyha,dc=pyha,dc=test", {"pyhaAddress": ["{0}a:1", "b:2"]},
     "pyhaAddress: either every value has a {position} prefix or none does"),
    ("cn=n2,ou=nodes,cn=pyha,dc=pyha,dc=test", {"pyhaAddress": "10.0.0.9"},
     "pyhaAddress: value '10.0.0.9': '10.0.0.9' is not host:port"),
    ("cn=n2,ou=nodes,cn=pyha,dc=pyha,dc=test", {"pyhaStandby": "yes"},
     "pyhaStandby: 'yes' is not TRUE or FALSE"),
    ("cn=l1,ou=constraints,cn=pyha,dc=pyha,dc=test", {"pyhaNodeName": "n9"},
     "cn=l1,ou=constraints,cn=pyha,dc=pyha,dc=test: pyhaNodeName: no node named 'n9'"),
    ("cn=o1,ou=constraints,cn=pyha,dc=pyha,dc=test", {"pyhaThen": "nowhere"},
     "cn=o1,ou=constraints,cn=pyha,dc=pyha,dc=test: pyhaThen: no group named 'nowhere'"),
    ("cn=pyha,dc=pyha,dc=test", {"pyhaDeadAfter": "-1s"},
     "cn=pyha,dc=pyha,dc=test: pyhaDeadAfter: '-1s' is not a duration"),
])
def test_a_bad_value_names_the_dn_the_attribute_and_the_reason(
        dn: str, attrs: dict[str, Any], expected: str) -> None:
    entries = with_attrs(sample_config(), dn, **attrs)
    with pytest.raises(ConfigError) as caught:
        config_from_entries(entries, LAYOUT)
    text = str(caught.value)
    assert expected in text, text
    assert dn in text


def test_misplaced_and_foreign_entries_are_named() -> None:
    config = sample_config()
    base = "cn=pyha,dc=pyha,dc=test"
    stray = Entry.of(f"cn=x,ou=groups,{base}", {"objectClass": "pyhaResource",
                                                 "pyhaType": "dummy"})
    with pytest.raises(EntryError, match=r"cn=x,ou=groups.*child of a pyhaGroup"):
        config_from_entries([*config_to_entries(config, LAYOUT), stray], LAYOUT)
    person = Entry.of(f"cn=bob,ou=nodes,{base}", {"objectClass": "inetOrgPerson"})
    with pytest.raises(EntryError, match="objectClass: not a pyha entry"):
        config_from_entries([*config_to_entries(config, LAYOUT), person], LAYOUT)
    node = Entry.of(f"cn=n5,ou=groups,{base}", {"objectClass": "pyhaNode"})
    with pytest.raises(EntryError, match=f"must be directly under ou=nodes,{base}"):
        config_from_entries([*config_to_entries(config, LAYOUT), node], LAYOUT)


def test_an_empty_group_and_duplicate_resource_names_are_named() -> None:
    base = "cn=pyha,dc=pyha,dc=test"
    entries = [e for e in config_to_entries(sample_config(), LAYOUT)
               if e.dn != f"cn=c,cn=g2,ou=groups,{base}"]
    with pytest.raises(EntryError, match=r"cn=g2,ou=groups.*\(child entries\): a group needs"):
        config_from_entries(entries, LAYOUT)
    twin = Entry.of(f"cn=a,cn=g2,ou=groups,{base}", {"objectClass": "pyhaResource",
                                                      "pyhaType": "dummy"})
    with pytest.raises(ConfigError, match="resource names must be unique"):
        config_from_entries([*config_to_entries(sample_config(), LAYOUT), twin], LAYOUT)


def test_a_missing_cluster_entry_says_so() -> None:
    with pytest.raises(ClusterNotFound, match="no pyhaCluster entry"):
        config_from_entries([], LAYOUT)


# -- codecs ---------------------------------------------------------------------------------


@given(st.one_of(st.text(), st.integers(), st.booleans(),
                 st.floats(allow_nan=False, allow_infinity=False),
                 st.lists(st.text(), max_size=3)))
def test_any_parameter_value_round_trips(value: Any) -> None:
    back = decode_param(encode_param(value))
    assert back == value
    assert type(back) is type(value)


@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_times_keep_microseconds(seconds: float) -> None:
    assert abs(parse_time(format_time(seconds)) - seconds) <= 0.5e-6 + 1e-9 * seconds


def test_status_and_audit_records_round_trip() -> None:
    status = StatusRecord(resource="web", node="n1", role=Role.FAILED, since=1_767_225_600.25,
                          fail_count=2, last_failure=1_767_225_601.5, failed_operation="monitor",
                          message="monitor found it not running")
    entry = status_to_entry(status, LAYOUT)
    assert entry.dn == "cn=web,cn=n1,ou=status,cn=pyha,dc=pyha,dc=test"
    assert status_from_entry(entry) == status
    audit = AuditRecord.new(1_767_225_600.5, "cn=admin,dc=pyha,dc=test", "modify",
                            subjects=("cn=b,cn=g", "cn=a"), changes=("one", "two"), epoch=3)
    assert audit_from_entry(audit_to_entry(audit, LAYOUT)) == audit
    assert audit.id.startswith("20260101000000.500000Z-")


def test_the_memo_reuses_unchanged_entries_and_sees_changed_ones() -> None:
    memo = ParseMemo()
    config = sample_config()
    entries = config_to_entries(config, LAYOUT)
    first = config_from_entries(entries, LAYOUT, memo)
    assert config_from_entries(shuffled(entries, 5), LAYOUT, ParseMemo()) == first
    again = config_from_entries(list(reversed(entries)), LAYOUT, memo)
    assert again == first
    assert again.resource("b") is first.resource("b")
    changed = with_attrs(config, R_DN, pyhaTargetRole="stopped")
    third = config_from_entries(changed, LAYOUT, memo)
    assert third.resource("b").meta.target_role == "stopped"
    assert third.resource("a") is first.resource("a")


# -- the schema files ------------------------------------------------------------------------


def test_the_shipped_schema_files_are_generated_from_one_source() -> None:
    assert (ROOT / "jndi" / "pyha-schema.ldif").read_text() == ldapschema.render_ldif()
    assert (ROOT / "jndi" / "pyha.schema").read_text() == ldapschema.render_schema()
    assert (ROOT / "jndi" / "base-tree.ldif").read_text() == base_tree_ldif()


def test_the_base_tree_is_a_cluster_that_loads() -> None:
    config, layout = config_from_ldif(base_tree_ldif())
    assert layout == LAYOUT and [n.name for n in config.nodes] == ["node1"]


def test_the_schema_is_consistent() -> None:
    names = [a.name for a in ldapschema.ATTRIBUTE_TYPES]
    numbers = [a.number for a in ldapschema.ATTRIBUTE_TYPES]
    assert len(set(names)) == len(names) and len(set(numbers)) == len(numbers)
    oc_numbers = [o.number for o in ldapschema.OBJECT_CLASSES]
    assert len(set(oc_numbers)) == len(oc_numbers)
    known = set(names) | {"cn", "description"}
    for oc in ldapschema.OBJECT_CLASSES:
        assert set(oc.must) | set(oc.may) <= known, oc.name
    used = {n for oc in ldapschema.OBJECT_CLASSES for n in (*oc.must, *oc.may)}
    assert set(names) <= used, "every attribute type is allowed by some object class"
    mapped = {a.name for t in (OPTIONS_ATTRS, NODE_ATTRS, TYPE_ATTRS, GROUP_ATTRS,
                               RESOURCE_ATTRS, LOCATION_ATTRS, COLOCATION_ATTRS, ORDER_ATTRS,
                               STATUS_ATTRS, AUDIT_ATTRS) for a in t}
    assert mapped <= known
    assert re.fullmatch(r"2\.25\.\d+", ldapschema.ARC)


def test_descriptions_need_no_quoting_in_schema_files() -> None:
    """A quote inside DESC '...' breaks slapadd of the whole schema."""
    for item in (*ldapschema.ATTRIBUTE_TYPES, *ldapschema.OBJECT_CLASSES):
        assert "'" not in item.description and "\\" not in item.description, item.name
