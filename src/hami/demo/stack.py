"""A whole hami stack on the local control plane, as HAMi runs it in a real cluster.

* kube-scheduler gets the profile ``hami-scheduler`` and our extender exactly as the Helm chart
  renders them (:mod:`hami.demo.chart`; HTTPS verified with the cluster CA, ``nodeCacheCapable``,
  the GPU resources managed and ``ignoredByScheduler``);
* ``hami scheduler`` serves ``/webhook`` with a certificate from the cluster CA (the mutating
  webhook is registered by URL with that CA as ``caBundle``) and ``/filter`` and ``/bind`` on a
  listener of their own that only kube-scheduler may call: its extender ``tlsConfig`` presents
  a client certificate of a CA of its own, as the chart's certgen makes one;
* ``hami device-plugin --simulate`` plays the device plugin and kubelet for kwok nodes: NVIDIA
  nodes from fake inventories, any vendor's nodes from Node manifests.

Used by ``hami demo``, the scheduler's end-to-end tests and ``benchmarks/bench_scheduler.py``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hami.api import keys
from hami.cluster.control_plane import STATE_FILE, ClusterOptions, LocalCluster
from hami.cluster.pki import CertificateAuthority, CertPair, write_client_cert, write_serving_cert
from hami.cluster.ports import free_port
from hami.cluster.process import Component
from hami.demo import chart
from hami.k8s import objects
from hami.k8s.api import NODES, PODS, Kind, KubeAPI, KubeAPIError, Manifest
from hami.k8s.client import LightkubeAPI, load_kubeconfig
from hami.k8s.manifests import ManifestNode

HAMI = str(Path(sys.executable).with_name("hami"))
PROFILE = "hami-scheduler"
WEBHOOKS = Kind(
    "mutatingwebhookconfigurations",
    "apis/admissionregistration.k8s.io/v1",
    False,
    "MutatingWebhookConfiguration",
)
WEBHOOK_NAME = "hami-webhook"
NODE_CAPACITY = {"cpu": "32", "memory": "256Gi", "pods": "110"}
KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}


def ca_file(run_dir: Path) -> Path:
    """Where :class:`LocalCluster` writes the cluster CA certificate."""
    return run_dir.resolve() / "pki" / "ca.crt"


EXTENDER_FILE = "extender.json"


@dataclass(frozen=True, slots=True)
class ExtenderAccess:
    """Where ``hami scheduler`` serves /filter and /bind and who may call them: kube-scheduler
    with the ``client`` certificate of a CA of its own (``client_ca``), as the chart does."""

    port: int
    client_ca: Path
    client: CertPair

    def to_json(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "client_ca": str(self.client_ca),
            "client_cert": str(self.client.cert),
            "client_key": str(self.client.key),
        }


def prepare_extender(run_dir: Path) -> ExtenderAccess:
    """A fresh port, client CA and kube-scheduler client certificate under ``run_dir``
    (``extender/``, recorded in ``extender.json`` for :func:`extender_access`)."""
    directory = run_dir.resolve() / "extender"
    ca = CertificateAuthority.create("hami-extender-client-ca").write(directory, "client-ca")
    client = write_client_cert(ca, directory, "hami-kube-scheduler")
    access = ExtenderAccess(free_port(), ca.cert, client)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / EXTENDER_FILE).write_text(json.dumps(access.to_json(), indent=2) + "\n")
    return access


def extender_access(run_dir: Path) -> ExtenderAccess:
    """What :func:`prepare_extender` (through :func:`cluster_options`) chose for this run."""
    recorded = run_dir / EXTENDER_FILE
    data = json.loads(recorded.read_text())
    client = CertPair(Path(data["client_cert"]), Path(data["client_key"]))
    return ExtenderAccess(int(data["port"]), Path(data["client_ca"]), client)


def cluster_options(
    run_dir: Path,
    name: str,
    port: int,
    *,
    detach: bool = False,
    default_profile: bool = True,
    chart_values: Sequence[str] = (),
) -> ClusterOptions:
    """A control plane whose kube-scheduler sends GPU pods to our extender: the chart's profiles
    and extenders (:func:`hami.demo.chart.local_scheduler_config`, with ``chart_values``, e.g.
    :func:`hami.demo.chart.vendor_values`), after the default profile when ``default_profile``.
    The webhook is on ``port``; /filter and /bind on a port of their own, over mTLS with a
    client certificate made here (:func:`prepare_extender`)."""
    access = prepare_extender(run_dir)
    config = chart.local_scheduler_config(
        access.port, ca_file(run_dir), chart_values, client=access.client
    )
    return ClusterOptions(
        run_dir=run_dir,
        name=name,
        scheduler_profiles=config["profiles"],
        scheduler_extenders=config.get("extenders", ()),
        include_default_profile=default_profile,
        detach=detach,
    )


def serving_cert(cluster: LocalCluster) -> CertPair:
    """The scheduler's serving certificate (127.0.0.1, localhost), signed by the cluster CA."""
    if cluster.pki is None:
        raise RuntimeError("the cluster has not been started")
    return write_serving_cert(cluster.pki.ca, cluster.run_dir / "pki", "hami-scheduler")


