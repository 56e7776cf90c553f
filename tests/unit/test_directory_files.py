"""LDIF in and out, imports checked whole, the bootstrap file, a slapd's cn=config."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from pyha.directory.bootstrap import DirectorySettings, load_bootstrap, write_bootstrap
from pyha.directory.ldif import LdifError, parse_ldif, write_ldif
from pyha.directory.schema import config_to_entries
from pyha.directory.slapd import SlapdConfig, TlsFiles, config_ldif, ssha
from pyha.directory.transfer import check_target, config_from_ldif, read_config_file
from pyha.directory.tree import Entry, Layout
from pyha.errors import ConfigError
from pyha.testing.directory import sample_config

LAYOUT = Layout("dc=pyha,dc=test", "pyha")


def test_ldif_round_trips_with_folding_base64_and_odd_values() -> None:
    entries = [Entry.of("cn=x,dc=pyha,dc=test", {
        "objectClass": "pyhaResource", "cn": "x", "pyhaType": "dummy",
        "description": "ünïcode and a very long line " * 5,
        "pyhaParameter": [" leading=space", "trailing=space ", ":colon=1", "<lt=1"]})]
    text = write_ldif(entries, header="a test")
    assert text.startswith("# a test\nversion: 1\n")
    assert max(len(line) for line in text.splitlines()) <= 76
    assert "description:: " in text
    assert [e for _, e in parse_ldif(text)] == entries


def test_the_sample_configuration_survives_ldif() -> None:
    text = write_ldif(config_to_entries(sample_config(), LAYOUT))
    config, layout = config_from_ldif(text)
    assert config == sample_config()
    assert layout == LAYOUT


@pytest.mark.parametrize(("text", "message"), [
    ("cn: x\n", "LDIF:1: a record must start with dn:"),
    ("dn: cn=x\nbroken line\n", "LDIF:2: expected 'attribute: value'"),
    ("dn: cn=x\nchangetype: modify\n", "LDIF:2: changetype modify is not supported"),
    ("dn: cn=x\njpegPhoto:< file:///etc/passwd\n", "values read from URLs are not accepted"),
    ("dn: cn=x\ndescription:: !!!\n", "LDIF:2: description: bad base64 value"),
    (" continued\n", "a continuation line with nothing to continue"),
])
def test_unreadable_ldif_names_the_line(text: str, message: str) -> None:
    with pytest.raises(LdifError, match=message):
        parse_ldif(text)


def test_an_import_stops_at_the_first_bad_entry_with_file_line_dn_and_attribute() -> None:
    text = write_ldif(config_to_entries(sample_config(), LAYOUT))
    bad = text.replace("pyhaMigrationThreshold: 5", "pyhaMigrationThreshold: five")
    bad = bad.replace("pyhaVotes: 2", "pyhaVotes: two")
    assert bad.index("dn: cn=n2,ou=nodes") < bad.index("dn: cn=b,cn=g")
    line = bad[:bad.index("dn: cn=n2,ou=nodes")].count("\n") + 1
    with pytest.raises(ConfigError) as caught:
        config_from_ldif(bad, "cluster.ldif")
    assert str(caught.value) == (f"cluster.ldif:{line}: cn=n2,ou=nodes,cn=pyha,dc=pyha,dc=test: "
                                 "pyhaVotes: 'two' is not an integer")


def test_an_import_checks_references_between_entries() -> None:
    text = write_ldif(config_to_entries(sample_config(), LAYOUT))
    bad = text.replace("pyhaNodeName: n1", "pyhaNodeName: n7")
    with pytest.raises(ConfigError, match=r"cn=l1,ou=constraints,.*pyhaNodeName: no node"):
        config_from_ldif(bad, "f.ldif")


def test_an_import_refuses_entries_outside_the_cluster_and_foreign_ones() -> None:
    text = write_ldif(config_to_entries(sample_config(), LAYOUT))
    with pytest.raises(ConfigError, match="outside the cluster"):
        config_from_ldif(text + "\ndn: cn=x,dc=elsewhere\nobjectClass: person\n")
    with pytest.raises(ConfigError, match="not a pyha entry"):
        config_from_ldif(text + "\ndn: cn=x,ou=nodes,cn=pyha,dc=pyha,dc=test\n"
                                "objectClass: person\n")
    with pytest.raises(ConfigError, match="exactly one pyhaCluster"):
        config_from_ldif("version: 1\n")
    # the base entry and status records may be in an export: they are skipped
    extra = ("\ndn: dc=pyha,dc=test\nobjectClass: dcObject\ndc: pyha\n\n"
             "dn: cn=a,cn=n1,ou=status,cn=pyha,dc=pyha,dc=test\n"
             "objectClass: pyhaResourceStatus\npyhaRole: started\npyhaNodeName: n1\n")
    assert config_from_ldif(text + extra)[0] == sample_config()
    with pytest.raises(ConfigError, match="the directory is set up for"):
        check_target(LAYOUT, Layout("dc=pyha,dc=test", "other"))


def test_files_are_read_by_their_kind(tmp_path: Path) -> None:
    ldif = tmp_path / "c.ldif"
    ldif.write_text(write_ldif(config_to_entries(sample_config(), LAYOUT)))
    assert read_config_file(ldif) == (sample_config(), LAYOUT)
    toml = tmp_path / "c.toml"
    toml.write_text('[cluster]\nname = "pyha"\n[[nodes]]\nname = "n1"\n')
    config, layout = read_config_file(toml)
    assert config.nodes[0].name == "n1" and layout is None


def test_the_bootstrap_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "pw").chmod(0o600)
    path = tmp_path / "bootstrap.toml"
    path.write_text('[directory]\nurl = "ldap://127.0.0.1:389"\nbase_dn = "dc=x"\n'
                    'bind_dn = "cn=admin,dc=x"\npassword_file = "pw"\ncluster = "c1"\n'
                    'starttls = true\nca_file = "ca.crt"\n\n[node]\nname = "n1"\n'
                    'state_dir = "/var/lib/pyha"\n')
    boot = load_bootstrap(path)
    assert boot.node == "n1" and boot.state_dir == Path("/var/lib/pyha")
    d = boot.directory
    assert d.urls == ("ldap://127.0.0.1:389",) and d.starttls
    assert d.ca_file == tmp_path / "ca.crt"
    assert d.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(boot) and "s3cret" not in str(d)
    monkeypatch.setenv("PYHA_DIRECTORY_PASSWORD", "from-env")
    path.write_text('[directory]\nurls = ["ldaps://a", "ldaps://b"]\nbase_dn = "dc=x"\n')
    assert load_bootstrap(path).directory.password.get_secret_value() == "from-env"
    path.write_text('[directory]\nurl = "http://a"\nbase_dn = "dc=x"\n')
    with pytest.raises(ConfigError, match="not an ldap:// or ldaps:// URL"):
        load_bootstrap(path)
    path.write_text('[directory]\nurl = "ldap://a"\nbase_dn = "dc=x"\npasswd = "x"\n')
    with pytest.raises(ConfigError, match="unknown keys passwd"):
        load_bootstrap(path)


def test_a_written_bootstrap_reads_back(tmp_path: Path) -> None:
    (tmp_path / "admin.password").write_text("pw")
    settings = DirectorySettings(urls=("ldap://h:1", "ldap://h:2"), base_dn="dc=x",
                                 bind_dn="cn=a,dc=x", password=SecretStr("pw"), cluster="c")
    write_bootstrap(tmp_path / "b.toml", settings, Path("admin.password"), node="n1")
    back = load_bootstrap(tmp_path / "b.toml")
    assert back.directory == settings and back.node == "n1"


def test_a_slapd_config_has_the_schema_the_indexes_and_no_clear_password(
        tmp_path: Path) -> None:
    cfg = SlapdConfig(directory=tmp_path, port=3890, password="pw", nosync=True,
                      peers=("ldap://127.0.0.1:3891",), server_id=2,
                      tls=TlsFiles(Path("c.crt"), Path("k.key"), Path("ca.crt")))
    text = config_ldif(cfg, tmp_path / "pyha-schema.ldif")
    assert f"include: file://{tmp_path}/pyha-schema.ldif" in text
    assert "olcServerID: 2" in text and "olcDbNoSync: TRUE" in text
    assert "olcDbIndex: pyhaType,pyhaNodeName,pyhaGroupName eq" in text
    assert "olcSyncrepl: rid=001 provider=ldap://127.0.0.1:3891" in text
    assert "olcMultiProvider: TRUE" in text
    assert "olcTLSCertificateFile: c.crt" in text
    assert "olcRootPW: {SSHA}" in text and "olcRootPW: pw" not in text
    assert "pw" not in repr(cfg).replace("password", "")
    assert ssha("pw") != ssha("pw")  # salted
