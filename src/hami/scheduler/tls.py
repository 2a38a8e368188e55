"""Server TLS contexts that follow their files (cert-manager rotation, certgen re-issue).

`ServerTLS` builds one `ssl.SSLContext` per listener; `reload` loads the certificate, key and
client CA again when their bytes changed (a Secret volume swaps its files through a symlink,
so contents are compared, not mtimes). New handshakes use the new certificate at once; open
connections keep theirs. A file that cannot be loaded (half-written, wrong key) leaves the
current certificate in use and is logged; the next poll tries again.

With ``client_ca`` a client certificate must be signed by that CA and allow clientAuth (OpenSSL's
check on the server side) or the handshake fails; a client presenting none gets 403
(`hami.scheduler.limits.ClientCertRequired`): the extender listener, which only kube-scheduler
may call. A CA that rotates is added; the old one stays trusted until the
process restarts (OpenSSL cannot remove a CA from a live context).

`PeerCertificate` covers the other end: kube-scheduler reads its extender client certificate
(`tlsConfig.certFile`) once, when it starts. In the chart's pod (``shareProcessNamespace``) the
extender polls that certificate (its own copy of the Secret's ``tls.crt``, not the key) and,
when a change holds for one poll, stops kube-scheduler with SIGTERM; kubelet starts the
container again, which reads the new one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import ssl
from pathlib import Path

log = logging.getLogger(__name__)


class ServerTLS:
    def __init__(self, cert: Path, key: Path, client_ca: Path | None = None) -> None:
        self.cert = cert
        self.key = key
        self.client_ca = client_ca
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        if client_ca is not None:
            # a certificate that is presented must verify (else the handshake fails); a missing
            # one is refused by `limits.ClientCertRequired` with 403 and a message
            self.context.verify_mode = ssl.CERT_OPTIONAL
        self.reloads = 0
        self._seen = b""
        if not self.reload():
            raise ssl.SSLError(f"cannot load the TLS certificate {cert} / {key}")

    def _digest(self) -> bytes:
        digest = hashlib.sha256()
        for path in (self.cert, self.key, self.client_ca):
            if path is not None:
                digest.update(path.read_bytes())
                digest.update(b"\0")
        return digest.digest()

    def reload(self) -> bool:
        """Load the files again if they changed; True when the context has them now."""
        try:
            seen = self._digest()
            if seen == self._seen:
                return True
            self.context.load_cert_chain(str(self.cert), str(self.key))
            if self.client_ca is not None:
                self.context.load_verify_locations(cafile=str(self.client_ca))
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.warning("TLS files %s not (re)loaded, keeping the current ones: %s", self.cert, exc)
            return False
        if self._seen:
            log.info("TLS certificate %s reloaded", self.cert)
        self._seen = seen
        self.reloads += 1
        return True

    async def follow(self, interval: float) -> None:
        """Poll the files every ``interval`` seconds (runs until cancelled)."""
        while True:
            await asyncio.sleep(interval)
            self.reload()


class PeerCertificate:
    """A certificate file that another process of the pod reads only when it starts: when the
    file's bytes change (a rotated Secret), every process named ``process`` that runs as this
    process's user gets SIGTERM, so that kubelet restarts its container with the new file.
    Only meaningful in a pod whose containers share one process namespace."""

    def __init__(self, path: Path, process: str = "kube-scheduler", proc: Path = Path("/proc")):
        self.path = path
        self.process = process
        self._proc = proc
        self._seen = self._digest()
        self._pending = b""  # a changed digest seen once, acted on when seen again
        self.restarts = 0

    def _digest(self) -> bytes:
        try:
            return hashlib.sha256(self.path.read_bytes()).digest()
        except OSError as exc:
            log.warning("peer certificate %s not readable: %s", self.path, exc)
            return b""

    def _pids(self) -> list[int]:
        found = []
        for entry in self._proc.iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                comm = (entry / "comm").read_text().strip()
                owner = entry.stat().st_uid
            except OSError:
                continue  # gone meanwhile
            if comm == self.process[:15] and owner == os.geteuid():
                found.append(int(entry.name))
        return found

    def check(self) -> list[int]:
        """Compare the file with the last one seen; a change that still holds at the next
        check (kubelet has swapped the other container's copy of the Secret by then: one pod's
        volumes are updated in the same pass) SIGTERMs the process(es). Returns the pids."""
        seen = self._digest()
        if not seen or seen == self._seen:
            self._pending = b""
            return []
        if not self._seen:
            self._seen = seen
            return []  # the file appeared: whoever starts now reads it
        if seen != self._pending:
            self._pending = seen
            return []
        self._seen, self._pending = seen, b""
        signalled = []
        for pid in self._pids():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            signalled.append(pid)
        self.restarts += 1
        log.warning(
            "%s changed: stopped %s (pid %s) so that it restarts with the new certificate",
            self.path,
            self.process,
            ", ".join(map(str, signalled)) or "none found",
        )
        return signalled

    async def follow(self, interval: float) -> None:
        """Poll the file every ``interval`` seconds (runs until cancelled)."""
        while True:
            await asyncio.sleep(interval)
            self.check()
