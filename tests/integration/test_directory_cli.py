"""`pyha directory`: a private slapd (and a replica), import checked whole, export, status."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyha.directory.slapd import installed

pytestmark = pytest.mark.skipif(installed() is not None, reason=str(installed()))

CLUSTER_FILE = """
[cluster]
name = "c1"

[[nodes]]
name = "n1"
addresses = ["127.0.0.1:5405"]

[[groups]]
name = "app"

[[groups.resources]]
name = "first"
type = "dummy"
params = { delay = "10ms" }
operations = [{ name = "monitor", interval = "5s" }]
"""


def pyha(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "pyha.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"pyha {' '.join(args)} -> {done.returncode}\n{done.stderr}")
    return done


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "dir"
    try:
        yield state
    finally:
        if (state / "slapd").exists():
            pyha("directory", "stop", "--state-dir", str(state), check=False)


def ldapsearch(url: str, state: Path, base: str, *attrs: str) -> str:
    done = subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-H", url, "-D", "cn=admin,dc=pyha,dc=test", "-y",
         str(state / "admin.password"), "-b", base, *attrs],
        capture_output=True, text=True, timeout=30, check=False)
    return done.stdout


@pytest.mark.slow
def test_init_import_export_status_and_stop(state: Path, tmp_path: Path) -> None:
    out = pyha("directory", "init", "--state-dir", str(state), "--cluster", "c1").stdout
    url = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("url: "))
    assert "bind DN: cn=admin,dc=pyha,dc=test" in out
    assert (state / "admin.password").stat().st_mode & 0o777 == 0o600
    assert (state / "bootstrap.toml").exists()
    assert "dn: dc=pyha,dc=test" in ldapsearch(url, state, "dc=pyha,dc=test", "-s", "base")

    toml = tmp_path / "cluster.toml"
    toml.write_text(CLUSTER_FILE)
    done = pyha("directory", "import", str(toml), "--state-dir", str(state))
    assert "create cluster c1" in done.stdout and "1 groups, 1 resources" in done.stdout
    assert "pyhaParameter: delay=10ms" in ldapsearch(url, state, "cn=c1,dc=pyha,dc=test")

    ldif = tmp_path / "c1.ldif"
    pyha("directory", "export", "--state-dir", str(state), "-o", str(ldif))
    assert "dn: cn=first,cn=app,ou=groups,cn=c1,dc=pyha,dc=test" in ldif.read_text()
    assert pyha("directory", "import", str(ldif), "--state-dir", str(state),
                "--dry-run").stdout.strip() == "no changes"

    bad = tmp_path / "bad.ldif"
    bad.write_text(ldif.read_text().replace("pyhaType: dummy", "pyhaType: dummy\n"
                                            "pyhaOperation: monitor every=5s"))
    refused = pyha("directory", "import", str(bad), "--state-dir", str(state), check=False)
    assert refused.returncode == 2
    line = bad.read_text()[:bad.read_text().index("dn: cn=first")].count("\n") + 1
    assert f"{bad}:{line}: cn=first,cn=app,ou=groups,cn=c1,dc=pyha,dc=test: pyhaOperation" \
        in refused.stderr
    assert pyha("directory", "export", "--state-dir", str(state)).stdout.split("\n", 1)[1] == \
        ldif.read_text().split("\n", 1)[1]  # nothing was written

    other = tmp_path / "other.toml"
    other.write_text(CLUSTER_FILE.replace('name = "c1"', 'name = "c2"'))
    refused = pyha("directory", "import", str(other), "--state-dir", str(state), check=False)
    assert refused.returncode == 2 and "cluster 'c2'" in refused.stderr

    status = pyha("directory", "status", "--state-dir", str(state), "--audit", "5").stdout
    assert "import by pyha directory import" in status

    pyha("directory", "stop", "--state-dir", str(state))
    assert not ldapsearch(url, state, "dc=pyha,dc=test", "-s", "base")
    pyha("directory", "start", "--state-dir", str(state))
    assert "cn: first" in ldapsearch(url, state, "cn=c1,dc=pyha,dc=test")


def test_a_replica_gets_what_the_first_server_gets(state: Path, tmp_path: Path) -> None:
    out = pyha("directory", "init", "--state-dir", str(state), "--cluster", "c1",
               "--replica").stdout
    urls = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("url: ")]
    assert len(urls) == 2
    assert (state / "slapd-replica").exists()
    toml = tmp_path / "cluster.toml"
    toml.write_text(CLUSTER_FILE)
    pyha("directory", "import", str(toml), "--state-dir", str(state))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if "cn: first" in ldapsearch(urls[1], state, "cn=c1,dc=pyha,dc=test"):
            break
        time.sleep(0.1)
    assert "pyhaParameter: delay=10ms" in ldapsearch(urls[1], state, "cn=c1,dc=pyha,dc=test")
