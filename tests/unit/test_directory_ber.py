"""Search entries read straight from BER, and anything else left to ldap3."""

from __future__ import annotations

from pyha.directory.ber import read_search_entry
from pyha.directory.ldap3compat import ldap3
from pyha.directory.tree import Entry


def tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def entry_message(dn: str, attrs: dict[str, list[str]], message_id: int = 7) -> bytes:
    attributes = b"".join(
        tlv(0x30, tlv(0x04, name.encode()) + tlv(0x31, b"".join(
            tlv(0x04, v.encode()) for v in values)))
        for name, values in attrs.items())
    op = tlv(0x64, tlv(0x04, dn.encode()) + tlv(0x30, attributes))
    return tlv(0x30, tlv(0x02, bytes([message_id])) + op)


def test_an_entry_is_read_with_every_value() -> None:
    long = "x" * 300  # a long-form length
    raw = entry_message("cn=ü,ou=groups,cn=c", {"objectClass": ["pyhaResource"],
                                                "pyhaParameter": ["a=1", long],
                                                "empty": []})
    assert read_search_entry(raw) == Entry("cn=ü,ou=groups,cn=c", {
        "objectclass": ("pyhaResource",), "pyhaparameter": ("a=1", long)})


def test_the_reader_agrees_with_ldap3() -> None:
    raw = entry_message("cn=a,dc=x", {"cn": ["a"], "pyhaType": ["dummy"]}, message_id=3)
    module = ldap3()
    decoded = module.utils.asn1.decode_message_fast(raw)
    ours = read_search_entry(raw)
    assert ours is not None
    assert decoded["messageID"] == 3 and decoded["protocolOp"] == 4
    payload = decoded["payload"]
    assert ours.dn == bytes(payload[0][3]).decode()
    assert {bytes(a[3][0][3]).decode().lower(): tuple(bytes(v[3]).decode()
                                                      for v in a[3][1][3])
            for a in payload[1][3]} == dict(ours.attrs)


def test_anything_else_is_left_to_ldap3() -> None:
    done = tlv(0x30, tlv(0x02, b"\x07") + tlv(0x65, tlv(0x0A, b"\x00") + tlv(0x04, b"")
                                             + tlv(0x04, b"")))
    assert read_search_entry(done) is None
    good = entry_message("cn=a", {"cn": ["a"]})
    assert read_search_entry(good[:-3]) is None  # truncated
    bad_dn = good.replace(b"cn=a", b"cn=\xff", 1)
    assert read_search_entry(bad_dn) is None
