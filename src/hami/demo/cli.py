"""`hami demo up|down|show|apply`: the whole stack on a local control plane (`make demo`).

``up`` starts the control plane (kube-scheduler with the ``hami-scheduler`` profile and our
extender, every vendor's resources managed), ``hami scheduler`` (HTTPS, webhook registered by
URL with the cluster CA), simulated nodes served by one ``hami device-plugin --simulate`` — the
NVIDIA nodes from fake inventories, the other vendors' nodes (Ascend, Cambricon, Hygon, …) from
the Node manifests of ``--vendors`` — applies the example pods and prints where each landed and
which slices it got. Everything keeps running, recorded in the cluster's ``state.json``, so
``hami demo down`` and ``hami cluster down --name demo`` both stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from hami.api import keys
from hami.cluster import paths
from hami.cluster.control_plane import LocalCluster
from hami.cluster.errors import ClusterError
from hami.cluster.ports import free_port
from hami.cluster.process import Component
from hami.cluster.state import read_state, stop_recorded
from hami.config import ConfigError, load_config, parse_config
from hami.core.errors import ConfigError as ManifestError
from hami.core.vendor import Vendor
from hami.demo import chart, stack
from hami.demo.chart import ChartError
from hami.demo.report import Placement, mig_gpus, placement, render, render_mig
from hami.k8s import objects
from hami.k8s.api import NAMESPACES, NODES, PODS, Conflict, KubeAPI, KubeAPIError
from hami.k8s.client import LightkubeAPI, load_kubeconfig
from hami.k8s.files import ManifestFileError, documents
from hami.k8s.manifests import ManifestNode, load_manifest
from hami.vendors import registry

app = typer.Typer(
    name="demo",
    help="The whole hami stack on a local cluster with simulated GPU nodes.",
    no_args_is_help=True,
)

# node name → inventory file in --inventory-dir (a100-nvlink and t4-pair carry fixed UUIDs)
DEMO_NODES = {
    "a100-nvlink": "a100-nvlink.yaml",
    "t4-pair": "t4-pair.yaml",
    "a10-0": "kwok-generic.yaml",
    "a10-1": "kwok-generic.yaml",
}

# written into the run directory by `up`: what the scheduler and the device plugin run with
SCHEDULER_CONFIG = "scheduler-config.yaml"
VENDOR_NODES = "vendor-nodes.yaml"

NameOption = Annotated[str, typer.Option("--name", help="Which local cluster runs the demo.")]
TimeoutOption = Annotated[float, typer.Option(help="Seconds to wait for the pods' placement.")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _run_dir(name: str) -> Path:
    return paths.run_root() / name


def _api(kubeconfig: Path) -> LightkubeAPI:
    return LightkubeAPI(load_kubeconfig(kubeconfig), user_agent="hami-demo")


@app.command()
def up(
    config: Annotated[Path, typer.Option(help="Scheduler config.")] = Path("examples/config.yaml"),
    pods: Annotated[Path, typer.Option(help="Pods to apply.")] = Path("examples/pods.yaml"),
    inventory_dir: Annotated[Path, typer.Option(help="Fake GPU inventories.")] = Path(
        "examples/inventory"
    ),
    vendors: Annotated[
        Path,
        typer.Option(
            help="Other vendors: Node manifests (cluster.yaml), pods (pods.yaml) and scheduler "
            "config sections (config.yaml), as `hami sim` reads them."
        ),
    ] = Path("examples/vendors"),
    nvidia_only: Annotated[
        bool, typer.Option("--nvidia-only", help="Leave the other vendors out.")
    ] = False,
    name: NameOption = "demo",
    timeout: TimeoutOption = 60.0,
) -> None:
    """Start the demo (replacing a running one), place the pods and print where they went."""
    inventories = {node: inventory_dir / file for node, file in DEMO_NODES.items()}
    extra = () if nvidia_only else tuple(vendors / f for f in VENDOR_FILES)
    missing = [str(p) for p in (config, pods, *inventories.values(), *extra) if not p.is_file()]
    if missing:
        raise _fail(f"not found: {', '.join(missing)} (run from the repository root)")
    plan = _plan(config, pods, extra)
    _stop_previous(name)
    began = time.monotonic()
    cluster, port = _start_control_plane(name, bool(extra))
    try:
        plugin_files = _write_plan(cluster.run_dir, plan)
        _start_services(cluster, port, plugin_files, inventories)
        placements = asyncio.run(_populate(cluster, port, list(inventories), plan, timeout))
    except (ClusterError, stack.StackError, KubeAPIError) as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo(f"the demo is left running for inspection; logs: {cluster.run_dir / 'logs'}")
        typer.echo(f"stop it: hami {_down_command(name)}")
        raise typer.Exit(code=1) from None
    typer.echo(f"\nthe demo is up in {time.monotonic() - began:.1f} s; where the pods landed:")
    typer.echo("\n".join(render(placements)))
    _print_usage(cluster, name, placements)


VENDOR_FILES = ("cluster.yaml", "pods.yaml", "config.yaml")


@dataclass(frozen=True)
class Plan:
    """What `up` runs: the scheduler config, the vendor nodes (Node manifests, NVIDIA ones left
    to the inventories), every pod to apply, and the enabled vendors."""

    config: dict[str, Any]
    vendors: dict[str, Vendor]
    nodes: list[ManifestNode]
    node_docs: list[dict[str, Any]]
    pods: list[dict[str, Any]]


def _plan(config: Path, pods: Path, extra: tuple[Path, ...]) -> Plan:
    """Read and check every input before anything starts (errors end the command)."""
    data = next(iter(_yaml_docs(config)), {})
    manifests = _load_pods(pods)
    if not extra:
        return Plan(data, _vendors(data, str(config)), [], [], manifests)
    cluster_file, pods_file, vendor_config = extra
    sections = next(iter(_yaml_docs(vendor_config)), {})
    data = {**sections, **data}  # the NVIDIA section and the policies of --config win
    vendors = _vendors(data, f"{config} + {vendor_config}")
    try:
        nodes = [
            n for n in load_manifest(cluster_file, vendors) if keys.NVIDIA_VENDOR not in n.vendors
        ]
    except ManifestError as exc:
        raise _fail(str(exc)) from None
    wanted = {n.name for n in nodes}
    docs = [d for d in _yaml_docs(cluster_file) if objects.name(d) in wanted]
    return Plan(data, vendors, nodes, docs, manifests + _load_pods(pods_file))


def _vendors(data: object, source: str) -> dict[str, Vendor]:
    try:
        return registry.build(parse_config(data, source))
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _yaml_docs(path: Path) -> list[dict[str, Any]]:
    try:
        return [dict(doc) for _, doc in documents(path)]
    except ManifestFileError as exc:
        raise _fail(str(exc)) from None


def _write_plan(run_dir: Path, plan: Plan) -> tuple[Path, Path | None]:
    """The scheduler config and the vendor nodes' manifests, in the run directory."""
    config = run_dir / SCHEDULER_CONFIG
    config.write_text(yaml.safe_dump(plan.config, sort_keys=False))
    if not plan.node_docs:
        return config, None
    nodes = run_dir / VENDOR_NODES
    nodes.write_text(yaml.safe_dump_all(plan.node_docs, sort_keys=False))
    return config, nodes


