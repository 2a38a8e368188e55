"""Check 1: PyTorch under CUDA_DEVICE_MEMORY_LIMIT (run with libvgpu preloaded).

Prints one line of key=value pairs. The NVML view of this process is taken with
nvidia-smi *without* the preload (the host's truth); the in-container view with it.
"""

import os
import subprocess
import sys
import time

import torch

LIMIT = int(sys.argv[1]) << 20
CTX_MIB = int(sys.argv[2])  # context overhead measured by the caller without the library
MIB = 1 << 20


def smi(args: list[str], preload: bool) -> str:
    env = dict(os.environ)
    if not preload:
        env.pop("LD_PRELOAD", None)
    return subprocess.run(
        ["nvidia-smi", *args], env=env, capture_output=True, text=True, check=False
    ).stdout


free, total = torch.cuda.mem_get_info()
total_ok = total == LIMIT
blocks = []
oom = False
try:
    while True:
        blocks.append(torch.empty(16 * MIB, dtype=torch.uint8, device="cuda"))
except torch.cuda.OutOfMemoryError:
    oom = True
free, total = torch.cuda.mem_get_info()
tracked = total - free
boundary_ok = oom and LIMIT - 64 * MIB <= tracked <= LIMIT
time.sleep(1.5)
used_mib = 0
for line in smi(["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"], False).splitlines():
    pid, used = (x.strip() for x in line.split(","))
    if int(pid) == os.getpid():
        used_mib = int(used)
nvml_ok = 0 < used_mib <= (LIMIT >> 20) + CTX_MIB
inside = smi(["--query-gpu=memory.total", "--format=csv,noheader,nounits"], True).split()
smi_ok = bool(inside) and int(inside[0]) == LIMIT >> 20
print(
    f"total_mib={total >> 20} total_ok={int(total_ok)} tracked_mib={tracked >> 20} "
    f"boundary_ok={int(boundary_ok)} nvml_used_mib={used_mib} ctx_mib={CTX_MIB} "
    f"nvml_ok={int(nvml_ok)} smi_total_mib={inside[0] if inside else '?'} smi_ok={int(smi_ok)}"
)
