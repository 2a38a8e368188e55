"""`hami device-plugin`: the NVIDIA device plugin (one node) or ``--simulate`` (many kwok nodes:
NVIDIA ones from fake inventories, any vendor's from Node manifests).

Flags override the per-node JSON, which overrides the shared device-config.yaml (see
:mod:`hami.agent.config.settings`). Environment aliases follow HAMi's chart (``NODE_NAME``,
``DEVICE_LIST_STRATEGY``, ``HOOK_PATH``, ``ENABLE_TOPOLOGY_SCORE``, …).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hami import aio
from hami.agent.config.loading import load_node_file, load_shared, node_config
from hami.agent.config.settings import Settings, validate
from hami.agent.discovery.health import XidPolicy
from hami.agent.discovery.port import open_backend
from hami.agent.errors import AgentError, ConfigError
from hami.agent.mig.manager import fake_mig_state
from hami.core.vendor import Vendor
from hami.k8s.api import KubeAPIError

if TYPE_CHECKING:
    from hami.k8s.port import KubeAPIPort

log = logging.getLogger(__name__)

app = typer.Typer(
    help="The NVIDIA device plugin; --simulate plays nodes of every vendor.", add_completion=False
)

Opt = typer.Option


# CLI parameter → `NodeConfig` field (node settings; override the per-node JSON and the yaml).
NODE_FLAGS = (
    ("resource_name", "resource_name"),
    ("device_split_count", "split_count"),
    ("device_memory_scaling", "memory_scaling"),
    ("device_cores_scaling", "core_scaling"),
    ("preconfigured_device_memory", "preconfigured_memory"),
    ("lib_cuda_log_level", "lib_cuda_log_level"),
    ("disable_core_limit", "disable_core_limit"),
    ("enable_numa_topology", "enable_numa_topology"),
    ("preferred_allocation", "preferred_allocation"),
    ("operating_mode", "operating_mode"),
)
# CLI parameter → `Settings` field (process settings).
PROCESS_FLAGS = (
    ("socket_dir", "socket_dir"),
    ("hook_path", "hook_path"),
    ("lock_dir", "lock_dir"),
    ("device_list_strategy", "list_strategies"),
    ("device_id_strategy", "id_strategy"),
    ("pass_device_specs", "pass_device_specs"),
    ("gdrcopy_enabled", "gdrcopy"),
    ("gds_enabled", "gds"),
    ("mofed_enabled", "mofed"),
    ("cdi_annotation_prefix", "cdi_annotation_prefix"),
    ("cdi_spec_dir", "cdi_spec_dir"),
    ("enable_topology_score", "topology_score"),
    ("register_interval", "register_interval"),
    ("mig_state_dir", "mig_state_dir"),
)

Files = tuple[Path | None, Path | None]  # (shared device-config.yaml, per-node JSON)


def _settings_for(
    node_name: str, files: Files, process: dict[str, Any], flags: dict[str, Any]
) -> Settings:
    shared, per_node = files
    node_file = load_node_file(per_node) if per_node else None
    node = node_config(load_shared(shared), node_file, node_name, flags)
    return validate(Settings(node_name=node_name, node=node, **process))


def _process_settings(values: dict[str, Any]) -> dict[str, Any]:
    """Only the flags that were given (None → the `Settings` default)."""
    out = {k: v for k, v in values.items() if v is not None}
    if "list_strategies" in out:
        out["list_strategies"] = tuple(
            s.strip() for s in out["list_strategies"].split(",") if s.strip()
        )
    return out


async def _serve(
    settings: Settings,
    backend: str,
    inventory: Path | None,
    kubeconfig: str | None,
    policy: XidPolicy,
) -> None:
    from hami.agent.plugin import NodeAgent

    mig_state = fake_mig_state(settings)
    source = open_backend(backend, inventory, settings.node_name, mig_state)
    kube = _kube(kubeconfig)
    node_agent = NodeAgent(settings, source, kube, policy=policy)
    agent = asyncio.create_task(node_agent.run())
    stopping: list[asyncio.Task[None]] = []

    async def stop() -> None:
        # the node's handshake says Deleted_ and the pods bound here are served before the
        # socket closes (docs/device-plugin.md, "Restarts"); then the agent's last sweep runs
        try:
            await node_agent.withdraw()
        finally:
            agent.cancel()

    def on_signal() -> None:
        if stopping:  # a second signal: stop now
            agent.cancel()
        else:
            stopping.append(asyncio.create_task(stop()))

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await agent
    except asyncio.CancelledError:
        log.info("node %s: stopped by a signal", settings.node_name)
    finally:
        for task in stopping:
            task.cancel()
        source.close()
        await kube.close()


def _kube(kubeconfig: str | None) -> KubeAPIPort:
    """The device plugin's port on the API server the kubeconfig names."""
    from hami.k8s.client import LightkubeAPI, load_kubeconfig
    from hami.k8s.port import KubeAPIPort

    try:
        config = load_kubeconfig(Path(kubeconfig) if kubeconfig else None)
        return KubeAPIPort(LightkubeAPI(config, user_agent="hami-device-plugin"))
    except KubeAPIError as exc:
        raise ConfigError(str(exc)) from None


