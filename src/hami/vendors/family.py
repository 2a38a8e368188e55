"""A vendor as data: its spec row, and the family bases that implement the common methods from it.

A `Spec` says everything about a vendor that is only a name or a number: its key, its
registration, handshake and allocation annotations, its bind lock, which config fields name its
resources, how its requests read (memory unit, core default and bound), its fit rules and how its
compute is shown. The bases turn a spec into the `Vendor` contract:

* `SpecVendor`: registration, health, lock, admission, the standard allocation annotations;
* `SlicedVendor`: count + memory + cores requests, fitted by the shared slice fit;
* `WholeCardVendor`: whole cards learnt from node capacity (a count request);
* `CountVendor`: whole devices on a registration, fitted by count only (memory and cores 0).

A vendor module is then a spec row and only the behaviour that really differs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from hami.api.types import ContainerDevice, PodDevices
from hami.core.model import ContainerRequest, Device, DeviceUsage
from hami.core.slicefit import SliceRules, slice_fit
from hami.core.status import Unfit
from hami.core.vendor import (
    MUTEX_LOCK,
    Admission,
    Candidate,
    FitContext,
    Held,
    NodeLockSpec,
    Pick,
    RegistrationHealth,
    Stamp,
    Vendor,
)
from hami.vendors import common, countfit, resources

# The config fields of a vendor's count, memory and core resource names (in its config type).
COUNT_MEMORY_CORE = ("resource_count_name", "resource_memory_name", "resource_core_name")
COUNT_ONLY = ("resource_count_name", "", "")  # whole cards: a count resource only
# The slice checks of a vendor without cordon, MIG, topology and quota.
PLAIN_RULES = SliceRules(gates=False, mig=False, topology=False, quota=False)


@dataclass(frozen=True, slots=True)
class CapacityRule:
    """How a vendor's cards are learnt from the node's `status.capacity`.

    ``per_card`` > 0: the core resource advertises ``per_card`` units per card, and the memory
    resource (in the vendor's memory unit) is shared evenly among the cards; else the count
    resource advertises whole cards of ``memory`` MiB.
    """

    uuid: str  # device id ``<node>-<uuid>-<i>``
    count: int = 1  # slots (tasks) per card
    memory: int = 0
    per_card: int = 0
    type: str = ""  # the device type ("" = the vendor key)


@dataclass(frozen=True, slots=True)
class Spec:
    """One vendor's data (wire-format.md §4)."""

    key: str
    register: str = ""  # registration annotation; "" = devices come from node capacity
    handshake: str = ""  # handshake annotation; "" = no handshake
    cleanup: str = ""  # removed when a registration turns unhealthy (default: the handshake)
    to_allocate: str | None = None  # to-allocate annotation; None = not written
    allocated: str = ""  # allocated-devices annotation
    lock: NodeLockSpec | None = MUTEX_LOCK  # bind lock; None = binds without one
    names: tuple[str, str, str] = COUNT_MEMORY_CORE  # config fields: count, memory, core
    memory_unit: int = 1  # MiB per unit of the memory resource
    core_default: int = 100  # cores when the container names none
    core_max: int | None = 100  # the core resource's upper bound (None: none)
    split: bool = False  # memory and cores are asked for all devices together
    rules: SliceRules = PLAIN_RULES
    uuid_keys: tuple[str, str] = ("", "")  # count family: use / nouse UUID annotations
    whole: tuple[int, int, int] = (0, 100, 0)  # whole cards: memreq, mem_pct, coresreq
    capacity: CapacityRule | None = None
    stamps: Mapping[str, Stamp] = field(default_factory=dict)
    unit: str = "%"  # how one device's compute reads: "%" of the card, or the vendor's unit
    # how operators name the vendor, and one of its devices (the web UI's filters and labels)
    name: str = ""  # "" = the key
    word: str = "device"
    aliases: tuple[str, ...] = ()


def rules(**changes: Any) -> SliceRules:
    """`PLAIN_RULES` with ``changes`` (a label, the vendor's filter annotations, …)."""
    return replace(PLAIN_RULES, **changes)


class SpecVendor(Vendor):
    """The common methods, read from ``self.spec`` and ``self.config``."""

    __slots__ = ()
    spec: Spec
    config: Any

    @property
    def key(self) -> str:
        return self.spec.key

    def _name(self, which: int) -> str:
        """The configured resource name: 0 count, 1 memory, 2 core ("" when not configured)."""
        field_name = self.spec.names[which]
        return str(getattr(self.config, field_name)) if field_name else ""

    @property
    def count_name(self) -> str:
        return self._name(0)

    def resource_names(self) -> tuple[str, ...]:
        return tuple(name for name in map(self._name, range(3)) if name)

    @property
    def registration_health(self) -> RegistrationHealth | None:
        spec = self.spec
        if not (spec.handshake or spec.cleanup):
            return None
        return RegistrationHealth(self.count_name, spec.handshake, spec.cleanup)

    @property
    def node_lock(self) -> NodeLockSpec | None:
        return self.spec.lock

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        """The container uses the vendor iff its count resource is in limits; the request is
        validated (RequestInvalid on bad values) and nothing is changed."""
        return common.admit_if_counted(self, self.count_name, container, where)

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        register = self.spec.register
        return common.registered_devices(annotations, register, self.key) if register else ()

    def capacity_devices(
        self,
        node: str,
        capacity: Mapping[str, str],
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
    ) -> tuple[Device, ...]:
        rule = self.spec.capacity
        if rule is None:
            return ()
        if rule.per_card:
            units = common.capacity_of(capacity, self._name(2))
            if units <= 0:
                return ()
            memory = common.capacity_of(capacity, self._name(1))
            per_card = memory * self.spec.memory_unit * rule.per_card // units
            cards, cores = -(-units // rule.per_card), rule.per_card
        else:
            cards, per_card, cores = common.capacity_of(capacity, self.count_name), rule.memory, 100
        return tuple(
            self.card(
                i,
                cards,
                annotations,
                uuid=f"{node}-{rule.uuid}-{i}",
                vendor=self.key,
                type=rule.type or self.key,
                count=rule.count,
                memory=per_card,
                cores=cores,
                index=i,
            )
            for i in range(max(cards, 0))
        )

    def card(
        self, position: int, cards: int, annotations: Mapping[str, str], **fields: Any
    ) -> Device:
        """One card learnt from capacity (a vendor with its own device type adds its fields)."""
        return Device(**fields)

    def stamps(self) -> Mapping[str, Stamp]:
        return self.spec.stamps

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        return common.device_list_annotations(devices, self.spec.to_allocate, self.spec.allocated)

    def allocated_devices(self, annotations: Mapping[str, str]) -> PodDevices | None:
        return common.decode_allocated(annotations, self.spec.allocated)

    # a hold takes the whole card (its allocation records no memory or cores of its own)
    whole_hold: ClassVar[bool] = False

    def describe_cores(self, device: ContainerDevice) -> str:
        unit = self.spec.unit
        return f"{device.usedcores}% cores" if unit == "%" else f"{device.usedcores} {unit}"

    def describe(self, device: ContainerDevice) -> str:
        return "the whole card" if self.whole_hold else Vendor.describe(self, device)

    def held(self, device: Device, usage: DeviceUsage) -> Held:
        if self.whole_hold and usage.used > 0:
            return Held(device.memory, device.cores, device.cores, self.spec.unit)
        return Held(usage.usedmem, usage.usedcores, device.cores, self.spec.unit)


class SlicedVendor(SpecVendor):
    """Count + memory + cores per device, fitted by the shared slice fit (§3.8)."""

    __slots__ = ()

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        spec = self.spec
        count, memory_name, core_name = self.count_name, self._name(1), self._name(2)
        nums = resources.bounded(container, count, where, 0, common.INT32_MAX)
        if not nums:
            return None
        units = resources.bounded(container, memory_name, where, 0) or 0
        factor = spec.memory_unit * max(int(getattr(self.config, "memory_factor", 1)), 1)
        memory = common.scaled_memory(units, factor, where, memory_name)
        cores = resources.bounded(container, core_name, where, 0, spec.core_max)
        coresreq = spec.core_default if cores is None else cores
        share = nums if spec.split else 1
        return ContainerRequest(
            vendor=self.key,
            nums=nums,
            memreq=memory // share,
            mem_pct=100 if memory == 0 else 0,
            coresreq=coresreq // share,
        )

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        return slice_fit(candidates, request, ctx, self.spec.rules)


class WholeCardVendor(SlicedVendor):
    """Whole cards learnt from node capacity: a count request of the spec's constant size."""

    __slots__ = ()
    whole_hold = True

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        """Only the count is read; memory and cores are the spec's constants."""
        nums = resources.bounded(container, self.count_name, where, 0, common.INT32_MAX)
        if not nums:
            return None
        memreq, mem_pct, coresreq = self.spec.whole
        return ContainerRequest(self.key, nums, memreq=memreq, mem_pct=mem_pct, coresreq=coresreq)


class CountVendor(SpecVendor):
    """Whole devices fitted by count only: health, UUID filter, slots and mutex (§4.14)."""

    __slots__ = ()
    whole_hold = True
    parse_container = WholeCardVendor.parse_container  # a count; memory 0, 100 % (spec.whole)

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        found, reasons = countfit.usable(
            candidates, ctx, self.spec.uuid_keys, self.blocker(candidates)
        )
        if len(found) < request.nums:
            return countfit.short(reasons, len(found), len(candidates))
        return tuple(countfit.pick(c, self.key) for c in self.order(found, request)[: request.nums])

    def blocker(self, candidates: Sequence[Candidate]) -> countfit.Blocked | None:
        """An extra mutex conflict among ``candidates`` (Vastai's sibling dies); None: none."""
        return None

    def order(self, found: list[Candidate], request: ContainerRequest) -> list[Candidate]:
        """The usable devices in the order to take them."""
        return found
