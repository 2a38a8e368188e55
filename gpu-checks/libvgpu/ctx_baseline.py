"""Context overhead without libvgpu: the process's NVML usage after CUDA init."""

import os
import subprocess
import time

import torch

torch.zeros(1, device="cuda")
time.sleep(1.5)
out = subprocess.run(
    ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
    capture_output=True,
    text=True,
    check=False,
).stdout
for line in out.splitlines():
    pid, used = (x.strip() for x in line.split(","))
    if int(pid) == os.getpid():
        print(used)
