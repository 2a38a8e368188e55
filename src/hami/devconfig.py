"""Which device config a tool reads: the one the scheduler runs with (issue #18).

`hami explain`, `hami webui` and `hami sim` predict or show what the scheduler does, so by
default they read the scheduler's own device config, in this order:

1. ``--config FILE``;
2. ``--name NAME``: the local cluster NAME (`hami demo up`, `hami cluster up`): the config its
   scheduler was started with, from its run directory;
3. the chart's device ConfigMap in the live cluster (label
   ``app.kubernetes.io/component=hami-scheduler``, key ``device-config.yaml``);
4. else the vendors learnt from the nodes' registrations: every vendor whose devices a node
   registers (annotations or capacity), at its defaults.

`Resolved.source` says which, so that a tool can tell its user.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from hami import yamlio
from hami.api.errors import WireFormatError
from hami.config import load_config, parse_config
from hami.core.config import SchedulerConfig
from hami.core.errors import ConfigError
from hami.core.nodes import node_from_manifest
from hami.core.vendor import Vendor
from hami.k8s.api import NODES, Kind, KubeAPI, KubeAPIError
from hami.vendors import registry
from hami.vendors.config import (
    DEFAULT_ILUVATAR_CHIPS,
    DEFAULT_VNPUS,
    IluvatarChip,
    VendorAwareConfig,
    VendorSettings,
    VnpusConfig,
)

CONFIG_MAPS = Kind("configmaps", "api/v1", True, "ConfigMap")
DEVICE_CONFIG_KEY = "device-config.yaml"
SCHEDULER_SELECTOR = "app.kubernetes.io/component=hami-scheduler"
RUN_CONFIG = "scheduler-config.yaml"  # what `hami demo up` writes into the run directory

Manifest = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Resolved:
    config: SchedulerConfig
    source: str  # where the config came from, in words


def from_file(path: Path) -> Resolved:
    return Resolved(load_config(path), str(path))


def local_cluster(name: str) -> tuple[Path, Resolved | None]:
    """The kubeconfig of the local cluster ``name`` and the config its scheduler runs with
    (None when its run directory holds none). Raises ConfigError when there is no such cluster."""
    from hami.cluster.paths import run_root
    from hami.cluster.state import read_state

    run_dir = run_root() / name
    state = read_state(run_dir)
    if state is None:
        raise ConfigError(f"--name {name}: no local cluster of that name ({run_dir})")
    config = run_dir / RUN_CONFIG
    return state.kubeconfig, from_file(config) if config.is_file() else None


async def from_cluster(api: KubeAPI) -> Resolved:
    """The chart's device ConfigMap, else the vendors learnt from the nodes."""
    try:
        found = await api.list(CONFIG_MAPS, label_selector=SCHEDULER_SELECTOR)
        maps = [m for m in found.items if DEVICE_CONFIG_KEY in _data(m)]
    except KubeAPIError:
        maps = []  # no right to read ConfigMaps: learn from the nodes
    if maps:
        meta = maps[0].get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        where = f"ConfigMap {meta.get('namespace')}/{meta.get('name')}"
        try:
            data = yamlio.load(_data(maps[0])[DEVICE_CONFIG_KEY])
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: {DEVICE_CONFIG_KEY}: not valid YAML: {exc}") from None
        return Resolved(parse_config(data, f"{where} {DEVICE_CONFIG_KEY}"), where)
    try:
        nodes = await api.list(NODES)
    except KubeAPIError as exc:
        raise ConfigError(f"cannot read the cluster's nodes to learn its vendors: {exc}") from None
    return learnt(nodes.items)


def learnt(nodes: Iterable[Manifest]) -> Resolved:
    """Every vendor whose devices one of ``nodes`` registers, at its defaults (NVIDIA always);
    a node whose registration cannot be read teaches nothing."""
    every = _every()
    present: set[str] = set()
    for manifest in nodes:
        try:
            node = node_from_manifest(manifest, every)
        except WireFormatError:
            continue
        present.update(d.vendor for d in node.devices)
    return Resolved(_config(present), LEARNT)


LEARNT = "the vendors the nodes register (no device config found; their defaults)"


