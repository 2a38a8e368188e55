from __future__ import annotations

import socket

import pytest

from hami.cluster.ports import free_port, free_ports


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(8)
    assert len(set(ports)) == 8
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_free_port_is_in_range() -> None:
    assert 0 < free_port() < 65536


def test_free_ports_rejects_non_positive_count() -> None:
    with pytest.raises(ValueError, match="positive"):
        free_ports(0)
