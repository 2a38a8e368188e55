"""Why a pod does not fit, node by node, and what would make it fit.

Pure: the decision core (`hami.core.decide`) says, per node, which HAMi reasons ruled out how
many cards (``n/total Reason``). Here each node gets its *main* reason — the one counted on the
most cards, ties broken by the order of the core's checks (wire-format.md §3.8) — nodes are
grouped by it, and each group gets a hint computed from the cluster view: how much to free,
where, or what to ask for instead.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass

from hami.core import mig
from hami.core.cluster import ClusterView, NodeState
from hami.core.decide import decide
from hami.core.model import ContainerRequest, Device, DeviceUsage, PodRequest
from hami.core.status import DEVICE_TYPE_NOT_FOUND, NODE_UNREGISTERED, Reason, Unfit
from hami.core.vendor import QuotaRoom, Vendor

# The core's check order: the tie-break between reasons counted on as many cards.
CHECK_ORDER: tuple[str, ...] = (
    NODE_UNREGISTERED,
    DEVICE_TYPE_NOT_FOUND,
    Reason.NODE_INSUFFICIENT_DEVICE,
    Reason.CARD_NOT_HEALTH,
    Reason.CARD_CORDONED,
    Reason.CARD_TYPE_MISMATCH,
    Reason.MODE_NOT_FIT,
    Reason.NUMA_NOT_FIT,
    Reason.CARD_UUID_MISMATCH,
    Reason.CARD_NOT_FOUND_CUSTOM_FILTER_RULE,
    Reason.CARD_TIME_SLICING_EXHAUSTED,
    Reason.EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT,
    Reason.RESOURCE_QUOTA_NOT_FIT,
    Reason.CARD_INSUFFICIENT_MEMORY,
    Reason.CARD_INSUFFICIENT_CORE,
    Reason.CARD_COMPUTE_UNITS_EXHAUSTED,
    Reason.CARD_MIG_TOPOLOGY_INFEASIBLE,
    Reason.ALLOCATED_CARDS_INSUFFICIENT_REQUEST,
    Reason.NODE_UNFIT_POD,
)
_RANK = {str(r): i for i, r in enumerate(CHECK_ORDER)}


@dataclass(frozen=True, slots=True)
class NodeReason:
    """One node that does not take the pod: its main reason and HAMi's full reason text."""

    node: str
    reason: str
    text: str


@dataclass(frozen=True, slots=True)
class ReasonGroup:
    """The nodes ruled out by one main reason, and what would make the pod fit there."""

    reason: str
    nodes: tuple[str, ...]
    hint: str

    @property
    def count(self) -> int:
        return len(self.nodes)


@dataclass(frozen=True, slots=True)
class Explanation:
    pod: str
    wants_devices: bool
    node: str | None  # where the pod fits now, if anywhere
    total: int  # nodes considered
    groups: tuple[ReasonGroup, ...]  # most nodes first
    nodes: tuple[NodeReason, ...]  # by node name

    @property
    def fits(self) -> bool:
        return self.node is not None

    def summary(self) -> str:
        if not self.wants_devices:
            return f"{self.pod} asks for no device: kube-scheduler alone places it"
        if self.node is not None:
            return f"{self.pod} fits on node {self.node}"
        if self.total == 0:
            return f"0/0 nodes: no node has registered devices, so {self.pod} cannot be placed"
        parts = ", ".join(f"{g.count} × {g.reason}" for g in self.groups)
        return f"0/{self.total} nodes fit {self.pod}: {parts}"

    def lines(self) -> list[str]:
        """The explanation for a person: the summary, then one line per group with its hint."""
        out = [self.summary()]
        for group in self.groups:
            shown = ", ".join(group.nodes[:5]) + (" …" if group.count > 5 else "")
            out.append(f"  {group.count} × {group.reason} ({shown})")
            out.append(f"      → {group.hint}")
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "pod": self.pod,
            "wants_devices": self.wants_devices,
            "fits": self.fits,
            "node": self.node,
            "summary": self.summary(),
            "nodes_considered": self.total,
            "groups": [
                {"reason": g.reason, "count": g.count, "nodes": list(g.nodes), "hint": g.hint}
                for g in self.groups
            ],
            "nodes": [{"node": n.node, "reason": n.reason, "text": n.text} for n in self.nodes],
        }


