"""AWS Neuron: whole Neuron devices or NeuronCores learnt from node capacity (wire-format.md §4.12).

Design — where cores-per-device lives. HAMi learns "cores per device" once, from the first node
it registers, and uses it (capped at 2) to turn a NeuronCore request into ``Nums × Coresreq``
when the request is parsed, before any node is known. A cluster mixing instance types then
converts requests with another node's geometry. Here the request carries what the container
asked for and the fit converts it on each node, with that node's devices' core count
(`Device.count`, which capacity registration sets to cores per device):

* ``aws.amazon.com/neuron: N`` → ``ContainerRequest(nums=N, coresreq=0)``: N whole devices
  (``coresreq == 0`` marks a whole-device request; every core of each chosen device is taken);
* ``aws.amazon.com/neuroncore: C`` → ``ContainerRequest(nums=1, coresreq=C)``: C cores in total;
  on a node with P cores per device, C ≤ P takes C cores of one device, a multiple of P takes
  C/P whole devices, anything else does not fit that node (a per-node reason, since P is a node
  property; admission can only check that C is a positive integer). ``nums`` is 1, the least
  number of devices any node needs, which keeps the core's "not enough devices" pre-checks
  necessary-only.

Because the core count comes from the node's own devices, HAMi's cap of 2 cores per device (its
masks and annotation writer handle two bits only) is not needed: masks and `AWS_NEURON_IDS` are
built for any core count. On the two-core devices of inf2 and trn1 the results are those HAMi
intends (§4.12). A pick for a core request carries its node's cores per device in `Pick.note`,
so that `pod_annotations` can write global core indexes.

Devices: one per `aws.amazon.com/neuron` of capacity, id ``<node>-AWSNeuron-<i>``, count = cores
per device, cores = bitmask of those cores (3 for two cores), memory 0, and the node's
`node.kubernetes.io/instance-type` label (HAMi's custom info ``AWSNodeType``).

Fit: several devices take a contiguous run of idle healthy devices (instance types containing
``inf``/``Inf``: any run; otherwise runs of 1, 4, 8 or 16 devices starting at a multiple of the
run length); one device takes the lowest free cores of its mask (1, 3, or the complement of the
used core on a two-core device). UUID filters ``aws.amazon.com/use-neuron-uuid`` /
``aws.amazon.com/nouse-neuron-uuid`` apply to every device. No node lock, no node score.

HAMi bugs not reproduced: a request of 2 devices got one device and requests above 2 searched
runs one device too long; a single-device pick recorded no cores (a ``!ok`` test), so the device
looked free again; core availability added the used and total masks' bit counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from hami.api import annotations as codec
from hami.api import keys
from hami.api.types import ContainerDevice, PodDevices
from hami.core.errors import RequestInvalid
from hami.core.model import ContainerRequest, Device, DeviceUsage
from hami.core.policy import MUTEX
from hami.core.status import Reason, Unfit
from hami.core.vendor import Candidate, FitContext, Held, Pick, Vendor
from hami.vendors import common, resources
from hami.vendors.config import NeuronConfig
from hami.vendors.family import Spec, SpecVendor

RUN_SIZES = (1, 4, 8, 16)  # device runs of non-Inferentia instance types, aligned to the size


@dataclass(frozen=True, slots=True)
class NeuronDevice(Device):
    """A Neuron device: ``count`` = cores per device, ``cores`` = the bitmask of those cores."""

    instance_type: str = ""  # node label `node.kubernetes.io/instance-type` (HAMi `AWSNodeType`)
    # the cluster summary compares core amounts; a bitmask is not one
    rough_summary: ClassVar[bool] = True

    @property
    def ring(self) -> bool:
        """Inferentia instances join devices in a ring: any contiguous run serves."""
        return "inf" in self.instance_type or "Inf" in self.instance_type


def core_mask(cores: int) -> int:
    """The bitmask of ``cores`` cores (3 for two)."""
    return (1 << max(cores, 0)) - 1


def core_bits(mask: int) -> tuple[int, ...]:
    """The core numbers set in ``mask``, ascending."""
    return tuple(bit for bit in range(mask.bit_length()) if mask >> bit & 1)


def lowest_cores(free: int, count: int) -> int:
    """The mask of the ``count`` lowest cores of ``free`` (fewer when ``free`` has fewer)."""
    return sum(1 << bit for bit in core_bits(free)[:count])


def run_select(free: Sequence[int], nums: int, ring: bool) -> tuple[int, ...]:
    """The first run of ``nums`` consecutive free device indexes, or () when there is none.

    ``ring``: any start; otherwise ``nums`` must be 1, 4, 8 or 16 and the run starts at a
    multiple of ``nums`` (trn1's device groups).
    """
    if nums <= 0 or (not ring and nums not in RUN_SIZES):
        return ()
    have = set(free)
    step = 1 if ring else nums
    top = max(have, default=-1)
    for start in range(0, top - nums + 2, step):
        run = tuple(range(start, start + nums))
        if have.issuperset(run):
            return run
    return ()


SPEC = Spec(
    key=keys.NEURON_VENDOR,
    name="AWS",
    word="Neuron",
    aliases=("AWSNeuron", "Neuron"),
    allocated=keys.NEURON_ALLOCATED,
    lock=None,  # HAMi's Neuron vendor binds without a node lock (§4.12)
    names=("resource_count_name", "", "resource_core_name"),
    stamps={keys.NEURON_ALLOC_TIME: "unix-nanos", keys.NEURON_PREDICATE_NODE: "node-name"},
)


@dataclass(frozen=True, slots=True)
class NeuronVendor(SpecVendor):
    """`AWSNeuron`, configured by the `awsneuron:` section."""

    config: NeuronConfig = field(default_factory=NeuronConfig)
    spec = SPEC
    # the container uses Neuron when it names either resource, in limits or requests
    admit_container = Vendor.admit_container

    def parse_container(
        self, container: Mapping[str, object], where: str
    ) -> ContainerRequest | None:
        """Whole devices (the device resource wins when both are given), else NeuronCores."""
        cfg = self.config
        devices = _positive(container, cfg.resource_count_name, where)
        if devices is not None:
            return ContainerRequest(self.key, devices, mem_pct=0, coresreq=0)
        cores = _positive(container, cfg.resource_core_name, where)
        if cores is not None:
            return ContainerRequest(self.key, 1, mem_pct=0, coresreq=cores)
        return None

    def capacity_devices(
        self,
        node: str,
        capacity: Mapping[str, str],
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
    ) -> tuple[Device, ...]:
        """One device per advertised Neuron device, each with cores = total cores / devices.

        A node advertising devices but no cores has no usable geometry and registers none.
        """
        count = common.capacity_of(capacity, self.config.resource_count_name)
        cores = common.capacity_of(capacity, self.config.resource_core_name)
        per = cores // count if count > 0 else 0
        if per <= 0:
            return ()
        instance = labels.get(keys.INSTANCE_TYPE_LABEL, "")
        return tuple(
            NeuronDevice(
                uuid=f"{node}-{keys.NEURON_VENDOR}-{i}",
                vendor=self.key,
                type=self.key,
                count=per,
                memory=0,
                cores=core_mask(per),
                index=i,
                instance_type=instance,
            )
            for i in range(count)
        )

    def fit(
        self, candidates: Sequence[Candidate], request: ContainerRequest, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        if not candidates:
            return Unfit(counts={Reason.NODE_INSUFFICIENT_DEVICE: 1}, total=0)
        per = max(candidates[0].device.count, 1)  # cores per device, alike on one node
        if request.coresreq == 0:
            if request.nums == 1:
                return self._one(candidates, None, ctx)
            return self._run(candidates, request.nums, None, ctx)
        cores = request.coresreq
        if cores <= per:
            return self._one(candidates, cores, ctx)
        if cores % per:
            return Unfit.because(
                f"{cores} NeuronCores is neither at most nor a multiple of the {per} "
                "cores of one Neuron device on this node"
            )
        return self._run(candidates, cores // per, per, ctx)

    def _one(
        self, candidates: Sequence[Candidate], cores: int | None, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        """One device: ``cores`` of its free cores (None: the whole, idle device)."""
        mutex = MUTEX in ctx.policy
        reasons: Counter[str] = Counter()
        for cand in candidates:
            reason = _device_reason(cand, ctx.annotations) or _core_reason(cand, cores, mutex)
            if reason is not None:
                reasons[reason] += 1
                continue
            if cores is None:
                return (_pick(cand, cand.device.cores, None),)
            return (_pick(cand, lowest_cores(_free(cand), cores), cand.device.count),)
        return Unfit(counts=dict(reasons), total=len(candidates))

    def _run(
        self, candidates: Sequence[Candidate], nums: int, per: int | None, ctx: FitContext
    ) -> tuple[Pick, ...] | Unfit:
        """``nums`` whole idle devices with consecutive indexes (``per``: a core request)."""
        reasons: Counter[str] = Counter()
        by_index: dict[int, Candidate] = {}
        for cand in candidates:
            reason = _device_reason(cand, ctx.annotations) or _core_reason(cand, None, False)
            if reason is None:
                by_index[cand.device.index] = cand
            else:
                reasons[reason] += 1
        ring = any(isinstance(c.device, NeuronDevice) and c.device.ring for c in candidates)
        chosen = run_select(sorted(by_index), nums, ring)
        if not chosen:
            if by_index:
                reasons[Reason.NUMA_NOT_FIT] += len(by_index)
            return Unfit(counts=dict(reasons), total=len(candidates))
        return tuple(_pick(by_index[i], by_index[i].device.cores, per) for i in chosen)

    def held(self, device: Device, usage: DeviceUsage) -> Held:
        """NeuronCores: the used bits of the device's core mask."""
        return Held(0, usage.usedcores.bit_count(), device.cores.bit_count(), "NeuronCores")

    def describe_cores(self, device: ContainerDevice) -> str:
        """The NeuronCores of the device's bitmask, device-local: ``core 0``, ``cores 0,1``."""
        bits = core_bits(device.usedcores)
        return f"{'core' if len(bits) == 1 else 'cores'} {','.join(map(str, bits)) or '-'}"

    def pod_annotations(
        self, devices: PodDevices, picks: Sequence[Sequence[Pick]]
    ) -> dict[str, str]:
        """The allocation list, and `AWS_NEURON_IDS` over every container in order: device
        indexes for device requests, global core indexes (index × cores per device + core)
        for core requests, which also set `keys.NEURON_RESOURCE_TYPE`."""
        out = SpecVendor.pod_annotations(self, devices, picks)
        ids: list[str] = []
        core_request = False
        for container in picks:
            for pick in container:
                if pick.note:
                    per = int(pick.note)
                    ids.extend(str(pick.index * per + b) for b in core_bits(pick.device.usedcores))
                    core_request = True
                else:
                    ids.append(str(pick.index))
        if ids:
            out[keys.NEURON_IDS] = codec.encode_comma_list(ids)
            out[keys.NEURON_ALLOCATED_FLAG] = "false"
            if core_request:
                out[keys.NEURON_RESOURCE_TYPE] = self.config.resource_core_name
        return out


def _positive(container: Mapping[str, object], name: str, where: str) -> int | None:
    value = resources.integer(container, name, where)
    if value is None:
        return None
    if value <= 0:
        raise RequestInvalid(where, name, f"{value} must be a positive integer")
    if value > common.INT32_MAX:
        raise RequestInvalid(where, name, f"{value} is too large (at most {common.INT32_MAX})")
    return value


def _free(cand: Candidate) -> int:
    # Usage sums `usedcores` over the device's entries; the masks of one device never overlap
    # (every pick takes only free cores), so the sum is their OR and the free cores are a mask
    # operation. Collapsed pod usage keeps max(app, init) per device, which is also their OR:
    # every pick takes the lowest free cores, so masks taken from one starting point nest.
    return cand.device.cores & ~cand.usage.usedcores


def _device_reason(cand: Candidate, annotations: Mapping[str, str]) -> str | None:
    if not cand.device.health:
        return Reason.CARD_NOT_HEALTH
    if not common.uuid_allowed(
        cand.device.uuid, annotations, keys.NEURON_USE_UUID, keys.NEURON_NOUSE_UUID
    ):
        return Reason.CARD_UUID_MISMATCH
    return None


def _core_reason(cand: Candidate, cores: int | None, mutex: bool) -> str | None:
    """Why ``cand`` cannot give ``cores`` cores (None: the whole device, which must be idle)."""
    use = cand.usage
    if cores is None:
        return Reason.CARD_INSUFFICIENT_CORE if use.used or use.usedcores else None
    if use.used >= cand.device.count:
        return Reason.CARD_TIME_SLICING_EXHAUSTED
    if mutex and use.used:
        return Reason.EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT
    if _free(cand).bit_count() < cores:
        return Reason.CARD_INSUFFICIENT_CORE
    return None


def _pick(cand: Candidate, mask: int, per: int | None) -> Pick:
    """``mask`` of ``cand``; ``per`` (cores per device) marks a core request for the IDs."""
    used = ContainerDevice(
        uuid=cand.device.uuid, type=keys.NEURON_VENDOR, usedmem=0, usedcores=mask
    )
    note = "" if per is None else str(per)
    return Pick(position=cand.position, device=used, index=cand.device.index, note=note)
