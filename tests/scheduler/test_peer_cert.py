"""kube-scheduler reads its extender client certificate only at start: the extender, in the same
pod (shareProcessNamespace), stops it when the certificate file changes (docs/security.md)."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from hami.scheduler.tls import PeerCertificate

pytestmark = pytest.mark.security


def _named(tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    binary = tmp_path / name
    shutil.copy2(shutil.which("sleep") or "/bin/sleep", binary)
    return subprocess.Popen([str(binary), "60"])


def _proc(tmp_path: Path, processes: dict[int, str]) -> Path:
    """A /proc of only these processes (so that no other kube-scheduler on the machine is hit)."""
    proc = tmp_path / "proc"
    for pid, comm in processes.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(comm + "\n")
    (proc / "self").mkdir()
    return proc


def test_a_changed_client_certificate_stops_kube_scheduler(tmp_path: Path) -> None:
    cert = tmp_path / "tls.crt"
    cert.write_text("old")
    scheduler = _named(tmp_path, "kube-scheduler")
    bystander = _named(tmp_path, "sleep")
    try:
        proc = _proc(tmp_path, {scheduler.pid: "kube-scheduler", bystander.pid: "sleep"})
        peer = PeerCertificate(cert, proc=proc)
        assert peer.check() == []
        cert.write_text("old")  # rewritten, same bytes (a Secret resync)
        assert peer.check() == []
        cert.write_text("new")  # rotated
        assert peer.check() == []  # kubelet may not have swapped kube-scheduler's copy yet
        assert peer.check() == [scheduler.pid]
        assert scheduler.wait(5) == -signal.SIGTERM
        assert bystander.poll() is None
        assert peer.check() == [] and peer.restarts == 1
    finally:
        for p in (scheduler, bystander):
            p.kill()
            p.wait()


def test_a_certificate_that_appears_later_stops_nothing(tmp_path: Path) -> None:
    """Missing at start (the Secret not mounted yet): kube-scheduler starting now reads it."""
    cert = tmp_path / "tls.crt"
    scheduler = _named(tmp_path, "kube-scheduler")
    try:
        peer = PeerCertificate(cert, proc=_proc(tmp_path, {scheduler.pid: "kube-scheduler"}))
        cert.write_text("first")
        assert peer.check() == []
        assert scheduler.poll() is None
    finally:
        scheduler.kill()
        scheduler.wait()
