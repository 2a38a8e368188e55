"""The vendor protocol: what one accelerator family must tell the shared core.

A vendor is one module implementing this protocol plus one line in `hami.vendors.registry`.
Locking, accounting, scoring, ordering and the codec stay in the core and `hami.api`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, cast, runtime_checkable

from hami.api import keys
from hami.api.types import ContainerDevice, PodDevices
from hami.core.model import (
    ContainerRequest,
    Device,
    DeviceUsage,
    MigReservation,
    Node,
    PodOptions,
    PodRequest,
)
from hami.core.status import Unfit


@dataclass(frozen=True, slots=True)
class Candidate:
    """A device offered to a vendor's fit, with its current usage and utilisation score."""

    position: int  # index into the node's device tuple
    device: Device
    usage: DeviceUsage
    cordoned: bool = False


@dataclass(frozen=True, slots=True)
class Pick:
    """One device chosen for one container (several picks of one MIG GPU are possible).

    A pick takes ``slots`` of the device's ``count`` (1 for every vendor but Enflame DRS, whose
    pick takes the chosen profile's slice count). The fit adds exactly that to `DeviceUsage.used`;
    a vendor with ``slots > 1`` must also implement `SlotVendor`, so that usage rebuilt from the
    allocation annotation (which records no slot count) agrees with the fit.

    A non-empty ``task_class`` counts the pick's slots under that class in
    `DeviceUsage.tasks`; the vendor must then implement `TaskClassVendor` and answer the same
    class for the pod, so that rebuilt usage agrees with the fit.
    """

    position: int
    device: ContainerDevice
    mig: MigReservation | None = None
    index: int = 0  # the chosen device's registered index (Cambricon profile, Mthreads, Kunlun…)
    note: str = ""  # vendor-private marker for its pod_annotations (e.g. Ascend `hami-core`)
    slots: int = 1
    task_class: str = ""  # the pod's task class on this device (MetaX sGPU `online`/`offline`)


@dataclass(frozen=True, slots=True)
class QuotaRoom:
    """How much more memory/cores the pod may take in its namespace (None = unlimited)."""

    memory: int | None = None
    cores: int | None = None


@dataclass(frozen=True, slots=True)
class FitContext:
    """What a vendor's fit may consult besides the candidates and the request."""

    options: PodOptions = PodOptions()
    policy: tuple[str, ...] = ("spread",)
    quota_room: QuotaRoom = QuotaRoom()
    # For the quota check of each further device, the pod's collapsed usage is
    # max(floor, held + this container's picks): `held` sums the earlier app containers,
    # `floor` is the largest init container (wire-format.md §7.3).
    held_memory: int = 0
    held_cores: int = 0
    floor_memory: int = 0
    floor_cores: int = 0
    # The pod's annotations, for vendor-specific filters (e.g. `hygon.com/use-gpuuuid`) and modes
    # (`huawei.com/vnpu-mode`); empty when the caller does not pass them.
    annotations: Mapping[str, str] = field(default_factory=dict)
    # This vendor's picks for the pod's earlier containers, in container order, init containers
    # included (HAMi's `allocated` argument of Fit): for rules across containers, such as
    # "every container of the pod on the same card" (Moore Threads, MetaX whole GPU).
    earlier: tuple[Pick, ...] = ()


@dataclass(frozen=True, slots=True)
class Admission:
    """The result of a vendor's admission pass over one container."""

    uses_vendor: bool
    container: Mapping[str, object]
    env: Mapping[str, str] = field(default_factory=dict)


class Vendor(Protocol):
    """One accelerator family (NVIDIA, Ascend, Cambricon, …)."""

    @property
    def key(self) -> str:
        """The vendor key, e.g. ``NVIDIA`` (HAMi's CommonWord)."""
        ...

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        """Webhook defaults for one container (raises RequestInvalid for bad input)."""
        ...

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        """The container's request for this vendor, or None (raises RequestInvalid)."""
        ...

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        """The node's devices of this vendor from its registration (raises WireFormatError)."""
        ...

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        """Choose ``request.nums`` devices among ``candidates`` (already in try order)."""
        ...

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        """The pod annotations recording this vendor's allocation."""
        ...

    def allocated_devices(self, annotations: Mapping[str, str]) -> PodDevices | None:
        """Decode this vendor's allocated-devices annotation of a placed pod (None if absent)."""
        ...


# --- optional extensions ---------------------------------------------------------------------------

# What `Decision.annotations_at(now)` writes into a vendor's stamp keys: Unix seconds, Unix
# nanoseconds, or the chosen node's name.
Stamp = Literal["unix-seconds", "unix-nanos", "node-name"]