def unenabled(manifest: Manifest, vendors: Mapping[str, Vendor]) -> list[str]:
    """The vendor keys whose devices a node registers that ``vendors`` does not enable (a
    registered node is never "unregistered": it is one the config leaves out)."""
    others = {k: v for k, v in _every().items() if k not in vendors}
    try:
        node = node_from_manifest(manifest, others)
    except WireFormatError:
        return []
    return sorted({d.vendor for d in node.devices})


@functools.cache
def _every() -> dict[str, Vendor]:
    return registry.build(every_vendor())


def every_vendor() -> SchedulerConfig:
    """A device config that enables every vendor at its defaults."""
    return _config(None)


def _config(present: set[str] | None) -> SchedulerConfig:
    """The sections at their defaults whose vendors are ``present`` (None: all)."""
    sections: dict[str, object] = {}
    for row in registry.TABLE[1:]:  # NVIDIA's section is `SchedulerConfig.nvidia`
        if row.section == "iluvatars":
            chips = tuple(IluvatarChip.named(c) for c in DEFAULT_ILUVATAR_CHIPS)
            section: object = tuple(c for c in chips if present is None or c.common_word in present)
        elif row.section == "vnpus":
            npus = tuple(c for c in DEFAULT_VNPUS if present is None or c.common_word in present)
            section = VnpusConfig(configs=npus) if npus else ()
        else:
            keys = row.vendor_keys()
            section = row.config() if present is None or present.intersection(keys) else ()
        if section != ():
            sections[row.section] = section
    return VendorAwareConfig(vendors=VendorSettings(sections=sections))


def _data(manifest: Manifest) -> Mapping[str, str]:
    data = manifest.get("data")
    return data if isinstance(data, Mapping) else {}


def for_files(config: Path | None, name: str | None, nodes: Iterable[Manifest]) -> Resolved:
    """For sim input files: ``--config``, else the local cluster's, else learnt from
    ``nodes`` (the file's Nodes)."""
    if config is not None:
        return from_file(config)
    if name is not None:
        _, resolved = local_cluster(name)
        if resolved is not None:
            return resolved
    return learnt(nodes)


def live_target(
    kubeconfig: Path | None, config: Path | None, name: str | None
) -> tuple[Path | None, Resolved | None]:
    """For a live cluster: the kubeconfig to use (``--name``'s when none is given) and the
    config when ``--config`` or the local cluster gives one (None: ask the cluster)."""
    resolved = None
    if name is not None:
        cluster_kubeconfig, resolved = local_cluster(name)
        kubeconfig = kubeconfig or cluster_kubeconfig
    if config is not None:
        resolved = from_file(config)
    return kubeconfig, resolved


def unknown_resources(manifest: Manifest, vendors: Mapping[str, Vendor]) -> list[str]:
    """What is wrong with the device resources a pod's containers ask for, one line each:
    a resource that only a vendor the config does not enable knows, or a near miss of a known
    resource name (a typo the scheduler would silently ignore, changing the request)."""
    enabled = {name for v in vendors.values() for name in v.resource_names()}
    everyone = {name: v.key for v in _every().values() for name in v.resource_names()}
    domains = {name.split("/", 1)[0] for name in everyone}
    problems = []
    for where, names in _asked(manifest):
        for name in names:
            if name in enabled or "/" not in name:
                continue
            if name in everyone:
                problems.append(
                    f"{where}: {name}: no enabled vendor knows this resource ({everyone[name]}'s; "
                    "its section is not in the device config)"
                )
            elif name.split("/", 1)[0] in domains:
                close = difflib.get_close_matches(name, sorted(enabled | set(everyone)), 1, 0.8)
                if close:
                    problems.append(f"{where}: {name}: unknown resource — did you mean {close[0]}?")
    return problems


def _asked(manifest: Manifest) -> Iterable[tuple[str, list[str]]]:
    spec = manifest.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    for field in ("initContainers", "containers"):
        containers = spec.get(field)
        for index, container in enumerate(containers if isinstance(containers, list) else []):
            if not isinstance(container, Mapping):
                continue
            resources = container.get("resources")
            resources = resources if isinstance(resources, Mapping) else {}
            names: list[str] = []
            for section in ("limits", "requests"):
                values = resources.get(section)
                names += (
                    [str(k) for k in values if str(k) not in names]
                    if isinstance(values, Mapping)
                    else []
                )
            yield f"container {container.get('name') or f'#{index}'}", names