def scheduler_component(
    cluster: LocalCluster,
    port: int,
    *,
    name: str = "hami-scheduler",
    config: Path | None = None,
    args: Sequence[str] = (),
) -> Component:
    """``hami scheduler`` serving the webhook over HTTPS on 127.0.0.1:``port``, /filter and /bind
    on the extender port of :func:`cluster_options` (only kube-scheduler's client certificate
    is served there) and its plain-HTTP metrics on a free loopback port (not started yet)."""
    cert = serving_cert(cluster)
    access = extender_access(cluster.run_dir)
    argv = [HAMI, "scheduler", "--kubeconfig", str(cluster.kubeconfig)]
    argv += ["--http-bind", f"127.0.0.1:{port}"]
    argv += ["--extender-bind", f"127.0.0.1:{access.port}"]
    argv += ["--client-ca-file", str(access.client_ca)]
    argv += ["--cert-file", str(cert.cert), "--key-file", str(cert.key), *args]
    if "--metrics-bind-address" not in args:  # not HAMi's :9395 on every interface
        argv += ["--metrics-bind-address", f"127.0.0.1:{free_port()}"]
    if config is not None:
        argv += ["--config", str(config)]
    return Component(name, argv, cluster.run_dir / "logs" / f"{name}.log")


def plugin_component(
    cluster: LocalCluster,
    nodes: Mapping[str, Path],
    *,
    args: Sequence[str] = (),
    manifests: Sequence[Path] = (),
    config: Path | None = None,
) -> Component:
    """``hami device-plugin --simulate`` for ``nodes`` (node name → inventory file) and the
    Node ``manifests`` of any vendor (vendor sections from ``config``)."""
    argv = [HAMI, "device-plugin", "--simulate", "--kubeconfig", str(cluster.kubeconfig)]
    if nodes:
        spec = ",".join(f"{node}={inventory.resolve()}" for node, inventory in nodes.items())
        argv += ["--nodes", spec]
    for manifest in manifests:
        argv += ["--node-manifests", str(manifest.resolve())]
    if config is not None:
        argv += ["--config-file", str(config.resolve())]
    argv += args
    return Component("hami-device-plugin", argv, cluster.run_dir / "logs" / "device-plugin.log")


def ready_probe(port: int, ca: Path) -> Callable[[], bool]:
    """A probe for :meth:`Component.wait_ready`: ``GET /readyz`` over TLS is 200."""
    context = ssl.create_default_context(cafile=str(ca))

    def probe() -> bool:
        try:
            url = f"https://127.0.0.1:{port}/readyz"
            return httpx.get(url, verify=context, timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


def start_scheduler(
    component: Component, port: int, ca: Path, *, detach: bool = False, timeout: float = 60.0
) -> None:
    """Start ``hami scheduler`` and wait until it answers ``/readyz`` (cache synced)."""
    component.start(die_with_parent=not detach)
    component.wait_ready(ready_probe(port, ca), timeout)


def webhook_configuration(port: int, ca: Path) -> dict[str, Any]:
    """The MutatingWebhookConfiguration: by URL, ``caBundle`` = the cluster CA."""
    selector = {
        "matchExpressions": [{"key": keys.WEBHOOK_LABEL, "operator": "NotIn", "values": ["ignore"]}]
    }
    rule = {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE"],
        "resources": ["pods"],
        "scope": "*",
    }
    webhook = {
        "name": "vgpu.hami.io",
        "admissionReviewVersions": ["v1", "v1beta1"],
        "sideEffects": "None",
        "failurePolicy": "Fail",
        "timeoutSeconds": 10,
        "matchPolicy": "Equivalent",
        "clientConfig": {
            "url": f"https://127.0.0.1:{port}/webhook",
            "caBundle": base64.b64encode(ca.read_bytes()).decode(),
        },
        "rules": [rule],
        "namespaceSelector": selector,
        "objectSelector": selector,
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_NAME},
        "webhooks": [webhook],
    }


