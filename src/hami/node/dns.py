"""The real node's cluster DNS: just enough for in-cluster clients that dial
``kubernetes.default.svc`` (kube-scheduler's kubeconfig in the chart). A static table of A
records answered over UDP; every other name is NXDOMAIN, so resolvers give up at once.

    python -m hami.node.dns --listen 10.88.7.1:53 --record kubernetes.default.svc.cluster.local=10.0.0.1
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import struct
from collections.abc import Mapping

TYPE_A = 1
CLASS_IN = 1
TTL = 30
FLAG_RESPONSE = 0x8000
FLAG_AUTHORITATIVE = 0x0400
FLAG_RECURSION_AVAILABLE = 0x0080
RCODE_FORMERR = 1
RCODE_NXDOMAIN = 3
MAX_LABELS = 64


class Malformed(ValueError):
    """The packet is not a DNS query we can answer."""


def parse_question(packet: bytes) -> tuple[int, int, str, int, int]:
    """(id, flags, name, qtype, end of question) of a one-question query."""
    if len(packet) < 12:
        raise Malformed("short header")
    ident, flags, questions = struct.unpack("!HHH", packet[:6])
    if questions != 1 or flags & FLAG_RESPONSE:
        raise Malformed("not a one-question query")
    labels, offset = [], 12
    for _ in range(MAX_LABELS):
        if offset >= len(packet):
            raise Malformed("truncated name")
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        if length > 63:
            raise Malformed("compressed or oversized label")
        labels.append(packet[offset : offset + length].decode("ascii", "replace"))
        offset += length
    else:
        raise Malformed("too many labels")
    if offset + 4 > len(packet):
        raise Malformed("truncated question")
    qtype, _qclass = struct.unpack("!HH", packet[offset : offset + 4])
    return ident, flags, ".".join(labels).lower(), qtype, offset + 4


def answer(packet: bytes, records: Mapping[str, str]) -> bytes:
    """The response to ``packet``: the A record when known, NOERROR without answers for
    another type of a known name, NXDOMAIN otherwise."""
    try:
        ident, flags, name, qtype, end = parse_question(packet)
    except Malformed:
        ident = struct.unpack("!H", packet[:2])[0] if len(packet) >= 2 else 0
        return struct.pack("!HHHHHH", ident, FLAG_RESPONSE | RCODE_FORMERR, 0, 0, 0, 0)
    question = packet[12:end]
    address = records.get(name.rstrip("."))
    rcode = 0 if address is not None else RCODE_NXDOMAIN
    answers = b""
    if address is not None and qtype == TYPE_A:
        rdata = ipaddress.IPv4Address(address).packed
        answers = struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, len(rdata)) + rdata
    out_flags = FLAG_RESPONSE | FLAG_AUTHORITATIVE | FLAG_RECURSION_AVAILABLE
    out_flags |= flags & 0x0100  # echo "recursion desired"
    header = struct.pack("!HHHHHH", ident, out_flags | rcode, 1, 1 if answers else 0, 0, 0)
    return header + question + answers


def serve(listen: tuple[str, int], records: Mapping[str, str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(listen)
        while True:
            packet, peer = sock.recvfrom(512)
            sock.sendto(answer(packet, records), peer)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, help="address:port")
    parser.add_argument("--record", action="append", default=[], help="name=IPv4 (repeatable)")
    args = parser.parse_args(argv)
    host, port = args.listen.rsplit(":", 1)  # wire-ok: a command-line address, not an annotation
    records = dict(r.lower().split("=", 1) for r in args.record)
    serve((host, int(port)), records)


if __name__ == "__main__":
    main()