Targets = tuple[list[str], list[Path]]  # (--nodes items, --node-manifests files)


def _vendors(shared: Path | None) -> dict[str, Vendor]:
    """Every vendor the shared config file enables (NVIDIA alone without a file)."""
    from hami.config import load_config
    from hami.vendors import registry

    return dict(registry.build(load_config(shared)))


async def _simulate(
    targets: Targets,
    inventory: Path | None,
    kubeconfig: str | None,
    settings_for: Any,
    policy: XidPolicy,
    shared: Path | None,
) -> None:
    from hami.agent.simulation.simulator import SIM_POD_PHASES, Simulator, check_plan, parse_nodes
    from hami.agent.simulation.vendornodes import ManifestPlayer
    from hami.k8s.manifests import load_manifests

    items, manifest_files = targets
    simulated = parse_nodes(items, inventory)
    vendors = _vendors(shared) if manifest_files else {}
    manifests = load_manifests(manifest_files, vendors)
    check_plan(simulated, [n.name for n in manifests])
    kube = _kube(kubeconfig)
    player = None
    if manifests:
        interval = settings_for(manifests[0].name).register_interval  # a process setting
        player = ManifestPlayer(
            kube, manifests, vendors, interval=interval, pod_phases=SIM_POD_PHASES
        )
    try:
        await Simulator(kube, simulated, settings_for, policy, player).run()
    finally:
        await kube.close()


