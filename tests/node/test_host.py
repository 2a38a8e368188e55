"""The real node's preflight: one clear line for what is missing, before anything starts."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from hami.node import host
from hami.node.errors import NodeError


def test_not_root_is_refused_first() -> None:
    with pytest.raises(NodeError, match="needs root"):
        host.preflight(is_root=False)


def test_a_missing_package_is_named_with_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    packages = {"busybox-static": Path("/nonexistent/busybox"), "runc": Path("/")}
    monkeypatch.setattr(host, "PACKAGES", packages)
    with pytest.raises(NodeError) as raised:
        host.preflight(is_root=True)
    message = str(raised.value)
    assert "missing Debian packages: busybox-static;" in message and "runc" not in message
    assert "make node-deps" in message and "\n" not in message


def test_a_port_in_use_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "PACKAGES", {})
    monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/bin/{tool}")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(NodeError, match=f"port {port} is in use"):
            host.preflight(is_root=True, ports=(port,))


def test_snapshot_round_trips_and_names_differences() -> None:
    before = host.HostSnapshot(("/a",), ("cpu/kubepods",), (("x", "0"),), ("lo",), ("/",), ("r",))
    assert host.HostSnapshot.from_json(before.to_json()) == before  # type: ignore[arg-type]
    after = host.HostSnapshot(("/a", "/b"), (), (("x", "1"),), ("lo",), ("/",), ("r",))
    text = host.difference(before, after)
    assert "paths: added ['/b']" in text and "cgroups: added [], removed ['cpu/kubepods']" in text
    assert host.difference(before, before) == "no difference"
