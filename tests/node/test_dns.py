"""The real node's static cluster DNS."""

from __future__ import annotations

import struct

from hami.node.dns import answer

RECORDS = {"kubernetes.default.svc.cluster.local": "10.0.0.1"}


def query(name: str, qtype: int = 1, ident: int = 7) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return (
        struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
        + labels
        + b"\0"
        + struct.pack("!HH", qtype, 1)
    )


def test_a_known_name_gets_its_address() -> None:
    reply = answer(query("kubernetes.default.svc.cluster.local"), RECORDS)
    ident, flags, _, answers = struct.unpack("!HHHH", reply[:8])
    assert ident == 7 and flags & 0x8000 and flags & 0x000F == 0 and answers == 1
    assert reply.endswith(bytes([10, 0, 0, 1]))


def test_unknown_names_and_other_types() -> None:
    nx = answer(query("kubernetes.default.svc.kube-system.svc.cluster.local"), RECORDS)
    assert struct.unpack("!H", nx[2:4])[0] & 0x000F == 3  # NXDOMAIN: resolvers move on
    aaaa = answer(query("kubernetes.default.svc.cluster.local", qtype=28), RECORDS)
    flags, _, answers = struct.unpack("!HHH", aaaa[2:8])
    assert flags & 0x000F == 0 and answers == 0


def test_garbage_is_a_format_error() -> None:
    assert struct.unpack("!H", answer(b"\x00\x05\x01", RECORDS)[2:4])[0] & 0x000F == 1
    assert struct.unpack("!H", answer(b"", RECORDS)[2:4])[0] & 0x000F == 1