@app.command()
def device_plugin_main(
    node_name: Annotated[
        str | None, Opt(envvar=["NODE_NAME", "NodeName"], help="This node.")
    ] = None,
    config_file: Annotated[
        Path | None, Opt(help="Shared device-config.yaml (nvidia section).")
    ] = None,
    node_config_file: Annotated[
        Path | None, Opt(envvar="NODE_CONFIG_FILE", help='Per-node JSON {"nodeconfig":[…]}.')
    ] = None,
    backend: Annotated[str, Opt(help="Discovery backend: nvml or fake.")] = "nvml",
    inventory: Annotated[Path | None, Opt(help="Fake backend inventory (YAML).")] = None,
    kubeconfig: Annotated[
        str | None, Opt(envvar="KUBECONFIG", help="kubeconfig (default: in-cluster).")
    ] = None,
    socket_dir: Annotated[Path | None, Opt(help="kubelet device-plugin directory.")] = None,
    hook_path: Annotated[
        Path | None, Opt(envvar="HOOK_PATH", help="HAMi-core install prefix.")
    ] = None,
    lock_dir: Annotated[
        Path | None,
        Opt(
            help="Host directory mounted at /tmp/vgpulock in every GPU container (HAMi-core's "
            "cross-process lock files); created 0777.  [default: /tmp/vgpulock]"
        ),
    ] = None,
    resource_name: Annotated[str | None, Opt(help="Extended resource to advertise.")] = None,
    device_split_count: Annotated[int | None, Opt(help="Tasks per GPU.")] = None,
    device_memory_scaling: Annotated[float | None, Opt(help="Registered memory factor.")] = None,
    device_cores_scaling: Annotated[float | None, Opt(help="Registered core factor.")] = None,
    preconfigured_device_memory: Annotated[
        int | None, Opt(help="MiB for unified-memory GPUs.")
    ] = None,
    lib_cuda_log_level: Annotated[str | None, Opt(help="LIBCUDA_LOG_LEVEL for containers.")] = None,
    disable_core_limit: Annotated[
        bool | None,
        Opt(
            "--disable-core-limit/--enable-core-limit",
            envvar="DISABLE_CORE_LIMIT",
            help="Do not limit SM usage in containers (GPU_CORE_UTILIZATION_POLICY=disable).  "
            "[default: enabled]",
        ),
    ] = None,
    enable_numa_topology: Annotated[
        bool | None,
        Opt(
            "--enable-numa-topology/--disable-numa-topology",
            help="Give kubelet NUMA hints for the GPUs.  [default: disabled]",
        ),
    ] = None,
    preferred_allocation: Annotated[
        bool | None,
        Opt(
            "--enable-preferred-allocation/--disable-preferred-allocation",
            help="Offer kubelet GetPreferredAllocation (the devices the scheduler chose).  "
            "[default: disabled]",
        ),
    ] = None,
    operating_mode: Annotated[str | None, Opt(help="hami-core or mig.")] = None,
    device_list_strategy: Annotated[
        str | None,
        Opt(
            envvar="DEVICE_LIST_STRATEGY",
            help="envvar, volume-mounts, cdi-annotations, cdi-cri (comma list).",
        ),
    ] = None,
    device_id_strategy: Annotated[str | None, Opt(help="uuid or index.")] = None,
    pass_device_specs: Annotated[
        bool | None, Opt("--pass-device-specs", help="Also pass the /dev/nvidia* device nodes.")
    ] = None,
    gdrcopy_enabled: Annotated[
        bool | None, Opt("--gdrcopy-enabled", help="Set NVIDIA_GDRCOPY=enabled in containers.")
    ] = None,
    gds_enabled: Annotated[
        bool | None, Opt("--gds-enabled", help="Set NVIDIA_GDS=enabled in containers.")
    ] = None,
    mofed_enabled: Annotated[
        bool | None, Opt("--mofed-enabled", help="Set NVIDIA_MOFED=enabled in containers.")
    ] = None,
    cdi_annotation_prefix: Annotated[
        str | None,
        Opt(
            help="Prefix of the cdi-annotations strategy's pod annotation.  [default: cdi.k8s.io/]"
        ),
    ] = None,
    cdi_spec_dir: Annotated[
        Path | None,
        Opt(help="Where the CDI spec of this node's GPUs is written.  [default: /var/run/cdi]"),
    ] = None,
    enable_topology_score: Annotated[
        bool | None,
        Opt(
            "--enable-topology-score",
            envvar="ENABLE_TOPOLOGY_SCORE",
            help="Register GPU pair link scores (hami.io/node-nvidia-score) for the scheduler.",
        ),
    ] = None,
    register_interval: Annotated[
        float | None, Opt(help="Seconds between registration checks.")
    ] = None,
    mig_state_dir: Annotated[
        Path | None,
        Opt(
            help="MIG mode: where the ledger of the MIG instances this plugin made is kept "
            "(and, with the fake backend, the fake GPUs' MIG state).  "
            "[default: <hook-path>/vgpu/mig; in memory with --simulate]"
        ),
    ] = None,
    disable_healthchecks: Annotated[str, Opt(envvar="DP_DISABLE_HEALTHCHECKS", hidden=True)] = "",
    enable_healthchecks: Annotated[str, Opt(envvar="DP_ENABLE_HEALTHCHECKS", hidden=True)] = "",
    simulate: Annotated[
        bool,
        Opt(
            "--simulate",
            help="Play many kwok nodes: NVIDIA from fake inventories (--nodes), any vendor "
            "from Node manifests (--node-manifests).",
        ),
    ] = False,
    nodes: Annotated[
        list[str] | None, Opt(help="--simulate: name[=inventory.yaml], repeatable or comma list.")
    ] = None,
    node_manifests: Annotated[
        list[Path] | None,
        Opt(
            help="--simulate: Node manifests of any vendor (YAML, as `hami sim` reads them; "
            "vendor sections from --config-file), repeatable."
        ),
    ] = None,
    verbose: Annotated[int, Opt("-v", count=True, help="More logging.")] = 0,
) -> None:
    """Run the NVIDIA device plugin (kubelet API v1beta1), or play kwok nodes of every vendor (--simulate)."""
    args = dict(locals())
    logging.basicConfig(
        level=logging.DEBUG if verbose > 1 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    flags = {field: args[param] for param, field in NODE_FLAGS}
    process = _process_settings({field: args[param] for param, field in PROCESS_FLAGS})
    files = (config_file, node_config_file)
    policy = XidPolicy.from_env(disable_healthchecks, enable_healthchecks)
    source = (backend, inventory, kubeconfig)
    try:
        targets = (nodes or [], node_manifests or [])
        _run(simulate, node_name, targets, source, files, process, flags, policy)
    except (AgentError, ConfigError, KubeAPIError) as exc:
        typer.echo(f"hami device-plugin: {exc}", err=True)
        raise typer.Exit(2) from None


def _run(
    simulate: bool,
    node_name: str | None,
    targets: Targets,
    source: tuple[str, Path | None, str | None],
    files: Files,
    process: dict[str, Any],
    flags: dict[str, Any],
    policy: XidPolicy,
) -> None:
    backend, inventory, kubeconfig = source
    if simulate:

        def settings_for(name: str) -> Settings:
            return replace(_settings_for(name, files, process, flags), prepare_host=False)

        runner = _simulate(targets, inventory, kubeconfig, settings_for, policy, files[0])
    else:
        if not node_name:
            raise ConfigError("--node-name (or env NODE_NAME) is required")
        settings = _settings_for(node_name, files, process, flags)
        runner = _serve(settings, backend, inventory, kubeconfig, policy)
    with contextlib.suppress(KeyboardInterrupt):
        aio.run(runner)
