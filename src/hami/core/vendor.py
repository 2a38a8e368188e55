"""The vendor contract: what one accelerator family must tell the shared core.

A vendor is a subclass of `Vendor` (in practice of a family base in `hami.vendors.family`, built
from the vendor's spec row) plus one line in `hami.vendors.registry`. Every optional behaviour has
a neutral default here; a vendor overrides only what really differs. Whether a vendor overrides a
hook (scores nodes, takes several slots, has task classes) is found
once per class, when the class is made, so the decision path reads a class attribute and never
tests types. Locking, accounting, scoring, ordering and the codec stay in the core and `hami.api`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

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
    a vendor with ``slots > 1`` must also override `Vendor.slots`, so that usage rebuilt from the
    allocation annotation (which records no slot count) agrees with the fit.

    A non-empty ``task_class`` counts the pick's slots under that class in
    `DeviceUsage.tasks`; the vendor must then override `Vendor.task_class` and answer the same
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


# What `Decision.annotations_at(now)` writes into a vendor's stamp keys: Unix seconds, Unix
# nanoseconds, or the chosen node's name.
Stamp = Literal["unix-seconds", "unix-nanos", "node-name"]


@dataclass(frozen=True, slots=True)
class PodAdmission:
    """What a vendor adds to the pod itself at admission (beyond its containers)."""

    annotations: Mapping[str, str] = field(default_factory=dict)
    runtime_class_name: str = ""  # set when the pod names none (the first vendor's wins)


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


@dataclass(frozen=True, slots=True)
class NodeLockSpec:
    """A node annotation that serialises binds (wire-format.md §3.13, §4.4).

    ``owner``: the value is ``<RFC3339>,<namespace>,<pod>`` (else a bare RFC3339 time);
    ``expiry``: seconds after which a lock is taken over (None: the scheduler's setting).
    """

    key: str
    expiry: float | None = None
    owner: bool = True


MUTEX_LOCK = NodeLockSpec(keys.NODE_LOCK)  # the lock of a vendor that names none (§3.13)


@dataclass(frozen=True, slots=True)
class Held:
    """A device's allocation as a person or a metric reads it: memory in MiB, compute in the
    vendor's own unit (never added across units)."""

    memory: int  # MiB held
    cores: int  # compute held, in ``unit``
    cores_total: int  # the device's compute, in ``unit``
    unit: str = "%"  # "%" of the card, or the vendor's unit ("CUs", "cores", "NeuronCores"…)

    @property
    def percent(self) -> float:
        """The compute held, as a percentage of the card."""
        if self.unit == "%":
            return float(self.cores)
        return 100.0 * self.cores / self.cores_total if self.cores_total > 0 else 0.0


class Vendor:
    """One accelerator family (NVIDIA, Ascend, Cambricon, …).

    Subclasses must give ``key`` and implement `parse_container`, `fit`, `pod_annotations` and
    `allocated_devices`; everything else has a neutral default. The class attributes
    ``scoring``, ``slotted``, ``classed`` and ``from_capacity`` are set when a subclass is made:
    true when it overrides `score_node`, `slots`, `task_class` or `capacity_devices`.
    """

    __slots__ = ()

    scoring: ClassVar[bool] = False  # score_node may be non-zero (HAMi's non-zero ScoreNode)
    slotted: ClassVar[bool] = False  # a pick may take several slots of a device
    classed: ClassVar[bool] = False  # picks carry a task class

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.scoring = cls.score_node is not Vendor.score_node
        cls.slotted = cls.slots is not Vendor.slots
        cls.classed = cls.task_class is not Vendor.task_class

    @property
    def key(self) -> str:
        """The vendor key, e.g. ``NVIDIA`` (HAMi's CommonWord)."""
        raise NotImplementedError

    # --- requests and admission

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        """The container's request for this vendor, or None (raises RequestInvalid)."""
        raise NotImplementedError

    def admit_container(self, container: Mapping[str, object], where: str) -> Admission:
        """Webhook defaults for one container (raises RequestInvalid for bad input); by
        default the container uses the vendor iff it asks for it, and nothing is changed."""
        uses = self.parse_container(container, where) is not None
        return Admission(uses_vendor=uses, container=container)

    def admit_container_in_pod(
        self, container: Mapping[str, object], where: str, annotations: Mapping[str, str]
    ) -> Admission:
        """`admit_container` given the pod's annotations (Ascend's mode decides by them)."""
        return self.admit_container(container, where)

    def pod_admission(
        self,
        annotations: Mapping[str, str],
        containers: Sequence[Mapping[str, object]],
        where: str,
    ) -> PodAdmission:
        """Pod-level checks and outputs after the container pass (raises RequestInvalid).

        ``containers`` are the admitted containers, init containers first; only those using
        the vendor concern it.
        """
        return PodAdmission()

    # --- registration

    def node_devices(self, annotations: Mapping[str, str]) -> tuple[Device, ...]:
        """The node's devices of this vendor from its registration (raises WireFormatError)."""
        return ()

    def capacity_devices(
        self,
        node: str,
        capacity: Mapping[str, str],
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
    ) -> tuple[Device, ...]:
        """The node's devices learnt from its `status.capacity`, or from an annotation whose
        device ids need the node name (raises WireFormatError)."""
        return ()

    @property
    def registration_health(self) -> RegistrationHealth | None:
        """How the scheduler checks this vendor's registrations; None: it does not."""
        return None

    @property
    def node_lock(self) -> NodeLockSpec | None:
        """The bind lock (`hami.io/mutex.lock` unless the vendor names another); None: the
        vendor binds without one."""
        return MUTEX_LOCK

    # --- fit and scoring

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        """Choose ``request.nums`` devices among ``candidates`` (already in try order)."""
        raise NotImplementedError

    def score_node(
        self,
        node: Node,
        before: Sequence[DeviceUsage],
        picks: Sequence[Sequence[Pick]],
        policy: str,
    ) -> float:
        """Extra node score for this vendor's ``picks`` (one entry per container).

        A vendor that overrides it has its pods decided by fitting every candidate node and
        ranking by default score + vendor score, instead of walking the pre-ranked index.
        """
        return 0.0

    def scores(self, pod: PodRequest) -> bool:
        """Whether ``score_node`` can be non-zero for ``pod`` (MetaX sGPU scores only online
        and topology-aware pods: the others keep the fast ranked walk)."""
        return self.scoring

    def slots(self, device: Device, used: ContainerDevice) -> int:
        """The slots one recorded allocation entry takes on ``device`` (what the fit put in
        `Pick.slots`): usage rebuilt from annotations must agree with the fit."""
        return 1

    def task_class(self, annotations: Mapping[str, str]) -> str:
        """The class of a pod's tasks on this vendor's devices ("" for none); must answer
        what the fit put in `Pick.task_class`."""
        return ""

    # --- annotations

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        """The pod annotations recording this vendor's allocation."""
        raise NotImplementedError

    def named_pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]], names: Sequence[str]
    ) -> dict[str, str]:
        """`pod_annotations` given the container names (init containers first; may be empty
        when the caller does not know them); Enflame's `assigned-containers` needs them."""
        return self.pod_annotations(devices, picks)

    def stamps(self) -> Mapping[str, Stamp]:
        """Annotation key → what to write into it when the decision is recorded."""
        return _NO_STAMPS

    def allocated_devices(self, annotations: Mapping[str, str]) -> PodDevices | None:
        """Decode this vendor's allocated-devices annotation of a placed pod (None if absent)."""
        raise NotImplementedError

    def describe_cores(self, device: ContainerDevice) -> str:
        """How a person reads a recorded device's compute, e.g. ``30% cores``."""
        return f"{device.usedcores}% cores"

    def describe(self, device: ContainerDevice) -> str:
        """One recorded allocation entry in words, e.g. ``3000 MiB, 30% cores``."""
        return f"{device.usedmem} MiB, {self.describe_cores(device)}"

    def held(self, device: Device, usage: DeviceUsage) -> Held:
        """What ``usage`` holds of ``device``, as a person or a metric should read it."""
        return Held(usage.usedmem, usage.usedcores, device.cores)

    def resource_names(self) -> tuple[str, ...]:
        """The extended resources a container may ask this vendor for (for the tools that
        name a resource no enabled vendor knows, or a typo)."""
        return ()


_NO_STAMPS: Mapping[str, Stamp] = {}


def cores_text(vendor: Vendor | None, device: ContainerDevice) -> str:
    """How a person reads a recorded device's cores: ``30% cores`` or the vendor's own words."""
    return vendor.describe_cores(device) if vendor is not None else f"{device.usedcores}% cores"


def lock_specs(vendors: Mapping[str, Vendor], used: Iterable[str]) -> tuple[NodeLockSpec, ...]:
    """The distinct bind locks of the ``used`` vendors, in sorted vendor-key order (§3.13).

    Vendors sharing a key lock once; a vendor whose lock is None takes none.
    """
    specs: dict[str, NodeLockSpec] = {}
    for key in sorted(used):
        vendor = vendors.get(key)
        if vendor is None:
            continue
        spec = vendor.node_lock
        if spec is not None:
            specs.setdefault(spec.key, spec)
    return tuple(specs.values())