@runtime_checkable
class ScoringVendor(Protocol):
    """A vendor whose node score depends on the allocation (HAMi's non-zero `ScoreNode`).

    Pods asking for such a vendor are decided by fitting every candidate node and ranking by
    default score + vendor score, instead of walking the pre-ranked index.
    """

    def score_node(
        self,
        node: Node,
        before: Sequence[DeviceUsage],
        picks: Sequence[Sequence[Pick]],
        policy: str,
    ) -> float:
        """Extra node score for this vendor's ``picks`` (one entry per container)."""
        ...


@runtime_checkable
class SelectiveScoringVendor(Protocol):
    """A `ScoringVendor` whose score is zero for some pods, known before any fit (MetaX sGPU
    scores only online and topology-aware pods): those pods keep the fast ranked walk."""

    def scores(self, pod: PodRequest) -> bool:
        """Whether ``score_node`` can be non-zero for ``pod``."""
        ...


def as_stamping_vendor(vendor: object) -> StampingVendor | None:
    """``vendor`` as a `StampingVendor`, or None (checked once per class)."""
    if _implements(type(vendor), StampingVendor):
        return cast(StampingVendor, vendor)
    return None


def as_scoring_vendor(vendor: object) -> ScoringVendor | None:
    """``vendor`` as a `ScoringVendor`, or None (checked once per class)."""
    if _implements(type(vendor), ScoringVendor):
        return cast(ScoringVendor, vendor)
    return None


def as_selective_scorer(vendor: object) -> SelectiveScoringVendor | None:
    """``vendor`` as a `SelectiveScoringVendor`, or None (checked once per class)."""
    if _implements(type(vendor), SelectiveScoringVendor):
        return cast(SelectiveScoringVendor, vendor)
    return None


@runtime_checkable
class DescribingVendor(Protocol):
    """A vendor whose recorded ``usedcores`` is not a percentage (AWS Neuron: a core bitmask)."""

    def describe_cores(self, device: ContainerDevice) -> str:
        """The recorded cores in words, e.g. ``cores 0,1``."""
        ...


def cores_text(vendor: object, device: ContainerDevice) -> str:
    """How a person reads a recorded device's cores: ``30% cores`` or the vendor's own words."""
    if isinstance(vendor, DescribingVendor):
        return vendor.describe_cores(device)
    return f"{device.usedcores}% cores"


@runtime_checkable
class SlotVendor(Protocol):
    """A vendor whose picks may take several slots of a device's count (Enflame DRS).

    The allocation annotation records only ``uuid,type,usedmem,usedcores`` per device, so when
    usage is rebuilt from placed pods (`accounting.node_usage`) the vendor says how many slots a
    recorded entry takes; it must answer what its fit put in `Pick.slots`. Vendors without this
    hook take one slot per entry, at no cost.
    """

    def slots(self, device: Device, used: ContainerDevice) -> int:
        """The slots ``used`` (one recorded entry) takes on the registered ``device`` (>= 1)."""
        ...


@runtime_checkable
class TaskClassVendor(Protocol):
    """A vendor whose fit depends on which kinds of tasks share a device (MetaX sGPU app
    classes).

    Its fit labels picks with `Pick.task_class`; when usage is rebuilt from placed pods
    (`accounting.node_usage`), the pod's class comes from this hook, which must answer what
    the fit put in its picks. The counts land in `DeviceUsage.tasks`. Vendors without this
    hook have no classes, at no cost.
    """

    def task_class(self, annotations: Mapping[str, str]) -> str:
        """The class of a pod's tasks on this vendor's devices, from the pod's annotations
        ("" for none)."""
        ...


@runtime_checkable
class ContainerNamingVendor(Protocol):
    """A vendor whose pod annotations name the pod's containers (Enflame `assigned-containers`).

    The decision calls ``named_pod_annotations`` instead of ``pod_annotations``.
    """

    def named_pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]], names: Sequence[str]
    ) -> dict[str, str]:
        """``pod_annotations`` given the container names (init containers first; may be
        empty when the caller does not know them)."""
        ...


def as_slot_vendor(vendor: object) -> SlotVendor | None:
    """``vendor`` as a `SlotVendor`, or None (checked once per class: ``isinstance`` against a
    runtime protocol costs microseconds, too much on the decision path)."""
    return cast(SlotVendor, vendor) if _implements(type(vendor), SlotVendor) else None


def as_task_class_vendor(vendor: object) -> TaskClassVendor | None:
    """``vendor`` as a `TaskClassVendor`, or None (checked once per class)."""
    if _implements(type(vendor), TaskClassVendor):
        return cast(TaskClassVendor, vendor)
    return None


