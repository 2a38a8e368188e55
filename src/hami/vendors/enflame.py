"""Enflame: exclusive whole GCUs learnt from node capacity (`GCU`, wire-format.md §4.10).

DRS slices (`Enflame`) are not implemented yet: they consume several slots per allocation,
which the core's one-slot-per-pick accounting cannot express.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hami.api import keys
from hami.api.types import PodDevices
from hami.core.model import ContainerRequest, Device
from hami.core.slicefit import SliceRules, slice_fit
from hami.core.status import Unfit
from hami.core.vendor import Admission, Candidate, FitContext, NodeLockSpec, Pick
from hami.vendors import common
from hami.vendors.config import CountConfig

_RULES = SliceRules(
    gates=False, mig=False, topology=False, quota=False, label=keys.ENFLAME_GCU_VENDOR
)


def _default() -> CountConfig:
    return CountConfig("enflame.com/gcu")


@dataclass(frozen=True, slots=True)
class EnflameGcuVendor:
    config: CountConfig = field(default_factory=_default)

    @property
    def key(self) -> str:
        return keys.ENFLAME_GCU_VENDOR

    @property
    def node_lock(self) -> NodeLockSpec | None:
        """HAMi's Enflame GCU binds without a node lock (§3.13)."""
        return None

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        return common.admit_if_counted(self, self.config.resource_count_name, container, where)

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        return common.whole_devices(
            self.key,
            container,
            self.config.resource_count_name,
            where,
            memreq=100,
            mem_pct=100,
            coresreq=100,
        )

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        return ()  # registered through node capacity

    def capacity_devices(
        self,
        node: str,
        capacity: Mapping[str, str],
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
    ) -> tuple[Device, ...]:
        cards = common.capacity_of(capacity, self.config.resource_count_name)
        return tuple(
            Device(
                uuid=f"{node}-GCU-{i}",
                vendor=self.key,
                type=self.key,
                count=1,
                memory=100,
                cores=100,
                index=i,
            )
            for i in range(max(cards, 0))
        )

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        return slice_fit(candidates, request, ctx, _RULES)

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        return common.device_list_annotations(
            devices, keys.ENFLAME_GCU_TO_ALLOCATE, keys.ENFLAME_GCU_ALLOCATED
        )

    def allocated_devices(self, annotations: Mapping[str, str]) -> PodDevices | None:
        return common.decode_allocated(annotations, keys.ENFLAME_GCU_ALLOCATED)
