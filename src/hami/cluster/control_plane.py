"""Start and stop a local control plane: etcd → kube-apiserver → kube-scheduler → kwok.

Layout of a run directory::

    pki/                 CA, apiserver, admin and service-account files
    kubeconfig           admin kubeconfig (absolute paths), used by every client
    kube-scheduler.yaml  the KubeSchedulerConfiguration
    logs/<component>.log stdout+stderr of each component
    state.json           pids, ports and paths, read by ``hami cluster status|down``
    etcd-data/ apiserver-certs/ kwok-home/

If a component fails to start, the ones already running are stopped and the run directory is
kept, so its logs can be read; the error names the component and quotes its log tail.
"""

from __future__ import annotations

import json
import shutil
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from hami.cluster import paths, render
from hami.cluster.binaries import Binaries, find_binaries
from hami.cluster.errors import ClusterError
from hami.cluster.pki import ClusterPki, write_cluster_pki
from hami.cluster.ports import free_ports
from hami.cluster.process import Component, Probe

STATE_FILE = "state.json"
ETCD_DATA = "etcd-data"
COMPONENT_ORDER = ("etcd", "kube-apiserver", "kube-scheduler", "kwok")
PROBE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    """How to start a local control plane.

    ``scheduler_profiles`` / ``scheduler_extenders`` extend the scheduler configuration (see
    :func:`hami.cluster.render.scheduler_config`). ``extra_args`` maps a component name to
    extra command-line flags. ``detach`` leaves the processes running when this Python process
    exits (``hami cluster up``); otherwise the kernel stops them if it dies.
    """

    run_dir: Path
    name: str = "hami-local"
    scheduler_profiles: Sequence[Mapping[str, Any]] = ()
    scheduler_extenders: Sequence[Mapping[str, Any]] = ()
    include_default_profile: bool = True
    extra_args: Mapping[str, Sequence[str]] = field(default_factory=dict)
    ready_timeout: float = 60.0
    stop_grace: float = 10.0
    detach: bool = False
    binaries_dir: Path | None = None
    controller_manager: Path | None = None  # kube-controller-manager (make node-bin): started last


@dataclass(frozen=True, slots=True)
class _Launch:
    component: Component
    probe: Probe


