"""`hami demo up|down|show|apply`: the whole stack on a local control plane (`make demo`).

``up`` starts the control plane (kube-scheduler with the ``hami-scheduler`` profile and our
extender), ``hami scheduler`` (HTTPS, webhook registered by URL with the cluster CA), simulated
GPU nodes served by ``hami device-plugin --simulate``, applies the example pods and prints where
each landed and which slices it got. Everything keeps running, recorded in the cluster's
``state.json``, so ``hami demo down`` and ``hami cluster down --name demo`` both stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, cast

import typer
import yaml

from hami.cluster import paths
from hami.cluster.control_plane import LocalCluster
from hami.cluster.errors import ClusterError
from hami.cluster.ports import free_port
from hami.cluster.process import Component
from hami.cluster.state import read_state, stop_recorded
from hami.demo import stack
from hami.demo.chart import ChartError
from hami.demo.report import Placement, placement, render
from hami.k8s import objects
from hami.k8s.api import NAMESPACES, PODS, Conflict, KubeAPI, KubeAPIError
from hami.k8s.client import LightkubeAPI, load_kubeconfig

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
    name: NameOption = "demo",
    timeout: TimeoutOption = 60.0,
) -> None:
    """Start the demo (replacing a running one), place the pods and print where they went."""
    inventories = {node: inventory_dir / file for node, file in DEMO_NODES.items()}
    missing = [str(p) for p in (config, pods, *inventories.values()) if not p.is_file()]
    if missing:
        raise _fail(f"not found: {', '.join(missing)} (run from the repository root)")
    manifests = _load_pods(pods)
    _stop_previous(name)
    began = time.monotonic()
    cluster, port = _start_control_plane(name)
    try:
        _start_services(cluster, port, config, inventories)
        placements = asyncio.run(_populate(cluster, port, list(inventories), manifests, timeout))
    except (ClusterError, stack.StackError, KubeAPIError) as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo(f"the demo is left running for inspection; logs: {cluster.run_dir / 'logs'}")
        typer.echo(f"stop it: hami {_down_command(name)}")
        raise typer.Exit(code=1) from None
    typer.echo(f"\nthe demo is up in {time.monotonic() - began:.1f} s; where the pods landed:")
    typer.echo("\n".join(render(placements)))
    _print_usage(cluster, name)


def _load_pods(path: Path) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise _fail(f"{path}: {exc}") from None
    bad = [d for d in docs if not isinstance(d, dict) or d.get("kind", "Pod") != "Pod"]
    if bad:
        raise _fail(f"{path}: only Pods can be applied (found {len(bad)} other documents)")
    return cast(list[dict[str, Any]], docs)


def _stop_previous(name: str) -> None:
    try:
        state = read_state(_run_dir(name))
    except ClusterError as exc:
        raise _fail(str(exc)) from None
    if state is not None and state.running:
        typer.echo(f"stopping the running demo {name!r} first")
        stop_recorded(state)
    shutil.rmtree(_run_dir(name), ignore_errors=True)


def _start_control_plane(name: str) -> tuple[LocalCluster, int]:
    port = free_port()
    try:
        options = stack.cluster_options(_run_dir(name), f"hami-{name}", port, detach=True)
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
    cluster: LocalCluster, port: int, config: Path, inventories: dict[str, Path]
) -> None:
    scheduler = stack.scheduler_component(cluster, port, config=config.resolve())
    _start_recorded(cluster, scheduler)
    stack.start_scheduler(scheduler, port, stack.ca_file(cluster.run_dir), detach=True)
    typer.echo(f"hami scheduler serving https://127.0.0.1:{port} (/filter /bind /webhook)")
    asyncio.run(_create_nodes(cluster, list(inventories)))
    _start_recorded(cluster, stack.plugin_component(cluster, inventories))
    typer.echo(f"hami device-plugin --simulate for {', '.join(inventories)}")


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
    cluster: LocalCluster,
    port: int,
    nodes: Sequence[str],
    manifests: Sequence[dict[str, Any]],
    timeout: float,
) -> list[Placement]:
    api = _api(cluster.kubeconfig)
    try:
        await stack.register_webhook(api, port, stack.ca_file(cluster.run_dir))
        typer.echo("mutating webhook registered by URL (caBundle = the cluster CA)")
        await stack.wait_registered(api, nodes)
        typer.echo(f"GPUs registered on {len(nodes)} nodes; applying {len(manifests)} pods")
        return await apply_and_wait(api, manifests, timeout)
    finally:
        await api.close()


async def apply_and_wait(
    api: KubeAPI, manifests: Sequence[dict[str, Any]], timeout: float
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
            rejected.append(Placement(namespace, objects.name(manifest), None, f"rejected: {exc}"))
    deadline = time.monotonic() + timeout
    while True:
        placements = [await placement(api, ns, name) for ns, name in created]
        if all(p.decided for p in placements) or time.monotonic() >= deadline:
            return placements + rejected
        await asyncio.sleep(0.5)


async def _ensure_namespace(api: KubeAPI, namespace: str) -> None:
    with contextlib.suppress(Conflict):
        await api.create(NAMESPACES, {"metadata": {"name": namespace}})


def _print_usage(cluster: LocalCluster, name: str) -> None:
    flag = "" if name == "demo" else f" --name {name}"
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
        f"  add pods:    {hami} demo apply{flag} my-pods.yaml   (GPU limits: nvidia.com/gpu, "
        "gpumem, gpucores)\n"
        f'  the API:     eval "$({hami} cluster env --name {name})"\n'
        f'               {python} -c "{look}"\n'
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
    placements = asyncio.run(_all_placements(kubeconfig, namespace))
    typer.echo("\n".join(render(placements)) if placements else "no pods")


async def _all_placements(kubeconfig: Path, namespace: str | None) -> list[Placement]:
    api = _api(kubeconfig)
    try:
        pods = (await api.list(PODS, namespace=namespace)).items
        keys = sorted((objects.namespace(p) or "default", objects.name(p)) for p in pods)
        return [await placement(api, ns, pod) for ns, pod in keys]
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
    placements = asyncio.run(_apply(kubeconfig, manifests, timeout))
    typer.echo("\n".join(render(placements)))


async def _apply(
    kubeconfig: Path, manifests: Sequence[dict[str, Any]], timeout: float
) -> list[Placement]:
    api = _api(kubeconfig)
    try:
        return await apply_and_wait(api, manifests, timeout)
    finally:
        await api.close()