def _load_pods(path: Path) -> list[dict[str, Any]]:
    docs = _yaml_docs(path)
    bad = [d for d in docs if d.get("kind", "Pod") != "Pod"]
    if bad:
        raise _fail(f"{path}: only Pods can be applied (found {len(bad)} other documents)")
    return [stack.with_images(d) for d in docs]


def _stop_previous(name: str) -> None:
    try:
        state = read_state(_run_dir(name))
    except ClusterError as exc:
        raise _fail(str(exc)) from None
    if state is not None and state.running:
        typer.echo(f"stopping the running demo {name!r} first")
        stop_recorded(state)
    shutil.rmtree(_run_dir(name), ignore_errors=True)


def _start_control_plane(name: str, vendors: bool) -> tuple[LocalCluster, int]:
    port = free_port()
    values = chart.vendor_values() if vendors else []
    try:
        options = stack.cluster_options(
            _run_dir(name), f"hami-{name}", port, detach=True, chart_values=values
        )
    except ChartError as exc:
        raise _fail(str(exc)) from None
    cluster = LocalCluster(options)
    try:
        cluster.start()
    except ClusterError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"control plane up in {cluster.startup_seconds['total']:.1f} s: {cluster.server}")
    return cluster, port


def _start_services(
    cluster: LocalCluster,
    port: int,
    files: tuple[Path, Path | None],
    inventories: dict[str, Path],
) -> None:
    config, vendor_nodes = files
    scheduler = stack.scheduler_component(cluster, port, config=config)
    _start_recorded(cluster, scheduler)  # started once: a second start would orphan one
    stack.record_scheduler(cluster, port)
    scheduler.wait_ready(stack.ready_probe(port, stack.ca_file(cluster.run_dir)), 60.0)
    access = stack.extender_access(cluster.run_dir)
    typer.echo(
        f"hami scheduler serving https://127.0.0.1:{port} (/webhook /metrics); "
        f"extender https://127.0.0.1:{access.port} (/filter /bind, kube-scheduler's client cert only)"
    )
    asyncio.run(_create_nodes(cluster, list(inventories)))
    manifests = [vendor_nodes] if vendor_nodes else []
    plugin = stack.plugin_component(cluster, inventories, manifests=manifests, config=config)
    _start_recorded(cluster, plugin)
    extra = f" and the vendor nodes of {vendor_nodes}" if vendor_nodes else ""
    typer.echo(f"hami device-plugin --simulate for {', '.join(inventories)}{extra}")


