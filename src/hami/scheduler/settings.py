"""Service settings of `hami scheduler` (the device rules live in `SchedulerConfig`).

Precedence: built-in defaults < the YAML config file (device keys, `schedulerName`, policies)
< command-line flags. Built once in `hami.scheduler.main` and passed explicitly.
"""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from hami.core.config import SchedulerConfig


def split_host_port(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port``, ``:port`` (every IPv4 address) or ``[v6]:port``."""
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def default_identity() -> str:
    """``<hostname>_<uuid>``, the form kube-scheduler uses for its Lease holder."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    config: SchedulerConfig = field(default_factory=SchedulerConfig)
    http_bind: str = "127.0.0.1:8080"
    cert_file: Path | None = None
    key_file: Path | None = None
    kubeconfig: Path | None = None
    force_overwrite_default_scheduler: bool = True
    node_label_selector: str | None = None
    node_lock_timeout: float = 300.0  # lock expiry (HAMi --node-lock-timeout 5m)
    bind_lock_wait: float = 25.0  # /bind waits this long for a held lock (kube-scheduler: 30 s)
    handshake_timeout: float = 60.0
    registration_interval: float = 15.0  # time-based handshake checks; changes are event-driven
    sync_wait: float = 20.0  # /filter waits this long for the cache to sync (or leadership)
    events: bool = True
    leader_elect: bool = False
    lease_name: str = "hami-scheduler"
    lease_namespace: str = "kube-system"
    identity: str = field(default_factory=default_identity)
    lease_duration: float = 10.0
    renew_interval: float = 2.0
    # a follower reads the Lease this often: a released Lease (graceful handover) is taken
    # within one period (client-go's RetryPeriod)
    lease_retry_period: float = 0.5
    reuse_port: bool = False  # several replicas on one address: only the leader listens
    shutdown_grace: float = 15.0  # SIGTERM: requests in flight get this long (then the Lease)
    self_check_interval: float = 30.0  # cache vs annotations, stale locks (0: off)
    # plain-HTTP /metrics (HAMi --metrics-bind-address :9395, Service port `monitor` 31993);
    # "" = none. TLS /metrics on http_bind stays either way. Opens and closes with http_bind.
    metrics_bind: str = ""
    # /filter and /bind on a listener of their own (docs/security.md); "" = on http_bind.
    # With TLS and client_ca_file, that listener requires a client certificate from the CA.
    extender_bind: str = ""
    client_ca_file: Path | None = None
    # kube-scheduler reads its client certificate only at start: when this file changes, the
    # kube-scheduler process of the pod is stopped so that kubelet restarts it (tls.PeerCertificate)
    kube_scheduler_client_cert: Path | None = None
    # bounds (hami.scheduler.limits): body cap (kube-apiserver's 3 MiB), body and header
    # deadlines, requests in flight per listener, simulation-mode /filter size and deadline
    max_body: int = 3 * 1024 * 1024
    body_timeout: float = 10.0
    header_timeout: float = 10.0
    keep_alive: float = 120.0  # > Go's 90 s idle timeout: the client closes first
    max_in_flight: int = 64
    simulation_max_nodes: int = 5000
    simulation_timeout: float = 10.0
    cert_reload_interval: float = 10.0  # poll the TLS files (0: never reload)
    # a decision on a pod never bound stops counting after this (docs/scheduler.md); 0: never
    decision_ttl: float = 300.0
    # DRA mode (docs/dra.md): GPU pods in these namespaces, and pods selecting hami.io/dra=true
    # nodes, get ResourceClaimTemplates from the webhook; None: DRA mode off
    dra_namespaces: tuple[str, ...] | None = None

    @property
    def scheduler_name(self) -> str:
        return self.config.scheduler_name

    @property
    def host_port(self) -> tuple[str, int]:
        return split_host_port(self.http_bind)

    @property
    def metrics_host_port(self) -> tuple[str, int] | None:
        return split_host_port(self.metrics_bind) if self.metrics_bind else None

    @property
    def extender_host_port(self) -> tuple[str, int] | None:
        return split_host_port(self.extender_bind) if self.extender_bind else None

    @property
    def tls(self) -> bool:
        return self.cert_file is not None and self.key_file is not None
