"""The node attribute store: sections, cluster options, boots, names and concurrent writers."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from pyha.resources.attributes import AttributeStore, promotion_attribute


def test_set_get_delete_in_each_section(tmp_path: Path) -> None:
    store = AttributeStore(tmp_path, boot_id="b1")
    store.set("n1", "color", "red")
    store.set("n1", "color", "blue", "permanent")
    store.set("n1", "cpu", 4, "utilization")  # type: ignore[arg-type]  # values are text
    assert store.get("n1", "color") == "red"
    assert store.get("n1", "color", "permanent") == "blue"
    assert store.get("n1", "cpu", "utilization") == "4"
    assert store.get("n2", "color") is None
    assert store.delete("n1", "color") is True
    assert store.delete("n1", "color") is False
    assert store.get("n1", "color") is None
    assert store.section("n1", "permanent") == {"color": "blue"}


def test_each_node_has_its_own_json_file_and_no_temporary_files_remain(tmp_path: Path) -> None:
    store = AttributeStore(tmp_path, boot_id="b1")
    store.set("n1", "a", "1")
    store.set("n2", "a", "2", "permanent")
    assert store.nodes() == ["n1", "n2"]
    assert sorted(p.name for p in (tmp_path / "nodes").iterdir()) == ["n1.json", "n2.json"]
    data = json.loads((tmp_path / "nodes" / "n2.json").read_text())
    assert data == {"boot_id": "b1", "format": 1, "permanent": {"a": "2"}}
    assert store.everywhere("a") == {"n1": "1"}
    assert store.everywhere("a", "permanent") == {"n2": "2"}


def test_transient_attributes_end_with_the_boot(tmp_path: Path) -> None:
    AttributeStore(tmp_path, boot_id="before").set("n1", "seen", "yes")
    AttributeStore(tmp_path, boot_id="before").set("n1", "kept", "yes", "permanent")
    after = AttributeStore(tmp_path, boot_id="after")
    assert after.get("n1", "seen") is None
    assert after.get("n1", "kept", "permanent") == "yes"
    after.set("n1", "new", "1")
    assert after.section("n1") == {"new": "1"}
    assert json.loads((tmp_path / "nodes" / "n1.json").read_text())["boot_id"] == "after"


def test_clear_transient_keeps_permanent_ones(tmp_path: Path) -> None:
    store = AttributeStore(tmp_path, boot_id="b")
    store.set("n1", "t", "1")
    store.set("n1", "p", "1", "permanent")
    store.clear_transient("n1")
    assert store.section("n1") == {}
    assert store.section("n1", "permanent") == {"p": "1"}


def test_promotion_scores_are_master_attributes(tmp_path: Path) -> None:
    store = AttributeStore(tmp_path, boot_id="b")
    assert promotion_attribute("db") == "master-db"
    assert store.promotion_score("n1", "db") is None
    store.set("n1", "master-db", "5", "permanent")
    assert store.promotion_score("n1", "db") == "5"
    store.set("n1", "master-db", "INFINITY")
    assert store.promotion_score("n1", "db") == "INFINITY"  # the transient one wins


def test_cluster_options(tmp_path: Path) -> None:
    store = AttributeStore(tmp_path, boot_id="b")
    assert store.option("repl_info") is None
    store.set_option("repl_info", "n1|log.001|42")
    assert store.option("repl_info") == "n1|log.001|42"
    assert AttributeStore(tmp_path, boot_id="other").option("repl_info") == "n1|log.001|42"
    assert store.delete_option("repl_info") is True
    assert store.delete_option("repl_info") is False
    assert store.nodes() == []


@pytest.mark.parametrize("node", ["", "a/b", "..", ".hidden", "x\0y", "n" * 256])
def test_node_names_that_cannot_be_file_names_are_refused(tmp_path: Path, node: str) -> None:
    store = AttributeStore(tmp_path, boot_id="b")
    with pytest.raises(ValueError, match="invalid node name"):
        store.set(node, "a", "1")
    with pytest.raises(ValueError, match="invalid node name"):
        store.get(node, "a")


def test_attribute_names_may_not_be_empty(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid attribute name"):
        AttributeStore(tmp_path, boot_id="b").set("n1", "", "1")


def test_a_corrupt_file_is_an_error_not_an_empty_node(tmp_path: Path) -> None:
    (tmp_path / "nodes").mkdir()
    (tmp_path / "nodes" / "n1.json").write_text("{broken")
    store = AttributeStore(tmp_path, boot_id="b")
    with pytest.raises(OSError, match="not valid JSON"):
        store.get("n1", "a")
    with pytest.raises(OSError, match="not valid JSON"):
        store.set("n1", "a", "1")  # never overwrites what it cannot read
    (tmp_path / "nodes" / "n1.json").write_text("[1, 2]")
    with pytest.raises(OSError, match="does not hold an object"):
        store.get("n1", "a")


def test_concurrent_writers_lose_no_update(tmp_path: Path) -> None:
    store = AttributeStore(tmp_path, boot_id="b")
    start = threading.Barrier(8)

    def writer(number: int) -> None:
        start.wait(timeout=10)
        for round_ in range(10):
            store.set("n1", f"w{number}-{round_}", str(round_))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert len(store.section("n1")) == 80