class StackError(RuntimeError):
    """A piece of the stack did not come up; the message says which and what was awaited."""


async def poll(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.2
) -> None:
    """Await ``check()`` until it is true; raise :class:`StackError` naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() >= deadline:
            raise StackError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


async def register_webhook(api: LightkubeAPI, port: int, ca: Path, timeout: float = 30.0) -> None:
    """Register the webhook and wait until a dry-run GPU pod comes back mutated."""
    await api.create(WEBHOOKS, webhook_configuration(port, ca))
    probe = gpu_pod("webhook-probe", {"gpu": 1})

    async def mutated() -> bool:
        try:
            made = await api.create(PODS, probe, "default", dry_run=True)
        except KubeAPIError:
            return False
        return objects.spec(made).get("schedulerName") == PROFILE

    await poll(mutated, timeout, "the webhook to mutate pods")


async def wait_registered(api: KubeAPI, names: Sequence[str], timeout: float = 60.0) -> None:
    """Wait until the device plugin has registered GPUs on every node in ``names``."""
    wanted = set(names)

    async def registered() -> bool:
        nodes = (await api.list(NODES)).items
        done = {objects.name(n) for n in nodes if keys.NVIDIA_REGISTER in objects.annotations(n)}
        return wanted <= done

    await poll(registered, timeout, f"device registrations on {len(wanted)} nodes")


async def wait_manifest_nodes(
    api: KubeAPI, nodes: Sequence[ManifestNode], timeout: float = 60.0
) -> None:
    """Wait until the device plugin has registered every manifest node: its annotations and
    its allocatable resources are there (the scheduler's informer then has them too)."""

    def done(node: ManifestNode, found: Manifest) -> bool:
        notes = objects.annotations(found)
        allocatable = objects.section(objects.status(found), "allocatable")
        return all(notes.get(k) == v for k, v in node.annotations.items()) and all(
            k in allocatable for k in node.allocatable
        )

    async def registered() -> bool:
        found = {objects.name(n): n for n in (await api.list(NODES)).items}
        return all(n.name in found and done(n, found[n.name]) for n in nodes)

    await poll(registered, timeout, f"registrations on {len(nodes)} manifest nodes")


def with_images(manifest: Mapping[str, Any], image: str = "example.invalid/app") -> dict[str, Any]:
    """The pod with ``image`` for every container that names none (the API requires one; the
    vendor examples leave it out, since `hami sim` does not need it)."""
    spec = dict(manifest.get("spec") or {})
    for section in ("initContainers", "containers"):
        if isinstance(spec.get(section), list):
            spec[section] = [
                {"image": image, **c} if isinstance(c, Mapping) else c for c in spec[section]
            ]
    return {**manifest, "spec": spec}


def gpu_pod(
    name: str, limits: Mapping[str, object], labels: Mapping[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    """A one-container pod limiting ``nvidia.com/<key>: value`` for each of ``limits``."""
    resources = {f"nvidia.com/{k}": str(v) for k, v in limits.items()}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": dict(labels or {})},
        "spec": {
            "containers": [
                {
                    "name": "cuda",
                    "image": "example.invalid/cuda",
                    "resources": {"limits": resources},
                }
            ],
            **spec,
        },
    }


def record_components(cluster: LocalCluster, components: Sequence[Component]) -> None:
    """Add ``components`` to the cluster's ``state.json`` so ``hami cluster status|down`` see
    them (``down`` stops them first: it goes in reverse order)."""
    path = cluster.run_dir / STATE_FILE
    state = json.loads(path.read_text())
    for component in components:
        state["components"].append(
            {
                "name": component.name,
                "pid": component.pid,
                "binary": sys.executable,  # what /proc/<pid>/exe shows for a Python entry point
                "log": str(component.log_path),
            }
        )
    path.write_text(json.dumps(state, indent=2) + "\n")


def record_scheduler(cluster: LocalCluster, port: int) -> None:
    """Add where ``hami scheduler`` serves to the cluster's ``state.json`` (key ``scheduler``:
    ``port``, ``url`` of /webhook and /metrics, the ``ca`` that verifies it, and ``extender``:
    the mTLS listener of /filter and /bind with the client certificate kube-scheduler uses),
    for tools and people that need to reach it later."""
    path = cluster.run_dir / STATE_FILE
    state = json.loads(path.read_text())
    access = extender_access(cluster.run_dir)
    state["scheduler"] = {
        "port": port,
        "url": f"https://127.0.0.1:{port}",
        "ca": str(ca_file(cluster.run_dir)),
        "extender": {"url": f"https://127.0.0.1:{access.port}", **access.to_json()},
    }
    path.write_text(json.dumps(state, indent=2) + "\n")


async def create_node(
    api: KubeAPI,
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    resources: Mapping[str, str] | None = None,
) -> None:
    """A kwok-managed Node with CPU, memory and pod capacity (plus ``resources``)."""
    metadata = {
        "name": name,
        "labels": {"kubernetes.io/hostname": name, "type": "kwok", **(labels or {})},
        "annotations": {**KWOK_ANNOTATION, **(annotations or {})},
    }
    await api.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": metadata})
    capacity = {**NODE_CAPACITY, **(resources or {})}
    status = {"status": {"capacity": capacity, "allocatable": capacity}}
    await api.merge_patch(NODES, f"{name}/status", status)


@dataclass
class Stack:
    """A local control plane wired to ``hami scheduler`` replicas and simulated GPU nodes, for
    tests and benchmarks: every process dies with the caller; :meth:`stop` ends them all."""

    cluster: LocalCluster
    port: int
    components: list[Component] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        run_dir: Path,
        name: str,
        *,
        default_profile: bool = False,
        chart_values: Sequence[str] = (),
    ) -> Stack:
        port = free_port()
        options = cluster_options(
            run_dir, name, port, default_profile=default_profile, chart_values=chart_values
        )
        return cls(LocalCluster(options).start(), port)

    @property
    def ca(self) -> Path:
        return ca_file(self.cluster.run_dir)

    def api(self, timeout: float = 10.0) -> LightkubeAPI:
        return LightkubeAPI(load_kubeconfig(self.cluster.kubeconfig), timeout=timeout)

    def scheduler(
        self,
        *,
        name: str = "hami-scheduler",
        config: Path | None = None,
        args: Sequence[str] = (),
        wait_ready: bool = True,
    ) -> Component:
        """Start a ``hami scheduler`` replica (by default waiting until it serves)."""
        component = scheduler_component(
            self.cluster, self.port, name=name, config=config, args=args
        )
        component.start(die_with_parent=True)
        self.components.append(component)
        if wait_ready:
            component.wait_ready(ready_probe(self.port, self.ca), 60.0)
        return component

    def plugin(
        self,
        nodes: Mapping[str, Path],
        args: Sequence[str] = (),
        *,
        manifests: Sequence[Path] = (),
        config: Path | None = None,
    ) -> Component:
        """Start ``hami device-plugin --simulate`` for ``nodes`` (name → inventory) and the
        Node ``manifests`` (vendor sections from ``config``)."""
        component = plugin_component(
            self.cluster, nodes, args=args, manifests=manifests, config=config
        )
        component.start(die_with_parent=True)
        self.components.append(component)
        return component

    def create_nodes(self, names: Sequence[str]) -> None:
        """kwok-managed nodes ``names`` with CPU, memory and pods (the plugin adds GPUs)."""

        async def create(api: LightkubeAPI) -> None:
            for name in names:
                await create_node(api, name)

        asyncio.run(self._with_api(create))

    def wait_serving(self, nodes: Sequence[str]) -> None:
        """Register the webhook (waiting until it mutates) and wait until the device plugin has
        registered GPUs on every node of ``nodes``."""

        async def ready(api: LightkubeAPI) -> None:
            await register_webhook(api, self.port, self.ca)
            await wait_registered(api, nodes)

        try:
            asyncio.run(self._with_api(ready))
        except StackError as exc:
            tail = self.log("device-plugin")[-4000:]
            raise StackError(f"{exc}\n--- device-plugin log (tail) ---\n{tail}") from exc

    async def _with_api(self, action: Callable[[LightkubeAPI], Awaitable[None]]) -> None:
        api = self.api()
        try:
            await action(api)
        finally:
            await api.close()

    def log(self, component: str = "hami-scheduler") -> str:
        path = self.cluster.run_dir / "logs" / f"{component}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for component in reversed(self.components):
            component.stop(10.0)
        self.cluster.stop()