def as_naming_vendor(vendor: object) -> ContainerNamingVendor | None:
    """``vendor`` as a `ContainerNamingVendor`, or None (checked once per class)."""
    if _implements(type(vendor), ContainerNamingVendor):
        return cast(ContainerNamingVendor, vendor)
    return None


_IMPLEMENTS: dict[tuple[type, type], bool] = {}  # (vendor class, protocol) → answer


def _implements(kind: type, protocol: type) -> bool:
    known = _IMPLEMENTS.get((kind, protocol))
    if known is None:
        known = _IMPLEMENTS[(kind, protocol)] = issubclass(kind, protocol)
    return known


@runtime_checkable
class StampingVendor(Protocol):
    """A vendor that writes time or node-name annotations at decision time."""

    def stamps(self) -> Mapping[str, Stamp]:
        """Annotation key → what to write into it when the decision is recorded."""
        ...


@runtime_checkable
class CapacityVendor(Protocol):
    """A vendor whose devices are learnt from the node's `status.capacity`, or from an
    annotation whose device ids need the node name (Enflame DRS)."""

    def capacity_devices(
        self,
        node: str,
        capacity: Mapping[str, str],
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
    ) -> tuple[Device, ...]:
        """The node's devices of this vendor from its capacity (raises WireFormatError)."""
        ...


@dataclass(frozen=True, slots=True)
class PodAdmission:
    """What a vendor adds to the pod itself at admission (beyond its containers)."""

    annotations: Mapping[str, str] = field(default_factory=dict)
    runtime_class_name: str = ""  # set when the pod names none (the first vendor's wins)


@runtime_checkable
class PodModeVendor(Protocol):
    """A vendor whose container admission depends on the pod's annotations (Ascend's mode)."""

    def admit_container_in_pod(
        self, container: Mapping[str, object], where: str, annotations: Mapping[str, str]
    ) -> Admission:
        """``admit_container`` with the pod's annotations; the webhook calls it instead."""
        ...


@runtime_checkable
class PodAdmittingVendor(Protocol):
    """A vendor with pod-level admission rules or outputs (annotations, RuntimeClass)."""

    def pod_admission(
        self,
        annotations: Mapping[str, str],
        containers: Sequence[Mapping[str, object]],
        where: str,
    ) -> PodAdmission:
        """Pod-level checks after the container pass (raises RequestInvalid).

        ``containers`` are the admitted containers, init containers first; only those using
        the vendor concern it.
        """
        ...


@dataclass(frozen=True, slots=True)
class RegistrationHealth:
    """How the scheduler judges a vendor's node registration alive (wire-format.md §2.7).

    ``handshake_key`` receives ``Requesting_<time>``; empty means no handshake, and then the
    node is healthy while it advertises ``count_resource``. ``cleanup_key`` is removed when the
    node turns unhealthy (default: the handshake key; AMD removes its register annotation).
    """

    count_resource: str
    handshake_key: str = ""
    cleanup_key: str = ""


@runtime_checkable
class HealthCheckedVendor(Protocol):
    """A vendor whose registrations the scheduler checks (handshake or allocatable count)."""

    @property
    def registration_health(self) -> RegistrationHealth: ...


@dataclass(frozen=True, slots=True)
class NodeLockSpec:
    """A node annotation that serialises binds (wire-format.md §3.13, §4.4).

    ``owner``: the value is ``<RFC3339>,<namespace>,<pod>`` (else a bare RFC3339 time);
    ``expiry``: seconds after which a lock is taken over (None: the scheduler's setting).
    """

    key: str
    expiry: float | None = None
    owner: bool = True


@runtime_checkable
class LockingVendor(Protocol):
    """A vendor that names its bind lock; without it a vendor takes `hami.io/mutex.lock`."""

    @property
    def node_lock(self) -> NodeLockSpec | None:
        """The lock, or None for a vendor that binds without one."""
        ...


MUTEX_LOCK = NodeLockSpec(keys.NODE_LOCK)  # the lock of a vendor that names none (§3.13)


def lock_specs(vendors: Mapping[str, Vendor], used: Iterable[str]) -> tuple[NodeLockSpec, ...]:
    """The distinct bind locks of the ``used`` vendors, in sorted vendor-key order (§3.13).

    A vendor without `node_lock` takes `hami.io/mutex.lock`; vendors sharing a key lock once.
    """
    specs: dict[str, NodeLockSpec] = {}
    for key in sorted(used):
        vendor = vendors.get(key)
        if vendor is None:
            continue
        spec = vendor.node_lock if isinstance(vendor, LockingVendor) else MUTEX_LOCK
        if spec is not None:
            specs.setdefault(spec.key, spec)
    return tuple(specs.values())