def main_reason(unfit: Unfit) -> str:
    """The reason counted on the most cards; ties go to the earlier check."""
    if unfit.message or not unfit.counts:
        return unfit.message or str(Reason.NODE_UNFIT_POD)
    return min(unfit.counts, key=lambda r: (-unfit.counts[r], _RANK.get(str(r), len(_RANK))))


def explain(
    pod: PodRequest,
    view: ClusterView,
    vendors: Mapping[str, Vendor],
    candidates: Collection[str] | None = None,
    quota: Mapping[str, QuotaRoom] | None = None,
    problems: Mapping[str, str] | None = None,
) -> Explanation:
    """Run the decision core for ``pod`` and explain its per-node reasons; ``problems``: what
    the caller knows of a node without devices (its registration is malformed, or of a vendor
    the device config does not enable)."""
    decision = decide(pod, view, vendors, candidates, quota)
    nodes = tuple(
        NodeReason(name, str(main_reason(unfit)), unfit.text())
        for name, unfit in sorted(decision.failed.items())
    )
    total = len(set(candidates)) if candidates is not None else len(view)
    if not decision.wants_devices or decision.placed:
        return Explanation(pod.key, decision.wants_devices, decision.node, total, (), nodes)
    facts = _Facts(pod, view, quota or {}, decision.failed, problems or {})
    by_reason: dict[str, list[str]] = {}
    for item in nodes:
        by_reason.setdefault(item.reason, []).append(item.node)
    groups = tuple(
        ReasonGroup(reason, tuple(names), facts.hint(reason, names))
        for reason, names in sorted(
            by_reason.items(), key=lambda kv: (-len(kv[1]), _RANK.get(kv[0], 99))
        )
    )
    return Explanation(pod.key, True, None, total, groups, nodes)


# --- hints -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Slot:
    node: str
    device: Device
    usage: DeviceUsage

    @property
    def free_memory(self) -> int:
        return max(self.device.memory - self.usage.usedmem, 0)

    @property
    def free_cores(self) -> int:
        return max(self.device.cores - self.usage.usedcores, 0)

    @property
    def open(self) -> bool:
        """Healthy, not cordoned away and with a task slot left."""
        return self.device.health and self.usage.used < self.device.count

    @property
    def where(self) -> str:
        return f"{self.node}/{self.device.uuid}"


class _Facts:
    """What the hints consult: the pod's largest asks and the devices of the ruled-out nodes."""

    def __init__(
        self,
        pod: PodRequest,
        view: ClusterView,
        quota: Mapping[str, QuotaRoom],
        failed: Mapping[str, Unfit],
        problems: Mapping[str, str],
    ) -> None:
        self.pod = pod
        self.problems = problems
        self.view = view
        self.quota = quota
        self.failed = failed
        self.requests = [r for c in pod.containers for r in c]

    def slots(self, names: Collection[str]) -> Iterator[_Slot]:
        vendors = {r.vendor for r in self.requests}
        for name in names:
            state: NodeState | None = self.view.get(name)
            if state is None:
                continue
            for device, usage in zip(state.node.devices, state.usage, strict=True):
                if device.vendor in vendors and device.uuid not in state.node.cordoned:
                    yield _Slot(name, device, usage)

    def biggest(self, attr: str) -> ContainerRequest:
        return max(self.requests, key=lambda r: (getattr(r, attr), r.nums))

    def hint(self, reason: str, names: list[str]) -> str:
        make = _HINTS.get(reason)
        if make is None:
            return f"HAMi reports {reason} on these nodes"
        return make(self, names)


