"""MIG GPUs as their slices, for people: `hami sim`, `hami demo show` and the web UI (here in
the core, below all three).

A GPU registered in ``mig`` mode is cut into memory slices (8 on A100 and H100: the widest
placement of its registered `migProfiles`). Every entry of a pod's
`hami.io/vgpu-mig-allocations` takes slices ``[start, start + size)`` of its GPU with one
profile. The device plugin writes the realised instance's identity (MIG UUID, GPU and compute
instance ids) into the same entry at Allocate; until then the instance is only *reserved*.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hami.api import annotations as codec
from hami.api import keys
from hami.api.errors import WireFormatError
from hami.api.types import MigAllocation, MigPlacement
from hami.core.accounting import PlacedPod
from hami.core.model import Device, Node

DEFAULT_SLICES = 8  # A100 and H100: 8 memory slices (7 compute slices)
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def letter(number: int) -> str:
    """The slice-map letter of a GPU's ``number``-th instance."""
    return LETTERS[number % len(LETTERS)]


@dataclass(frozen=True, slots=True)
class MigInstance:
    """One reservation of a pod on a MIG GPU, realised (with its identity) or not yet."""

    pod: str  # namespace/name
    container: int
    profile: str
    placement: MigPlacement
    mig_uuid: str | None = None
    gpu_instance_id: int | None = None
    compute_instance_id: int | None = None

    @property
    def realised(self) -> bool:
        return self.mig_uuid is not None

    @property
    def state(self) -> str:
        return "realised" if self.realised else "reserved"

    def doc(self) -> dict[str, object]:
        return {
            "pod": self.pod,
            "container": self.container,
            "profile": self.profile,
            "start": self.placement.start,
            "size": self.placement.size,
            "state": self.state,
            "mig_uuid": self.mig_uuid,
            "gpu_instance_id": self.gpu_instance_id,
            "compute_instance_id": self.compute_instance_id,
        }

    def text(self) -> str:
        """``1g.10gb  slices 2-2  ns/pod [0]  MIG-… (GI 9, CI 0)`` (or ``reserved``)."""
        last = self.placement.start + self.placement.size - 1
        identity = (
            f"{self.mig_uuid} (GI {self.gpu_instance_id}, CI {self.compute_instance_id})"
            if self.realised
            else "reserved, not realised yet"
        )
        return (
            f"{self.profile}  slices {self.placement.start}-{last}  "
            f"{self.pod} [{self.container}]  {identity}"
        )


@dataclass(frozen=True, slots=True)
class MigGpu:
    """A MIG-mode GPU of a node and the instances reserved on it, by start slice."""

    node: str
    uuid: str
    index: int
    model: str
    slices: int
    instances: tuple[MigInstance, ...] = ()

    @property
    def slices_used(self) -> int:
        return len({s for i in self.instances for s in _span(i.placement, self.slices)})

    def slice_map(self) -> str:
        """One character per slice: a letter per instance (in order), ``.`` free, ``!`` where
        two reservations overlap (never, unless an annotation was edited by hand)."""
        cells = ["."] * self.slices
        for number, instance in enumerate(self.instances):
            mark = letter(number)
            for s in _span(instance.placement, self.slices):
                cells[s] = mark if cells[s] == "." else "!"
        return "".join(cells)

    def doc(self) -> dict[str, object]:
        return {
            "uuid": self.uuid,
            "index": self.index,
            "model": self.model,
            "slices": self.slices,
            "slices_used": self.slices_used,
            "slice_map": self.slice_map(),
            "instances": [i.doc() for i in self.instances],
        }


def instance_text(doc: Mapping[str, object]) -> str:
    """`MigInstance.text` of an instance's `doc` (the JSON reports)."""
    return MigInstance(
        pod=str(doc["pod"]),
        container=int(str(doc["container"])),
        profile=str(doc["profile"]),
        placement=MigPlacement(int(str(doc["start"])), int(str(doc["size"]))),
        mig_uuid=None if doc.get("mig_uuid") is None else str(doc["mig_uuid"]),
        gpu_instance_id=_opt_int(doc.get("gpu_instance_id")),
        compute_instance_id=_opt_int(doc.get("compute_instance_id")),
    ).text()


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _span(placement: MigPlacement, slices: int) -> range:
    return range(max(placement.start, 0), min(placement.start + placement.size, slices))


