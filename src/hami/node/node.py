"""Start and remove one real node: a host-only bridge, containerd, our images, kubelet.

``up`` records the host first (``host-before.json``) and undoes everything it did if a step
fails; ``down`` works from the recorded state alone (also after a crash) and leaves the host
as it was, keeping only the logs.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from hami.cluster.binaries import NodeBinaries
from hami.cluster.process import Component, pid_alive, stop_group
from hami.node import host, images, render
from hami.node.errors import NodeError
from hami.node.render import KubeletPorts, NodeLayout

HOST_BEFORE = "host-before.json"
STOP_GRACE = 10.0


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """How to start one real node. ``kubeconfig``: a cluster-admin kubeconfig for kubelet;
    ``binaries``: kubelet and containerd (``make node-bin``); ``fake_driver``: the fake
    libcuda/libnvidia-ml build for the test image."""

    work: Path
    kubeconfig: Path
    binaries: NodeBinaries
    fake_driver: Path
    name: str = "real-node"
    ports: KubeletPorts | None = None
    apiserver_port: int | None = None  # set: pods reach the API at the kubernetes Service IP
    detach: bool = False
    ready_timeout: float = 90.0


def _free_ports() -> KubeletPorts:
    from hami.cluster.ports import free_ports

    port, healthz = free_ports(2)
    return KubeletPorts(port=port, healthz=healthz)


class RealNode:
    """One real node on this host (there can be only one: kubelet's plugin socket is fixed)."""

    def __init__(self, options: NodeOptions) -> None:
        self.options = options
        self.layout = NodeLayout(options.work.resolve())
        self.ports = options.ports or _free_ports()
        self.components: list[Component] = []
        self.startup_seconds: dict[str, float] = {}

    @property
    def name(self) -> str:
        return self.options.name

    def __enter__(self) -> RealNode:
        return self.up()

    def __exit__(self, *exc_info: object) -> None:
        self.down()

    # --- up ------------------------------------------------------------------------------------

    def up(self) -> RealNode:
        chosen = self.options.ports
        host.preflight(ports=(chosen.port, chosen.healthz) if chosen else ())
        began = time.monotonic()
        layout = self.layout
        if layout.work.exists():
            down_recorded(layout)  # leftovers of a crashed run
        for directory in (layout.work, layout.logs, layout.containerd_dir, layout.cni_conf_dir):
            directory.mkdir(parents=True, exist_ok=True)
        snapshot = host.take_snapshot()
        (layout.work / HOST_BEFORE).write_text(json.dumps(snapshot.to_json(), indent=1))
        try:
            self._write_files()
            self._share_kubelet_root()
            host.add_bridge(render.BRIDGE, f"{render.NODE_IP}/{render.PREFIX_LEN}")
            self._step("cluster network", self._cluster_network)
            self._step("containerd", self._start_containerd)
            self._step("images", self._import_images)
            self._step("kubelet", self._start_kubelet)
            self._step("node Ready", self._wait_ready)
        except BaseException:
            self.down()
            raise
        self.startup_seconds["total"] = time.monotonic() - began
        self._write_state()
        return self

    def _step(self, name: str, action: Any) -> None:
        began = time.monotonic()
        action()
        self.startup_seconds[name] = time.monotonic() - began

    def _write_files(self) -> None:
        layout = self.layout
        layout.containerd_config.write_text(render.containerd_config(layout))
        network = render.cni_network(layout)
        (layout.cni_conf_dir / "10-hami-node.conflist").write_text(json.dumps(network, indent=1))
        layout.kubelet_config.parent.mkdir(parents=True, exist_ok=True)
        config = render.kubelet_config(layout, self.ports)
        layout.kubelet_config.write_text(yaml.safe_dump(config, sort_keys=False))
        layout.sysctl_dir.mkdir(parents=True, exist_ok=True)
        for name, value in render.KUBELET_SYSCTLS.items():
            (layout.sysctl_dir / name.replace("/", ".")).write_text(value + "\n")

    def _cluster_network(self) -> None:
        """The kubernetes Service for in-cluster clients: its IP (DNAT) and its name (DNS)."""
        if self.options.apiserver_port is not None:
            host.route_service_ip(
                render.BRIDGE, render.KUBERNETES_SERVICE_IP, self.options.apiserver_port
            )
        self._component("dns", render.dns_argv(sys.executable))

    def _share_kubelet_root(self) -> None:
        """kubelet runs in its own mount namespace; a shared bind mount of its root lets the
        volume mounts it makes there reach containerd in the host namespace."""
        root = render.KUBELET_ROOT
        root.mkdir(parents=True, exist_ok=True)
        host.run(["mount", "--bind", str(root), str(root)], "binding the kubelet root")
        host.run(["mount", "--make-shared", str(root)], "sharing the kubelet root")

    def _component(
        self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> Component:
        component = Component(name, list(argv), self.layout.logs / f"{name}.log", env)
        self.components.append(component)
        component.start(die_with_parent=not self.options.detach)
        return component

    @property
    def ctr(self) -> list[str]:
        """``ctr`` against this node's containerd, in the CRI namespace."""
        ctr = self.options.binaries.directory / "ctr"
        return images.ctr_command(ctr, self.layout.containerd_socket, render.K8S_NAMESPACE)

    def _start_containerd(self) -> None:
        layout = self.layout
        containerd = self.options.binaries.containerd
        # our runc shim before any other on PATH (containerd looks the shim up there first)
        path = f"{containerd.parent}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        component = self._component(
            "containerd",
            [str(containerd), "--config", str(layout.containerd_config)],
            env={**os.environ, "PATH": path},
        )
        ctr = self.ctr

        def answers() -> bool:
            probe = subprocess.run([*ctr, "version"], capture_output=True)
            return layout.containerd_socket.exists() and probe.returncode == 0

        component.wait_ready(answers, self.options.ready_timeout, interval=0.2)

    def _import_images(self) -> None:
        layout = self.layout
        build = layout.images_dir / "build"
        wanted = [images.pause_image(build), images.testbox_image(build, self.options.fake_driver)]
        archives = images.write_archives(wanted, layout.images_dir)
        images.import_archives(self.ctr, archives)

    def _start_kubelet(self) -> None:
        argv = render.kubelet_argv(
            self.options.binaries.kubelet, self.layout, self.options.kubeconfig, self.name
        )
        component = self._component("kubelet", argv)
        url = f"http://127.0.0.1:{self.ports.healthz}/healthz"
        component.wait_ready(lambda: _http_ok(url), self.options.ready_timeout, interval=0.2)

    def import_images(self, archives: Sequence[Path]) -> None:
        """Load more OCI archives (e.g. the hami image) into the node's containerd."""
        images.import_archives(self.ctr, archives)

    def restart_kubelet(self) -> None:
        """Stop kubelet (SIGTERM) and start it again; containers keep running meanwhile."""
        for component in [c for c in self.components if c.name == "kubelet"]:
            component.stop(STOP_GRACE)
            self.components.remove(component)
        self._start_kubelet()
        self._wait_ready()
        self._write_state()

    def _wait_ready(self) -> None:
        client = _AdminClient(self.options.kubeconfig)
        deadline = time.monotonic() + self.options.ready_timeout
        while not client.node_ready(self.name):
            if time.monotonic() >= deadline:
                raise NodeError(
                    f"node {self.name} did not become Ready in {self.options.ready_timeout:.0f} s "
                    f"(kubelet log: {self.layout.logs / 'kubelet.log'})"
                )
            time.sleep(0.3)

    def _write_state(self) -> None:
        state = {
            "name": self.name,
            "kubeconfig": str(self.options.kubeconfig),
            "ports": {"kubelet": self.ports.port, "healthz": self.ports.healthz},
            "ctr": self.ctr[0],
            "components": [
                {"name": c.name, "pid": c.pid, "log": str(c.log_path)} for c in self.components
            ],
        }
        self.layout.state_file.write_text(json.dumps(state, indent=1))

    # --- down ----------------------------------------------------------------------------------

    def down(self) -> None:
        """Stop everything this node started and put the host back (idempotent)."""
        for component in reversed(self.components):
            if component.name == "kubelet":
                component.stop(STOP_GRACE)
        down_recorded(self.layout, [c.pid for c in self.components if c.pid is not None])
        self.components.clear()


def down_recorded(layout: NodeLayout, pids: Sequence[int] = ()) -> None:
    """Remove the node recorded in ``layout`` (processes, containers, mounts, bridge, cgroups,
    files, sysctl changes), keeping its logs. Safe to run twice or after a crash."""
    recorded = list(pids) + _recorded_pids(layout)
    kubelets = [p for p in recorded if _comm(p) == "kubelet"]
    for pid in kubelets:
        stop_group(pid, STOP_GRACE)
    _remove_containers(layout)
    for pid in recorded:
        if pid_alive(pid):
            stop_group(pid, STOP_GRACE)
    host.kill_pids(host.processes_with(f"-address {layout.containerd_socket}"))
    host.kill_pids(host.cgroup_pids())
    time.sleep(0.2)
    host.unmount_under([layout.work, render.KUBELET_ROOT, Path("/run/containerd")])
    host.unroute_service_ip(render.BRIDGE)
    host.delete_link(render.BRIDGE)
    before = _snapshot_before(layout)
    host.remove_cgroups(before.cgroups if before else ())
    if before is not None:
        host.restore(before)
    for entry in layout.work.iterdir() if layout.work.is_dir() else ():
        if entry != layout.logs:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _recorded(layout: NodeLayout) -> dict[str, Any]:
    try:
        state = json.loads(layout.state_file.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _recorded_pids(layout: NodeLayout) -> list[int]:
    try:
        return [int(c["pid"]) for c in _recorded(layout)["components"] if c.get("pid")]
    except (KeyError, TypeError, ValueError):
        return []


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _snapshot_before(layout: NodeLayout) -> host.HostSnapshot | None:
    recorded = layout.work / HOST_BEFORE
    try:
        return host.HostSnapshot.from_json(json.loads(recorded.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remove_containers(layout: NodeLayout) -> None:
    """Kill and delete every task and container containerd still has (if it answers; the
    tasks' processes are killed through their cgroups anyway)."""
    recorded = _recorded(layout).get("ctr")
    if not layout.containerd_socket.exists() or not isinstance(recorded, str):
        return
    ctr = images.ctr_command(Path(recorded), layout.containerd_socket, render.K8S_NAMESPACE)
    listed = subprocess.run([*ctr, "tasks", "ls", "-q"], capture_output=True, text=True)
    tasks = listed.stdout.split() if listed.returncode == 0 else []
    for task in tasks:
        subprocess.run([*ctr, "tasks", "kill", "-s", "SIGKILL", task], capture_output=True)
    for task in tasks:
        subprocess.run([*ctr, "tasks", "delete", "-f", task], capture_output=True)
    listed = subprocess.run([*ctr, "containers", "ls", "-q"], capture_output=True, text=True)
    for container in listed.stdout.split() if listed.returncode == 0 else []:
        subprocess.run([*ctr, "containers", "delete", container], capture_output=True)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


class _AdminClient:
    """Just enough of the API for ``up``: is the Node Ready."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        context = ssl.create_default_context(cafile=cluster["certificate-authority"])
        context.load_cert_chain(user["client-certificate"], user["client-key"])
        self._server = cluster["server"]
        self._context = context

    def node_ready(self, name: str) -> bool:
        try:
            response = httpx.get(
                f"{self._server}/api/v1/nodes/{name}",
                verify=self._context,
                timeout=2,
                trust_env=False,
            )
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        conditions = response.json().get("status", {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
