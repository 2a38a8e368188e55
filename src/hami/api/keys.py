"""Resource names and annotation/label keys, exactly as HAMi spells them (wire-format.md §1–§2)."""

from __future__ import annotations

from typing import Final

# --- NVIDIA resource names (defaults; configurable per §1.4) -------------------------------------
NVIDIA_GPU: Final = "nvidia.com/gpu"
NVIDIA_GPUMEM: Final = "nvidia.com/gpumem"
NVIDIA_GPUMEM_PERCENTAGE: Final = "nvidia.com/gpumem-percentage"
NVIDIA_GPUCORES: Final = "nvidia.com/gpucores"
NVIDIA_PRIORITY: Final = "nvidia.com/priority"

# --- generic pod annotations and labels (§2.1) ---------------------------------------------------
VGPU_NODE: Final = "hami.io/vgpu-node"  # annotation and label
VGPU_TIME: Final = "hami.io/vgpu-time"
BIND_TIME: Final = "hami.io/bind-time"
BIND_PHASE: Final = "hami.io/bind-phase"
NODE_SCHEDULER_POLICY: Final = "hami.io/node-scheduler-policy"
GPU_SCHEDULER_POLICY: Final = "hami.io/gpu-scheduler-policy"
DEVICE_SCORING_WEIGHTS: Final = "hami.io/device-scoring-weights"
SCHEDULER_ROLE: Final = "hami.io/scheduler-role"
WEBHOOK_LABEL: Final = "hami.io/webhook"
POD_GROUP_LABEL: Final = "scheduling.x-k8s.io/pod-group"

BIND_PHASE_ALLOCATING: Final = "allocating"
BIND_PHASE_SUCCESS: Final = "success"
BIND_PHASE_FAILED: Final = "failed"

# --- generic node annotations (§2.2) -------------------------------------------------------------
NODE_LOCK: Final = "hami.io/mutex.lock"
DEVICE_CORDON: Final = "hami.io/device-cordon"

# --- NVIDIA keys (§2.3) --------------------------------------------------------------------------
NVIDIA_REGISTER: Final = "hami.io/node-nvidia-register"
NVIDIA_SCORE: Final = "hami.io/node-nvidia-score"
NVIDIA_HANDSHAKE: Final = "hami.io/node-handshake"
NVIDIA_TO_ALLOCATE: Final = "hami.io/vgpu-devices-to-allocate"
NVIDIA_ALLOCATED: Final = "hami.io/vgpu-devices-allocated"
MIG_ALLOCATIONS: Final = "hami.io/vgpu-mig-allocations"
USE_GPUTYPE: Final = "nvidia.com/use-gputype"
NOUSE_GPUTYPE: Final = "nvidia.com/nouse-gputype"
USE_GPUUUID: Final = "nvidia.com/use-gpuuuid"
NOUSE_GPUUUID: Final = "nvidia.com/nouse-gpuuuid"
NUMA_BIND: Final = "nvidia.com/numa-bind"
VGPU_MODE: Final = "nvidia.com/vgpu-mode"

# --- NVIDIA vendor key and device modes ----------------------------------------------------------
NVIDIA_VENDOR: Final = "NVIDIA"
MODE_HAMI_CORE: Final = "hami-core"
MODE_MIG: Final = "mig"
MODE_MPS: Final = "mps"

# --- handshake -----------------------------------------------------------------------------------
HANDSHAKE_REQUESTING: Final = "Requesting"
HANDSHAKE_DELETED: Final = "Deleted"
HANDSHAKE_REPORTED: Final = "Reported"
HANDSHAKE_TIME_LAYOUT: Final = "%Y-%m-%d %H:%M:%S"  # Go layout 2006-01-02 15:04:05