def _start_recorded(cluster: LocalCluster, component: Component) -> None:
    component.start(die_with_parent=False)
    stack.record_components(cluster, [component])


async def _create_nodes(cluster: LocalCluster, names: Sequence[str]) -> None:
    api = _api(cluster.kubeconfig)
    try:
        for node in names:
            await stack.create_node(api, node)
    finally:
        await api.close()


async def _populate(
    cluster: LocalCluster, port: int, nodes: Sequence[str], plan: Plan, timeout: float
) -> list[Placement]:
    api = _api(cluster.kubeconfig)
    try:
        await stack.register_webhook(api, port, stack.ca_file(cluster.run_dir))
        typer.echo("mutating webhook registered by URL (caBundle = the cluster CA)")
        await stack.wait_registered(api, nodes)
        await stack.wait_manifest_nodes(api, plan.nodes)
        kinds = sorted({v for n in plan.nodes for v in n.vendors})
        others = f" and {', '.join(kinds)} on {len(plan.nodes)} more" if kinds else ""
        typer.echo(
            f"GPUs registered on {len(nodes)} NVIDIA nodes{others}; applying {len(plan.pods)} pods"
        )
        return await apply_and_wait(api, plan.pods, timeout, plan.vendors)
    finally:
        await api.close()


async def apply_and_wait(
    api: KubeAPI,
    manifests: Sequence[dict[str, Any]],
    timeout: float,
    vendors: Mapping[str, Vendor] | None = None,
) -> list[Placement]:
    """Create the pods (and their namespaces), then wait until each is placed or refused."""
    created: list[tuple[str, str]] = []
    rejected: list[Placement] = []
    for manifest in manifests:
        namespace = objects.namespace(manifest) or "default"
        await _ensure_namespace(api, namespace)
        try:
            await api.create(PODS, manifest, namespace)
            created.append((namespace, objects.name(manifest)))
        except KubeAPIError as exc:
            reason = str(exc).strip() or f"HTTP {exc.status}"
            rejected.append(
                Placement(namespace, objects.name(manifest), None, reason, rejected=True)
            )
    deadline = time.monotonic() + timeout
    while True:
        placements = [await placement(api, ns, name, vendors) for ns, name in created]
        if all(p.decided for p in placements) or time.monotonic() >= deadline:
            return placements + rejected
        await asyncio.sleep(0.5)


async def _ensure_namespace(api: KubeAPI, namespace: str) -> None:
    with contextlib.suppress(Conflict):
        await api.create(NAMESPACES, {"metadata": {"name": namespace}})


def _print_usage(cluster: LocalCluster, name: str, placements: Sequence[Placement] = ()) -> None:
    flag = "" if name == "demo" else f" --name {name}"
    waiting = next((p for p in placements if p.node is None and not p.rejected), None)
    example = waiting or next(iter(placements), None)
    pod = f"{example.namespace}/{example.name}" if example else "NAMESPACE/POD"
    live = f"--name {name}"  # its kubeconfig and the config its scheduler runs with
    python = sys.executable
    hami = "hami" if shutil.which("hami") == stack.HAMI else stack.HAMI
    look = (
        "from lightkube import Client; from lightkube.resources.core_v1 import Pod; "
        "[print(p.metadata.namespace, p.metadata.name, p.spec.nodeName, "
        "(p.metadata.annotations or {}).get('hami.io/vgpu-devices-allocated')) "
        "for p in Client().list(Pod, namespace='*')]"
    )
    typer.echo(
        "\nthe cluster keeps running (kubectl is not needed):\n"
        f"  look again:  {hami} demo show{flag}\n"
        f"  add pods:    {hami} demo apply{flag} my-pods.yaml   (limits: nvidia.com/gpu, "
        "gpumem, gpucores; other vendors as in examples/vendors/pods.yaml)\n"
        f'  the API:     eval "$({hami} cluster env --name {name})"\n'
        f'               {python} -c "{look}"\n'
        f"  why it waits: {hami} explain {pod} {live}\n"
        f"  web UI:      {hami} webui {live}   (then open http://127.0.0.1:8090)\n"
        f"  logs:        {cluster.run_dir / 'logs'}  (hami-scheduler.log, device-plugin.log, …)\n"
        f"  stop it:     {hami} {_down_command(name)}   (or: {hami} cluster down --name {name})"
    )