def plural(count: int, noun: str) -> str:
    """``1 card``, ``2 cards``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _listed(names: Collection[str], most: int = 3) -> str:
    shown = sorted(names)
    return ", ".join(shown[:most]) + (f" and {len(shown) - most} more" if len(shown) > most else "")


def _memory_hint(facts: _Facts, names: list[str]) -> str:
    request = max(facts.requests, key=lambda r: (r.memreq, r.mem_pct % 101, r.nums))
    each = f"on each of {request.nums} cards" if request.nums > 1 else "on one card"
    largest = max(
        (
            d.memory
            for s in facts.view.states()
            for d in s.node.devices
            if d.vendor == request.vendor
        ),
        default=0,
    )
    if request.memreq > largest:
        return (
            f"no {request.vendor} card in the cluster has {request.memreq} MiB; the largest is "
            f"{largest} MiB — ask for at most {largest} MiB"
        )
    best: tuple[int, _Slot] | None = None
    for slot in facts.slots(names):
        if slot.open:
            short = request.memory_on(slot.device) - slot.free_memory
            if best is None or short < best[0]:
                best = (short, slot)
    need = f"{request.memreq} MiB" if request.memreq else f"{request.mem_pct}% of the card's memory"
    if best is None:
        return f"needs {need} {each}; no card with a free task slot on these nodes"
    short, slot = best
    return (
        f"needs {need} {each}; the largest free slice is {slot.free_memory} MiB on "
        f"{slot.where} — free {max(short, 0)} MiB there or ask for less"
    )


def _cores_hint(facts: _Facts, names: list[str]) -> str:
    request = facts.biggest("coresreq")
    cores = min(request.coresreq, 100)
    open_slots = [s for s in facts.slots(names) if s.open]
    if not open_slots:
        return f"needs {cores}% of a card's cores; no card with a free task slot on these nodes"
    slot = max(open_slots, key=lambda s: s.free_cores)
    return (
        f"needs {cores}% of a card's cores; the most free is {slot.free_cores}% on "
        f"{slot.where} — free {max(cores - slot.free_cores, 0)}% there or ask for fewer cores"
    )


def _slots_hint(facts: _Facts, names: list[str]) -> str:
    full = [s for s in facts.slots(names) if s.usage.used >= s.device.count]
    split = sorted({s.device.count for s in full})
    each = "/".join(str(n) for n in split) or "?"
    return (
        f"every task slot is taken on {plural(len(full), 'card')} ({each} tasks per card) — wait for a "
        "pod on them to finish, or raise deviceSplitCount on the device plugin"
    )


def _compute_units_hint(facts: _Facts, names: list[str]) -> str:
    return (
        "the pod asks for no cores, but every core of these cards is allocated — ask for "
        "some nvidia.com/gpucores or free cores on a card"
    )


def _exclusive_hint(facts: _Facts, names: list[str]) -> str:
    idle = sum(1 for s in facts.slots(names) if s.open and s.usage.used == 0)
    exclusive = facts.biggest("coresreq").coresreq >= 100
    why = "a whole card (gpucores 100)" if exclusive else "a card of its own (gpu policy mutex)"
    return (
        f"asks for {why} but the cards are shared; {plural(idle, 'idle card')} on these nodes — "
        "move a pod off one card or ask for fewer cores"
    )


def _type_hint(facts: _Facts, names: list[str]) -> str:
    opts = facts.pod.options
    rules = [
        f"use-gputype={','.join(opts.use_types)}" if opts.use_types else "",
        f"nouse-gputype={','.join(opts.nouse_types)}" if opts.nouse_types else "",
        f"vgpu-mode={opts.vgpu_mode}" if opts.vgpu_mode is not None else "",
    ]
    kinds: dict[str, int] = {}
    for slot in facts.slots(names):
        label = f"{slot.device.type} ({slot.device.mode or 'default'})"
        kinds[label] = kinds.get(label, 0) + 1
    have = ", ".join(f"{n}× {k}" for k, n in sorted(kinds.items())) or "no cards"
    filters = " ".join(r for r in rules if r) or "the type filter"
    return f"{filters} matches no card here; these nodes have {have} — change the filter"


def _uuid_hint(facts: _Facts, names: list[str]) -> str:
    opts = facts.pod.options
    rules = [
        f"use-gpuuuid={','.join(opts.use_uuids)}" if opts.use_uuids else "",
        f"nouse-gpuuuid={','.join(opts.nouse_uuids)}" if opts.nouse_uuids else "",
    ]
    wanted = set(opts.use_uuids)
    where = sorted(
        s.node.name for s in facts.view.states() if wanted & {d.uuid for d in s.node.devices}
    )
    found = f"; {', '.join(where)} has them" if where else "; no node registers them"
    return f"{' '.join(r for r in rules if r)} excludes every card here{found}"


def _health_hint(facts: _Facts, names: list[str]) -> str:
    sick = sum(1 for s in facts.slots(names) if not s.device.health)
    report = "reports" if sick == 1 else "report"
    return f"{plural(sick, 'card')} {report} unhealthy — check the GPUs and the device plugin's log"


def _cordon_hint(facts: _Facts, names: list[str]) -> str:
    return (
        "the cards are cordoned (hami.io/device-cordon on the node) — remove them from the "
        "cordon list or wait for the operator"
    )


def _numa_hint(facts: _Facts, names: list[str]) -> str:
    nums = facts.biggest("nums").nums
    groups: dict[tuple[str, int], int] = {}
    for slot in facts.slots(names):
        if slot.open:
            key = (slot.node, slot.device.numa)
            groups[key] = groups.get(key, 0) + 1
    if not groups:
        return f"numa-bind needs {plural(nums, 'card')} on one NUMA node; none has a free card"
    (node, numa), most = max(groups.items(), key=lambda kv: (kv[1], kv[0]))
    return (
        f"numa-bind needs {plural(nums, 'card')} on one NUMA node; the most is {most} on {node} "
        f"NUMA {numa} — ask for fewer cards or drop hami.io/numa-bind"
    )


def _mig_hint(facts: _Facts, names: list[str]) -> str:
    request = facts.biggest("memreq")
    best: tuple[int, str, str] | None = None
    for slot in facts.slots(names):
        profiles = slot.device.mig_profiles
        for profile in sorted(profiles, key=lambda p: -p.memory_mb):
            if mig.choose_instance([profile], slot.usage.mig, 0) is not None:
                if best is None or profile.memory_mb > best[0]:
                    best = (profile.memory_mb, profile.name, slot.where)
                break
    if best is None:
        return "no MIG instance can be placed on these GPUs — free an instance"
    memory, name, where = best
    return (
        f"needs a MIG instance with {request.memreq} MiB; the largest free one is {name} "
        f"({memory} MiB) on {where} — free an instance there or ask for less memory"
    )


def _device_count_hint(facts: _Facts, names: list[str]) -> str:
    """Compared with the whole cluster: which nodes have the vendor at all (a pod of several
    vendors needs one node with all of them), and the most cards of it on one node."""
    holders: dict[str, dict[str, int]] = {}  # vendor → node → devices
    for state in facts.view.states():
        for device in state.node.devices:
            count = holders.setdefault(device.vendor, {})
            count[state.node.name] = count.get(state.node.name, 0) + 1
    wanted = sorted({r.vendor for r in facts.requests})
    missing = [v for v in wanted if v not in holders]
    if missing:
        return f"no node in the cluster has {' or '.join(missing)} devices — is that vendor's device plugin running?"
    if len(wanted) > 1:
        both = set.intersection(*(set(holders[v]) for v in wanted))
        if not both:
            have = "; ".join(f"{v} on {_listed(holders[v])}" for v in wanted)
            pair = " and ".join(wanted) if len(wanted) == 2 else "all of " + ", ".join(wanted)
            return (
                f"no node has {'both ' if len(wanted) == 2 else ''}{pair} ({have}) — split the pod"
            )
    request = facts.biggest("nums")
    counts = holders[request.vendor]
    node, most = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    lacking = [n for n in names if n not in counts]
    if request.nums > most:
        return (
            f"asks for {plural(request.nums, f'{request.vendor} card')} in one container; the most "
            f"on one node is {most} ({node}) — ask for fewer cards"
        )
    if lacking:
        return (
            f"{plural(len(lacking), 'node')} here {'has' if len(lacking) == 1 else 'have'} no "
            f"{request.vendor} device; {request.vendor} is on {_listed(counts)}"
        )
    return (
        f"asks for {plural(request.nums, f'{request.vendor} card')} in one container; these nodes "
        f"have fewer free — free cards on {node} ({most} there)"
    )


def _partial_hint(facts: _Facts, names: list[str]) -> str:
    request = facts.biggest("nums")
    got = {
        n: facts.failed[n].counts.get(Reason.ALLOCATED_CARDS_INSUFFICIENT_REQUEST, 0) for n in names
    }
    node, most = max(got.items(), key=lambda kv: (kv[1], kv[0]))
    return (
        f"only {most} of the {plural(request.nums, 'card')} it asks for fit at once (on {node}) — "
        "free more cards on one node or ask for fewer"
    )


def _quota_hint(facts: _Facts, names: list[str]) -> str:
    parts = []
    for vendor, room in sorted(facts.quota.items()):
        mine = [r for r in facts.requests if r.vendor == vendor]
        memory = sum(r.memreq * r.nums for r in mine)
        cores = sum(min(r.coresreq, 100) * r.nums for r in mine)
        if room.memory is not None:
            parts.append(f"{vendor} memory: {room.memory} MiB left, the pod asks {memory} MiB")
        if room.cores is not None:
            parts.append(f"{vendor} cores: {room.cores} left, the pod asks {cores}")
    left = "; ".join(parts) or "the namespace quota is used up"
    return f"{left} — raise the namespace's ResourceQuota, free quota or ask for less"


def _unregistered_hint(facts: _Facts, names: list[str]) -> str:
    known = [f"{n}: {facts.problems[n]}" for n in names if facts.problems.get(n)]
    if known:
        return "; ".join(known[:3]) + (f" (and {len(known) - 3} more)" if len(known) > 3 else "")
    return (
        "no valid device registration (hami.io/node-<vendor>-register) on these nodes — is "
        "hami's device plugin running there, and is its registration well formed?"
    )


def _unknown_vendor_hint(facts: _Facts, names: list[str]) -> str:
    vendors = ", ".join(sorted({r.vendor for r in facts.requests}))
    return f"the pod asks for {vendors}, which the scheduler has no vendor for — enable it"


_HINTS: dict[str, Callable[[_Facts, list[str]], str]] = {
    str(Reason.CARD_INSUFFICIENT_MEMORY): _memory_hint,
    str(Reason.CARD_INSUFFICIENT_CORE): _cores_hint,
    str(Reason.CARD_TIME_SLICING_EXHAUSTED): _slots_hint,
    str(Reason.CARD_COMPUTE_UNITS_EXHAUSTED): _compute_units_hint,
    str(Reason.EXCLUSIVE_DEVICE_ALLOCATE_CONFLICT): _exclusive_hint,
    str(Reason.CARD_TYPE_MISMATCH): _type_hint,
    str(Reason.CARD_UUID_MISMATCH): _uuid_hint,
    str(Reason.CARD_NOT_HEALTH): _health_hint,
    str(Reason.CARD_CORDONED): _cordon_hint,
    str(Reason.NUMA_NOT_FIT): _numa_hint,
    str(Reason.CARD_MIG_TOPOLOGY_INFEASIBLE): _mig_hint,
    str(Reason.NODE_INSUFFICIENT_DEVICE): _device_count_hint,
    str(Reason.ALLOCATED_CARDS_INSUFFICIENT_REQUEST): _partial_hint,
    str(Reason.RESOURCE_QUOTA_NOT_FIT): _quota_hint,
    NODE_UNREGISTERED: _unregistered_hint,
    DEVICE_TYPE_NOT_FOUND: _unknown_vendor_hint,
}
