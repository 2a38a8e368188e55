"""The device-discovery port: what the plugin needs to know about the node's GPUs.

Backends: :mod:`hami.agent.discovery.nvml` (real NVML, imported lazily) and :mod:`hami.agent.discovery.fake`
(a YAML inventory, for tests, the demo and kwok nodes). :func:`open_backend` is the one factory;
backends are imported inside it so neither pydantic/yaml nor pynvml is needed by the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Final, Protocol

from hami.agent.mig.port import MigBackend
from hami.agent.values import Gpu, HealthEvent
from hami.api.types import PairScores

# Pair scores of PCIe topology levels and NVLink lanes (wire-format.md §3.9).
LINK_SCORES: Final = MappingProxyType(
    {"system": 10, "node": 20, "hostbridge": 30, "multiple": 40, "single": 50, "internal": 60}
)
NVLINK_SCORE: Final = 100


class DeviceSource(Protocol):
    """A node's GPUs, their topology and their health events."""

    def gpus(self) -> Sequence[Gpu]:
        """Every GPU on the node, in index order (filtering happens later)."""
        ...

    def pair_scores(self) -> Sequence[PairScores]:
        """Link scores between GPU pairs (`hami.io/node-nvidia-score`)."""
        ...

    def health_events(self) -> AsyncIterator[HealthEvent]:
        """Health changes as they happen; runs until cancelled."""
        ...

    def close(self) -> None: ...

    def mig(self) -> MigBackend:
        """The node's MIG backend (create, list and destroy instances)."""
        ...


def open_backend(
    kind: str, inventory: Path | None = None, node_name: str = "", mig_state: Path | None = None
) -> DeviceSource:
    """``fake`` (needs ``inventory``; ``mig_state``: where its MIG state persists) or ``nvml``."""
    if kind == "fake":
        from hami.agent.discovery.fake import FakeSource, load_inventory
        from hami.agent.errors import ConfigError

        if inventory is None:
            raise ConfigError("--backend fake needs --inventory <file.yaml>")
        return FakeSource(load_inventory(inventory, node_name), path=inventory, mig_state=mig_state)
    if kind == "nvml":
        from hami.agent.discovery.nvml import NvmlSource

        return NvmlSource.open()
    from hami.agent.errors import ConfigError

    raise ConfigError(f"--backend: unknown backend {kind!r} (expected nvml or fake)")