def _down_command(name: str) -> str:
    return "demo down" + ("" if name == "demo" else f" --name {name}")


def _running_kubeconfig(name: str) -> Path:
    try:
        state = read_state(_run_dir(name))
    except ClusterError as exc:
        raise _fail(str(exc)) from None
    if state is None or not state.running:
        raise _fail(f"the demo {name!r} is not running; start it with `hami demo up`")
    return state.kubeconfig


def _running_vendors(name: str) -> dict[str, Vendor]:
    """The vendors the running demo's scheduler has (NVIDIA alone for an older demo)."""
    path = _run_dir(name) / SCHEDULER_CONFIG
    try:
        return registry.build(load_config(path if path.is_file() else None))
    except ConfigError as exc:
        raise _fail(str(exc)) from None


@app.command()
def down(name: NameOption = "demo") -> None:
    """Stop the demo: device plugin, scheduler, then the control plane; delete its files."""
    try:
        state = read_state(_run_dir(name))
    except ClusterError as exc:
        raise _fail(str(exc)) from None
    if state is None:
        typer.echo(f"no demo {name!r} is recorded in {_run_dir(name)}")
        return
    stopped = stop_recorded(state)
    shutil.rmtree(state.run_dir, ignore_errors=True)
    typer.echo(f"stopped {', '.join(stopped) if stopped else 'nothing (already gone)'}")


@app.command()
def show(
    name: NameOption = "demo",
    namespace: Annotated[str | None, typer.Option(help="Only this namespace.")] = None,
) -> None:
    """Print every pod of the demo cluster: its node and GPU slices, or why it waits."""
    kubeconfig = _running_kubeconfig(name)
    placements, mig = asyncio.run(_all_placements(kubeconfig, namespace, _running_vendors(name)))
    typer.echo("\n".join(render(placements)) if placements else "no pods")
    if mig:
        typer.echo("\n" + "\n".join(mig))


async def _all_placements(
    kubeconfig: Path, namespace: str | None, vendors: Mapping[str, Vendor]
) -> tuple[list[Placement], list[str]]:
    """Every pod's placement (of ``namespace``), and the MIG GPUs' lines (all namespaces)."""
    api = _api(kubeconfig)
    try:
        pods = (await api.list(PODS, namespace=namespace)).items
        found = sorted((objects.namespace(p) or "default", objects.name(p)) for p in pods)
        placements = [await placement(api, ns, pod, vendors) for ns, pod in found]
        everyone = (await api.list(PODS)).items if namespace else pods
        gpus, problems = mig_gpus((await api.list(NODES)).items, everyone, vendors)
        return placements, render_mig(gpus, problems)
    finally:
        await api.close()


@app.command()
def apply(
    file: Annotated[Path, typer.Argument(help="Pods as Kubernetes YAML.")],
    name: NameOption = "demo",
    timeout: TimeoutOption = 30.0,
) -> None:
    """Create the pods in FILE on the demo cluster and print where they went."""
    kubeconfig = _running_kubeconfig(name)
    manifests = _load_pods(file)
    vendors = _running_vendors(name)
    placements = asyncio.run(_apply(kubeconfig, manifests, timeout, vendors))
    typer.echo("\n".join(render(placements)))
    refused = [p for p in placements if p.rejected]
    if refused:
        typer.echo(f"{len(refused)} of {len(placements)} pods were rejected", err=True)
        raise typer.Exit(code=1)


async def _apply(
    kubeconfig: Path,
    manifests: Sequence[dict[str, Any]],
    timeout: float,
    vendors: Mapping[str, Vendor],
) -> list[Placement]:
    api = _api(kubeconfig)
    try:
        return await apply_and_wait(api, manifests, timeout, vendors)
    finally:
        await api.close()
