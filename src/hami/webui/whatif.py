"""What-if: where a pod spec would land on the current view, or why it would not.

The spec goes through the same steps as a pod of `hami sim` (and `SimSource`): the webhook's
admission and `parse_pod`, then `hami.core.decide.decide` over every node of the snapshot; a
pod that fits nowhere gets `hami explain`'s answer. Nothing is committed: the view is unchanged.
Every way a spec can be wrong is a `WhatIfError` whose message is shown on the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import yaml

from hami import yamlio
from hami.core.config import SchedulerConfig
from hami.core.decide import decide
from hami.core.explain import explain
from hami.core.vendor import Vendor
from hami.webui.decode import _pod_info
from hami.webui.snapshot import Snapshot

MAX_SPEC_BYTES = 64 * 1024


class WhatIfError(ValueError):
    """The spec cannot be tried: the message says why, for a person."""


@dataclass(frozen=True, slots=True)
class WhatIf:
    pod: str
    fits: bool
    node: str | None
    devices: list[dict[str, object]]  # container, vendor, uuid, memory, cores
    explain: dict[str, object]

    def to_dict(self) -> dict[str, object]:
        return {
            "pod": self.pod,
            "fits": self.fits,
            "node": self.node,
            "devices": self.devices,
            "explain": self.explain,
        }


def parse_spec(text: str) -> Mapping[str, object]:
    """The one Pod of ``text`` (YAML or JSON); a clear `WhatIfError` otherwise."""
    if not text.strip():
        raise WhatIfError("the spec is empty: paste a Pod manifest (YAML or JSON)")
    if len(text.encode()) > MAX_SPEC_BYTES:
        raise WhatIfError(f"the spec is larger than {MAX_SPEC_BYTES // 1024} KiB")
    try:
        docs = [d for d in yamlio.load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "unparseable"
        raise WhatIfError(f"not valid YAML{where}: {problem}") from None
    if len(docs) != 1:
        raise WhatIfError(f"expected one Pod, found {len(docs)} documents")
    doc = docs[0]
    if not isinstance(doc, Mapping):
        raise WhatIfError("expected a Kubernetes object (a mapping with kind: Pod)")
    kind = doc.get("kind", "Pod")
    if kind != "Pod":
        raise WhatIfError(f"expected kind: Pod, got kind: {kind}")
    spec = doc.get("spec")
    containers = spec.get("containers") if isinstance(spec, Mapping) else None
    if not isinstance(containers, list) or not containers:
        raise WhatIfError("the Pod has no spec.containers")
    return cast(Mapping[str, object], doc)


def what_if(
    text: str, snapshot: Snapshot, vendors: Mapping[str, Vendor], config: SchedulerConfig
) -> WhatIf:
    manifest = dict(parse_spec(text))
    metadata = manifest.get("metadata")
    metadata = dict(metadata) if isinstance(metadata, Mapping) else {}
    metadata.setdefault("name", "what-if")
    metadata.setdefault("namespace", "default")
    manifest["metadata"] = metadata
    manifest.pop("status", None)  # a pasted live pod: try it as new
    annotations = metadata.get("annotations")
    if isinstance(annotations, Mapping):  # …without its old placement
        metadata["annotations"] = {
            k: v for k, v in annotations.items() if not str(k).startswith("hami.io/vgpu-")
        }
    info = _pod_info(manifest, vendors, config, admit=True)
    if info is None:
        raise WhatIfError(
            "the Pod asks for no device any enabled vendor provides: kube-scheduler alone "
            "places it (is the resource name right, e.g. nvidia.com/gpu?)"
        )
    if info.request is None:
        raise WhatIfError(f"the Pod's request is invalid: {info.problem}")
    decision = decide(info.request, snapshot.view, vendors, snapshot.node_names)
    why = explain(info.request, snapshot.view, vendors, candidates=snapshot.node_names)
    devices: list[dict[str, object]] = []
    if decision.fit is not None and decision.node is not None:
        names = info.request.container_names
        for vendor in sorted(decision.fit.picks):
            for position, container in enumerate(decision.fit.devices(vendor)):
                for device in container:
                    devices.append(
                        {
                            "container": names[position]
                            if position < len(names)
                            else str(position),
                            "vendor": vendor,
                            "uuid": device.uuid,
                            "memory_mib": device.usedmem,
                            "cores": device.usedcores,
                        }
                    )
    return WhatIf(info.key, decision.node is not None, decision.node, devices, why.to_dict())
