"""The MIG backend port: what the manager needs from NVML, per physical GPU (by UUID).

Both backends (:mod:`.fake`, :mod:`.nvml`) raise :class:`~.catalog.MigError` with NVML's
return code, so the manager handles a real driver's refusals and the fake's alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hami.api.types import MigPlacement, MigProfile


@dataclass(frozen=True, slots=True)
class MigInstance:
    """A GPU instance as NVML lists it, with its compute instance (None: the GI has none)."""

    gpu_uuid: str
    profile: str
    placement: MigPlacement
    gpu_instance_id: int
    compute_instance_id: int | None = None
    mig_uuid: str | None = None


class MigBackend(Protocol):
    def capable(self, gpu: str) -> bool:
        """The GPU supports MIG at all."""
        ...

    def enabled(self, gpu: str) -> bool:
        """MIG mode is on now."""
        ...

    def set_enabled(self, gpu: str, enabled: bool) -> None:
        """Toggle MIG mode; IN_USE while instances or processes exist."""
        ...

    def profiles(self, gpu: str) -> tuple[MigProfile, ...]:
        """Every GPU-instance profile the GPU offers, with its possible placements."""
        ...

    def instances(self, gpu: str) -> Sequence[MigInstance]:
        """The GPU instances that exist now (one entry per GI; first CI only)."""
        ...

    def create_gpu_instance(self, gpu: str, profile: str, placement: MigPlacement) -> int:
        """Create a GI of ``profile`` at exactly ``placement``; returns its id."""
        ...

    def create_compute_instance(self, gpu: str, gpu_instance_id: int) -> MigInstance:
        """Create the full-size CI in the GI; returns the instance with its MIG UUID."""
        ...

    def destroy_compute_instance(self, gpu: str, gpu_instance_id: int, ci: int) -> None: ...

    def destroy_gpu_instance(self, gpu: str, gpu_instance_id: int) -> None:
        """IN_USE while the GI still has compute instances."""
        ...

    def busy(self, gpu: str) -> bool:
        """Compute processes run on the GPU (or any of its MIG devices)."""
        ...
