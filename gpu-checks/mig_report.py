"""Read-only MIG report with the real NVML backend (hami.agent.mig.nvml): per GPU, whether it
supports MIG, its current (and pending) MIG mode, the GPU-instance profiles with their
possible placements as the plugin would register them (`migProfiles`), and the GPU and
compute instances that exist now.

It NEVER changes anything: no MIG-mode switch, no instance created or destroyed. The backend
object it builds is wrapped so that every mutating method raises before reaching NVML.

Run by gpu-checks/mig_report.sh (which sets PYTHONPATH); needs only the standard library, the
project's `src/` and pynvml. Exit status 0 when the report could be read (MIG or not).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from hami.agent.discovery.nvml import NvmlSource
from hami.agent.errors import AgentError
from hami.agent.mig.catalog import MigError

MUTATING = frozenset(
    {
        "set_enabled",
        "create_gpu_instance",
        "create_compute_instance",
        "destroy_compute_instance",
        "destroy_gpu_instance",
    }
)


class ReadOnly:
    """Forwards the reading half of the MIG port; the mutating half raises."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        if name in MUTATING:
            raise RuntimeError(f"mig_report is read-only: {name} is not allowed")
        return getattr(self._backend, name)


def pending_mode(nvml: Any, handle: Any) -> tuple[int, int] | None:
    try:
        current, pending = nvml.nvmlDeviceGetMigMode(handle)
    except nvml.NVMLError:
        return None
    return int(current), int(pending)


def report_gpu(source: NvmlSource, mig: ReadOnly, gpu: Any) -> dict[str, Any]:
    nvml = source._nvml
    handle = source._handles[gpu.uuid]
    out: dict[str, Any] = {"index": gpu.index, "uuid": gpu.uuid, "model": gpu.model}
    modes = pending_mode(nvml, handle)
    out["migCapable"] = modes is not None
    if modes is None:
        return out
    out["migMode"] = {"current": "enabled" if modes[0] else "disabled"}
    out["migMode"]["pending"] = "enabled" if modes[1] else "disabled"
    out["migProfiles"] = [
        {
            "name": p.name,
            "memoryMB": p.memory_mb,
            "core": p.core,
            "sliceCount": p.slice_count,
            "placements": [{"start": x.start, "size": x.size} for x in p.placements],
        }
        for p in mig.profiles(gpu.uuid)
    ]
    try:
        instances = mig.instances(gpu.uuid) if modes[0] else []
        out["instances"] = [
            {
                "profile": i.profile,
                "placement": {"start": i.placement.start, "size": i.placement.size},
                "gpuInstanceID": i.gpu_instance_id,
                "computeInstanceID": i.compute_instance_id,
                "migUUID": i.mig_uuid,
            }
            for i in instances
        ]
        out["busy"] = mig.busy(gpu.uuid)
    except MigError as exc:
        out["instancesError"] = str(exc)
    return out


def main() -> int:
    try:
        source = NvmlSource.open()
    except AgentError as exc:
        print(f"mig_report: ERROR: {exc}", file=sys.stderr)
        return 2
    try:
        mig = ReadOnly(source.mig())
        gpus = [report_gpu(source, mig, g) for g in source.gpus()]
    finally:
        source.close()
    print(json.dumps({"gpus": gpus}, indent=2))
    capable = sum(g["migCapable"] for g in gpus)
    print(f"# {len(gpus)} GPU(s), {capable} MIG-capable; nothing was changed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
