"""Discovery with the real NVML backend, printed next to `nvidia-smi -q` facts.

Run by gpu-checks/nvml_discovery.sh (which sets PYTHONPATH); needs only the standard library,
the project's `src/` and pynvml (nvidia-ml-py). Exit status 0 when every GPU matches.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hami.agent import devices
from hami.agent.config.settings import NodeConfig
from hami.agent.discovery.nvml import NvmlSource, numa_node
from hami.agent.errors import AgentError
from hami.agent.values import Gpu
from hami.api.annotations import encode_node_devices, encode_pair_scores

_FIELD = re.compile(r"^(\s*)([^:]+?)\s*:\s*(.*)$")


def smi_facts(text: str) -> dict[str, dict[str, str]]:
    """UUID → {bus, memory (MiB), name} from `nvidia-smi -q` output."""
    facts: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("GPU "):  # "GPU 00000000:07:00.0" opens a device block
            current = {"bus": line.split()[1]}
            section = ""
            continue
        match = _FIELD.match(line)
        if not match:
            if line.strip():
                section = line.strip()
            continue
        key, value = match.group(2).strip(), match.group(3).strip()
        if not value:
            section = key
        elif key == "GPU UUID":
            facts[value] = current
        elif key == "Product Name":
            current["name"] = value
        elif key == "Total" and section == "FB Memory Usage":
            current["memory"] = value.split()[0]
    return facts


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smi", type=Path, required=True, help="saved `nvidia-smi -q` output")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        source = NvmlSource.open()
    except AgentError as exc:
        print(f"nvml_report: {exc}", file=sys.stderr)
        return 2
    try:
        gpus = source.gpus()
        scores = source.pair_scores()
    finally:
        source.close()
    took = time.monotonic() - started
    config = NodeConfig()
    infos = devices.registration(devices.managed(gpus, config), {}, config)
    print(f"# NVML discovery: {len(gpus)} GPU(s) in {took:.2f} s")
    print("\n## hami.io/node-nvidia-register (deviceSplitCount 10, scaling 1)")
    print(encode_node_devices(infos))
    print("\n## hami.io/node-nvidia-score")
    print(encode_pair_scores(scores))
    return compare(gpus, smi_facts(args.smi.read_text()))


def _close(smi_mib: str, nvml_mib: int) -> bool:
    """Drivers differ on whether reserved memory counts; accept 1 % (the table shows both)."""
    return smi_mib.isdigit() and abs(int(smi_mib) - nvml_mib) <= max(int(smi_mib), 1) / 100


def compare(gpus: Sequence[Gpu], facts: dict[str, dict[str, str]]) -> int:
    print(
        "\n## NVML vs nvidia-smi -q (NUMA: NVML backend's sysfs read vs sysfs for the smi bus id)"
    )
    header = (
        f"{'idx':>3}  {'uuid':<42} {'MiB nvml':>9} {'MiB smi':>8} {'numa':>4} {'smi':>4}  verdict"
    )
    print(header)
    print("-" * len(header))
    bad = 0
    for gpu in gpus:
        smi = facts.get(gpu.uuid, {})
        smi_numa = numa_node(smi["bus"]) if "bus" in smi else -1
        ok = bool(smi) and _close(smi.get("memory", ""), gpu.memory_mib) and smi_numa == gpu.numa
        bad += not ok
        print(
            f"{gpu.index:>3}  {gpu.uuid:<42} {gpu.memory_mib:>9} {smi.get('memory', '?'):>8} "
            f"{gpu.numa:>4} {smi_numa:>4}  {'OK' if ok else 'MISMATCH'}  {gpu.model}"
            f"{'' if gpu.mig_profiles == () else f'  MIG: {len(gpu.mig_profiles)} profiles'}"
        )
    missing = set(facts) - {g.uuid for g in gpus}
    for uuid in sorted(missing):
        print(f"  nvidia-smi reports {uuid} but NVML discovery did not")
    print(f"\nresult: {'PASS' if not bad and not missing else 'FAIL'}")
    return 0 if not bad and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