class LocalCluster:
    """A running (or startable) local control plane; usable as a context manager."""

    def __init__(self, options: ClusterOptions, binaries: Binaries | None = None) -> None:
        self.options = options
        self.run_dir = options.run_dir.resolve()
        self._binaries = binaries
        self.components: list[Component] = []
        self.startup_seconds: dict[str, float] = {}
        self.ports: render.Ports | None = None
        self.pki: ClusterPki | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    @property
    def server(self) -> str:
        if self.ports is None:
            raise ClusterError("the cluster has not been started")
        return self.ports.server

    @property
    def state_path(self) -> Path:
        return self.run_dir / STATE_FILE

    @property
    def pids(self) -> dict[str, int]:
        return {c.name: c.pid for c in self.components if c.pid is not None}

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> LocalCluster:
        """Start every component in order and wait for each; stop them all on failure."""
        began = time.monotonic()
        binaries = self._binaries or find_binaries(self.options.binaries_dir)
        launches = self._prepare(binaries)
        try:
            for launch in launches:
                self._launch(launch)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds["total"] = time.monotonic() - began
        self._write_state()
        return self

    def stop(self, *, remove_run_dir: bool = False) -> None:
        """Stop components in reverse start order (SIGTERM, then SIGKILL after the grace).

        etcd's data (over 100 MB of preallocated WAL) is always deleted; the logs and the rest
        of the run directory stay unless ``remove_run_dir``.
        """
        for component in reversed(self.components):
            component.stop(self.options.stop_grace)
        self.state_path.unlink(missing_ok=True)
        shutil.rmtree(self.run_dir / ETCD_DATA, ignore_errors=True)
        if remove_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def client_ssl_context(self) -> ssl.SSLContext:
        """TLS context trusting the cluster CA and presenting the admin client certificate."""
        if self.pki is None:
            raise ClusterError("the cluster has not been started")
        return admin_ssl_context(self.pki)

    def _prepare(self, binaries: Binaries) -> list[_Launch]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ports = ports = render.Ports.from_list(free_ports(5))
        self.pki = pki = write_cluster_pki(self.run_dir / "pki")
        _write_yaml(self.kubeconfig, render.kubeconfig(ports.server, pki, self.options.name))
        scheduler_yaml = self.run_dir / "kube-scheduler.yaml"
        _write_yaml(scheduler_yaml, self._scheduler_config())
        argv = {
            "etcd": render.etcd_args(binaries.etcd, self.run_dir / ETCD_DATA, ports),
            "kube-apiserver": render.apiserver_args(
                binaries.kube_apiserver,
                pki,
                ports,
                self.run_dir / "apiserver-certs",
                controllers=self.options.controller_manager is not None,
            ),
            "kube-scheduler": render.scheduler_args(
                binaries.kube_scheduler, scheduler_yaml, self.kubeconfig, ports.scheduler
            ),
            "kwok": render.kwok_args(
                binaries.kwok, self.kubeconfig, binaries.kwok_stages, ports.kwok
            ),
        }
        probes = self._probes(ports, pki)
        launches = [self._make_launch(name, argv[name], probes[name]) for name in COMPONENT_ORDER]
        if self.options.controller_manager is not None:
            launches.append(self._controller_manager(self.options.controller_manager, pki))
        return launches

    def _controller_manager(self, binary: Path, pki: ClusterPki) -> _Launch:
        """Deployments, DaemonSets, Jobs, ServiceAccounts, endpoints, garbage collection."""
        port = free_ports(1)[0]
        argv = render.controller_manager_args(binary, self.kubeconfig, pki, port)
        url = f"https://{render.LOOPBACK}:{port}/healthz"
        return self._make_launch("kube-controller-manager", argv, lambda: _http_ok(url, False))

    def _scheduler_config(self) -> dict[str, Any]:
        return render.scheduler_config(
            self.kubeconfig,
            profiles=self.options.scheduler_profiles,
            extenders=self.options.scheduler_extenders,
            include_default_profile=self.options.include_default_profile,
        )

    def _make_launch(self, name: str, argv: list[str], probe: Probe) -> _Launch:
        extra = list(self.options.extra_args.get(name, ()))
        env = paths.child_env(HOME=str(self.run_dir / "kwok-home")) if name == "kwok" else None
        log = self.run_dir / "logs" / f"{name}.log"
        return _Launch(Component(name, argv + extra, log, env), probe)

    def _probes(self, ports: render.Ports, pki: ClusterPki) -> dict[str, Probe]:
        admin = admin_ssl_context(pki)
        loop = render.LOOPBACK
        return {
            "etcd": lambda: _etcd_healthy(f"http://{loop}:{ports.etcd_client}/health"),
            "kube-apiserver": lambda: _http_ok(f"{ports.server}/readyz", admin),
            "kube-scheduler": lambda: _http_ok(f"https://{loop}:{ports.scheduler}/healthz", False),
            "kwok": lambda: _http_ok(f"http://{loop}:{ports.kwok}/healthz", False),
        }

    def _launch(self, launch: _Launch) -> None:
        began = time.monotonic()
        component = launch.component
        self.components.append(component)
        component.start(die_with_parent=not self.options.detach)
        component.wait_ready(launch.probe, self.options.ready_timeout)
        self.startup_seconds[component.name] = time.monotonic() - began

    def _write_state(self) -> None:
        assert self.ports is not None
        state = {
            "name": self.options.name,
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "run_dir": str(self.run_dir),
            "ports": {
                "etcd": self.ports.etcd_client,
                "kube-apiserver": self.ports.apiserver,
                "kube-scheduler": self.ports.scheduler,
                "kwok": self.ports.kwok,
            },
            "components": [
                {"name": c.name, "pid": c.pid, "binary": c.argv[0], "log": str(c.log_path)}
                for c in self.components
            ],
            "startup_seconds": {k: round(v, 2) for k, v in self.startup_seconds.items()},
        }
        self.state_path.write_text(json.dumps(state, indent=2) + "\n")


def admin_ssl_context(pki: ClusterPki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    context.load_cert_chain(str(pki.admin.cert), str(pki.admin.key))
    return context


def _http_ok(url: str, verify: ssl.SSLContext | bool) -> bool:
    return _get(url, verify, lambda response: response.status_code == 200)


def _etcd_healthy(url: str) -> bool:
    return _get(url, False, lambda response: response.json().get("health") == "true")


def _get(url: str, verify: ssl.SSLContext | bool, check: Callable[[httpx.Response], bool]) -> bool:
    try:
        response = httpx.get(url, verify=verify, timeout=PROBE_TIMEOUT, trust_env=False)
        return check(response)
    except (httpx.HTTPError, ValueError):
        return False


def _write_yaml(path: Path, document: Mapping[str, Any]) -> None:
    path.write_text(yaml.safe_dump(dict(document), sort_keys=False))