def slice_count(device: Device) -> int:
    """The GPU's memory slices: the end of its widest registered placement (8 without any)."""
    ends = [p.start + p.size for profile in device.mig_profiles for p in profile.placements]
    return max(ends, default=DEFAULT_SLICES)


def is_mig(device: Device) -> bool:
    return device.mode == keys.MODE_MIG


def instances(key: str, allocations: Iterable[MigAllocation]) -> list[tuple[str, MigInstance]]:
    """(GPU UUID, instance) for each of a pod's MIG allocations."""
    return [
        (
            a.gpu_uuid,
            MigInstance(
                pod=key,
                container=a.container_index,
                profile=a.profile,
                placement=a.placement,
                mig_uuid=a.mig_uuid,
                gpu_instance_id=a.gpu_instance_id,
                compute_instance_id=a.compute_instance_id,
            ),
        )
        for a in allocations
    ]


def from_annotations(key: str, annotations: Mapping[str, str]) -> list[tuple[str, MigInstance]]:
    """A pod's instances from its `hami.io/vgpu-mig-allocations` (none when absent).

    Raises WireFormatError for a malformed annotation.
    """
    value = annotations.get(keys.MIG_ALLOCATIONS)
    return instances(key, codec.decode_mig_allocations(value)) if value else []


def mig_gpus(nodes: Iterable[Node], pods: Iterable[PlacedPod]) -> list[MigGpu]:
    """Every MIG-mode GPU of ``nodes`` (and any GPU a pod reserves MIG instances on), with the
    instances the ``pods`` on that node reserve, in node order then GPU index."""
    by_gpu: dict[tuple[str, str], list[MigInstance]] = {}
    for pod in pods:
        for uuid, instance in instances(pod.key, pod.mig):
            by_gpu.setdefault((pod.node, uuid), []).append(instance)
    return gpus_of(nodes, by_gpu)


def gpus_of(
    nodes: Iterable[Node], by_gpu: Mapping[tuple[str, str], list[MigInstance]]
) -> list[MigGpu]:
    """`mig_gpus` from instances already grouped by (node, GPU UUID)."""
    found = []
    for node in nodes:
        for device in sorted(node.devices, key=lambda d: d.index):
            held = by_gpu.get((node.name, device.uuid), [])
            if not is_mig(device) and not held:
                continue
            ordered = sorted(held, key=lambda i: (i.placement.start, i.pod, i.container))
            found.append(
                MigGpu(
                    node.name,
                    device.uuid,
                    device.index,
                    device.type,
                    slice_count(device),
                    tuple(ordered),
                )
            )
    return found


def render(gpus: Iterable[MigGpu]) -> list[str]:
    """Text lines: per MIG GPU its slice map, then one line per instance."""
    lines = []
    for gpu in gpus:
        lines.append(
            f"  {gpu.node} GPU {gpu.index} ({gpu.model}) {gpu.uuid}: [{gpu.slice_map()}] "
            f"{gpu.slices_used}/{gpu.slices} slices"
        )
        if not gpu.instances:
            lines.append("      no instances")
        for number, instance in enumerate(gpu.instances):
            lines.append(f"      {letter(number)}  {instance.text()}")
    return lines


def safe_from_annotations(
    key: str, annotations: Mapping[str, str]
) -> tuple[list[tuple[str, MigInstance]], str]:
    """`from_annotations`, or no instances and the problem when the annotation is malformed."""
    try:
        return from_annotations(key, annotations), ""
    except WireFormatError as exc:
        return [], f"pod {key}: unreadable {keys.MIG_ALLOCATIONS}: {exc}"
