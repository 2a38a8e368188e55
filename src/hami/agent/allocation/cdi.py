"""CDI mode: a Container Device Interface spec for vendor ``k8s.device-plugin.nvidia.com``,
class ``gpu``, so `Allocate` can answer with CDI device names instead of env vars."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hami.agent.allocation.response import CDI_KIND
from hami.agent.config.settings import Settings
from hami.agent.values import Gpu

CDI_VERSION = "0.5.0"
SPEC_NAME = "k8s.device-plugin.nvidia.com-gpu.json"
_CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")


def spec(gpus: Sequence[Gpu]) -> dict[str, Any]:
    """One CDI device per GPU, named by UUID and by index (for ``--device-id-strategy``)."""
    devices = []
    for gpu in gpus:
        edits = {"deviceNodes": [{"path": f"/dev/nvidia{gpu.index}"}]}
        devices.append({"name": gpu.uuid, "containerEdits": edits})
        devices.append({"name": str(gpu.index), "containerEdits": edits})
    return {
        "cdiVersion": CDI_VERSION,
        "kind": CDI_KIND,
        "devices": devices,
        "containerEdits": {"deviceNodes": [{"path": p} for p in _CONTROL_NODES]},
    }


def write_spec(settings: Settings, gpus: Sequence[Gpu]) -> Path:
    """Write the spec atomically into ``settings.cdi_spec_dir``; returns its path."""
    settings.cdi_spec_dir.mkdir(parents=True, exist_ok=True)
    target = settings.cdi_spec_dir / SPEC_NAME
    scratch = target.with_suffix(".tmp")
    scratch.write_text(json.dumps(spec(gpus), indent=2) + "\n", encoding="utf-8")
    os.replace(scratch, target)
    return target
