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

# --- the scheduler's Event reasons (§3.16) -------------------------------------------------------
FILTERING_SUCCEED: Final = "FilteringSucceed"
FILTERING_FAILED: Final = "FilteringFailed"
BINDING_SUCCEED: Final = "BindingSucceed"
BINDING_FAILED: Final = "BindingFailed"

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

# --- other vendors (§2.4, §2.9, §4) ---------------------------------------------------------------
HYGON_VENDOR: Final = "DCU"
HYGON_REGISTER: Final = "hami.io/node-dcu-register"
HYGON_HANDSHAKE: Final = "hami.io/node-handshake-dcu"
HYGON_TO_ALLOCATE: Final = "hami.io/dcu-devices-to-allocate"
HYGON_ALLOCATED: Final = "hami.io/dcu-devices-allocated"
HYGON_USE_TYPE: Final = "hygon.com/use-dcutype"
HYGON_NOUSE_TYPE: Final = "hygon.com/nouse-dcutype"
HYGON_USE_UUID: Final = "hygon.com/use-gpuuuid"
HYGON_NOUSE_UUID: Final = "hygon.com/nouse-gpuuuid"

CAMBRICON_VENDOR: Final = "MLU"
CAMBRICON_TO_ALLOCATE: Final = "hami.io/cambricon-mlu-devices-to-allocate"
CAMBRICON_ALLOCATED: Final = "hami.io/cambricon-mlu-devices-allocated"
CAMBRICON_PROFILE: Final = "CAMBRICON_DSMLU_PROFILE"
CAMBRICON_ASSIGNED: Final = "CAMBRICON_DSMLU_ASSIGNED"
CAMBRICON_LOCK: Final = "cambricon.com/dsmlu.lock"
CAMBRICON_USE_UUID: Final = "cambricon.com/use-gpuuuid"
CAMBRICON_NOUSE_UUID: Final = "cambricon.com/nouse-gpuuuid"
CAMBRICON_MEMORY_UNIT: Final = 256  # MiB per vmemory unit

ILUVATAR_MEMORY_UNIT: Final = 256  # MiB per vMem unit
ILUVATAR_CONTAINER_ENV: Final = "SOL_CONTINER_NAME"  # sic, HAMi's spelling

ASCEND_VNPU_MODE: Final = "huawei.com/vnpu-mode"
ASCEND_NODE_HAMI_CORE: Final = "hami-vnpu-core"
ASCEND_PREDICATE_TIME: Final = "predicate-time"
ASCEND_NETWORK_ID: Final = "NetworkID"
ASCEND_910C: Final = "Ascend910C"

MTHREADS_VENDOR: Final = "Mthreads"
MTHREADS_TO_ALLOCATE: Final = (
    "hami.io/mthreads-vgpu-devices-to-allocate"  # registered, never written
)
MTHREADS_ALLOCATED: Final = "hami.io/mthreads-vgpu-devices-allocated"
MTHREADS_GPU_INDEX: Final = "mthreads.com/gpu-index"
MTHREADS_PREDICATE_TIME: Final = "mthreads.com/predicate-time"
MTHREADS_PREDICATE_NODE: Final = "mthreads.com/predicate-node"
MTHREADS_REQUEST_GPU_NUM: Final = "mthreads.com/request-gpu-num"
MTHREADS_USE_UUID: Final = "mthreads.ai/use-gpuuuid"
MTHREADS_NOUSE_UUID: Final = "mthreads.ai/nouse-gpuuuid"
MTHREADS_MEMORY_UNIT: Final = 512  # MiB per sgpu-memory unit
MTHREADS_CORES_PER_GPU: Final = 16
MTHREADS_FULL_MEMORY_UNITS: Final = 96
MTHREADS_MEMORY_SIZES: Final = (2, 4, 8, 16, 32, 64, 96)

METAX_GPU_VENDOR: Final = "Metax-GPU"
METAX_GPU_TO_ALLOCATE: Final = "hami.io/metax-gpu-devices-to-allocate"
METAX_GPU_ALLOCATED: Final = "hami.io/metax-gpu-devices-allocated"
METAX_TOPOLOGY_LOSSES: Final = "metax-tech.com/gpu.topology.losses"
METAX_TOPOLOGY_SCORES: Final = "metax-tech.com/gpu.topology.scores"
METAX_SGPU_VENDOR: Final = "Metax-SGPU"
METAX_SGPU_TO_ALLOCATE: Final = "hami.io/metax-sgpu-devices-to-allocate"
METAX_SGPU_ALLOCATED: Final = "hami.io/metax-sgpu-devices-allocated"
METAX_SGPU_REGISTER: Final = "metax-tech.com/node-gpu-devices"
METAX_DEVICES_ALLOCATED: Final = "metax-tech.com/gpu-devices-allocated"
METAX_PREDICATE_TIME: Final = "metax-tech.com/predicate-time"
METAX_APP_CLASS: Final = "metax-tech.com/sgpu-app-class"
METAX_QOS_POLICY: Final = "metax-tech.com/sgpu-qos-policy"
METAX_USE_UUID: Final = "metax-tech.com/use-gpuuuid"
METAX_NOUSE_UUID: Final = "metax-tech.com/nouse-gpuuuid"
METAX_APP_ONLINE: Final = "online"
METAX_APP_OFFLINE: Final = "offline"
METAX_APP_CLASSES: Final = (METAX_APP_ONLINE, METAX_APP_OFFLINE)
METAX_TOPOLOGY_AWARE: Final = "metax-tech.com/sgpu-topology-aware"
METAX_QOS_POLICIES: Final = ("best-effort", "fixed-share", "burst-share")

KUNLUN_VENDOR: Final = "kunlun"
KUNLUN_ALLOCATED: Final = "hami.io/kunlun-allocated"
KUNLUN_DEVICE_IDX: Final = "BAIDU_COM_DEVICE_IDX"
KUNLUN_USE_UUID: Final = "baidu.com/use-gpuuuid"
KUNLUN_NOUSE_UUID: Final = "baidu.com/nouse-gpuuuid"
KUNLUN_WHOLE_MEMORY: Final = 98304

BIREN_VENDOR: Final = "Biren"
BIREN_REGISTER: Final = "hami.io/node-biren-register"
BIREN_HANDSHAKE: Final = "hami.io/node-handshake-biren"
BIREN_USE_UUID: Final = "birentech.com/use-gpuuuid"
BIREN_NOUSE_UUID: Final = "birentech.com/nouse-gpuuuid"

VASTAI_VENDOR: Final = "Vastai"
VASTAI_REGISTER: Final = "hami.io/node-va-register"
VASTAI_HANDSHAKE: Final = "hami.io/node-handshake-va"
VASTAI_USE_UUID: Final = "vastaitech.com/use-gpuuuid"
VASTAI_NOUSE_UUID: Final = "vastaitech.com/nouse-gpuuuid"
VASTAI_STRATEGY: Final = "DeviceStrategy"
VASTAI_DIE: Final = "die"
VASTAI_AIC: Final = "AIC"

ENFLAME_GCU_VENDOR: Final = "GCU"
ENFLAME_GCU_TO_ALLOCATE: Final = "hami.io/enflame-gcu-devices-to-allocate"
ENFLAME_GCU_ALLOCATED: Final = "hami.io/enflame-gcu-devices-allocated"
ENFLAME_DRS_VENDOR: Final = "Enflame"
ENFLAME_DRS_ALLOCATED: Final = "hami.io/enflame-vgpu-devices-allocated"
ENFLAME_DRS_CAPACITY: Final = "enflame.com/gcu-drs-capacity"
ENFLAME_USE_UUID: Final = "enflame.com/use-gpuuuid"
ENFLAME_NOUSE_UUID: Final = "enflame.com/nouse-gpuuuid"
ENFLAME_ASSIGNED: Final = "enflame.com/gcu-assigned"
ENFLAME_ASSIGNED_TIME: Final = "enflame.com/gcu-assigned-time"
ENFLAME_ASSIGNED_INDEX: Final = "enflame.com/gcu-assigned-index"
ENFLAME_ASSIGNED_ID: Final = "enflame.com/gcu-assigned-id"
ENFLAME_ASSIGNED_MINOR: Final = "enflame.com/gcu-assigned-minor"
ENFLAME_REQUEST_SIZE: Final = "enflame.com/gcu-request-size"
ENFLAME_ASSIGNED_CONTAINERS: Final = "assigned-containers"  # no prefix (§9 #14)

AMD_VENDOR: Final = "AMD"
AMD_REGISTER: Final = "hami.io/node-amd-register"
AMD_TO_ALLOCATE: Final = "hami.io/amd-devices-to-allocate"
AMD_ALLOCATED: Final = "hami.io/amd-devices-allocated"
AMD_USE_TYPE: Final = "amd.com/use-gputype"
AMD_NOUSE_TYPE: Final = "amd.com/nouse-gputype"
AMD_USE_UUID: Final = "amd.com/use-gpu-uuid"
AMD_NOUSE_UUID: Final = "amd.com/nouse-gpu-uuid"

KUNLUN_VXPU_VENDOR: Final = "XPU"
KUNLUN_VXPU_REGISTER: Final = "hami.io/node-register-xpu"
KUNLUN_VXPU_HANDSHAKE: Final = "hami.io/node-handshake-xpu"
KUNLUN_VXPU_TO_ALLOCATE: Final = "hami.io/xpu-devices-to-allocate"
KUNLUN_VXPU_ALLOCATED: Final = "hami.io/xpu-devices-allocated"
KUNLUN_VXPU_USE_UUID: Final = "hami.io/use-xpu-uuid"
KUNLUN_VXPU_NOUSE_UUID: Final = "hami.io/no-use-xpu-uuid"
KUNLUN_VXPU_SIZES: Final = (24576, 49152, 98304)

# AWS Neuron (§2.4, §2.9): the un-prefixed AWS_NEURON_IDS… are written as HAMi writes them (§9 #14)
NEURON_VENDOR: Final = "AWSNeuron"
NEURON_ALLOCATED: Final = "hami.io/aws-neuron-devices-allocated"
NEURON_USE_UUID: Final = "aws.amazon.com/use-neuron-uuid"
NEURON_NOUSE_UUID: Final = "aws.amazon.com/nouse-neuron-uuid"
NEURON_IDS: Final = "AWS_NEURON_IDS"
NEURON_RESOURCE_TYPE: Final = "NEURON_RESOURCE_TYPE"
NEURON_ALLOC_TIME: Final = "NEURON_ALLOC_TIME"
NEURON_ALLOCATED_FLAG: Final = "NEURON_ALLOCATED"
NEURON_PREDICATE_NODE: Final = "aws.amazon.com/predicate-node"
INSTANCE_TYPE_LABEL: Final = "node.kubernetes.io/instance-type"

# --- who may write what (docs/security.md) -------------------------------------------------------
HAMI_PREFIX: Final = "hami.io/"
# hami.io/ pod annotations a user writes: scheduling hints, and the use/no-use UUID filters
# (`hami.io/use-<vendor>-uuid`, `hami.io/no-use-<vendor>-uuid`)
USER_POD_ANNOTATIONS: Final = frozenset(
    {NODE_SCHEDULER_POLICY, GPU_SCHEDULER_POLICY, DEVICE_SCORING_WEIGHTS}
)
# decision annotations outside hami.io/ that the scheduler writes for other vendors' plugins
VENDOR_DECISION_ANNOTATIONS: Final = frozenset(
    {
        MTHREADS_GPU_INDEX,
        METAX_DEVICES_ALLOCATED,
        NEURON_IDS,
        NEURON_ALLOCATED_FLAG,
        NEURON_RESOURCE_TYPE,
    }
)
# isolation settings the device plugin (or the webhook, from the pod's resources) puts into a GPU
# container's env; a container's own value would win over the plugin's (kubelet applies the
# container's env after the device plugin's), so a GPU container may not set them
ISOLATION_ENV_PREFIXES: Final = ("CUDA_DEVICE_MEMORY_LIMIT", "CUDA_DEVICE_SM_LIMIT")
ISOLATION_ENV: Final = frozenset({"CUDA_DISABLE_CONTROL", "CUDA_DEVICE_MEMORY_SHARED_CACHE"})
# set by the webhook itself from the pod's request or the configuration
WEBHOOK_ENV: Final = frozenset({"CUDA_TASK_PRIORITY", "GPU_CORE_UTILIZATION_POLICY"})


def is_allocation_annotation(key: str) -> bool:
    """A pod annotation only hami's scheduler and device plugins write: every ``hami.io/`` key
    but the user's hints and UUID filters, plus the other vendors' decision keys."""
    if key in VENDOR_DECISION_ANNOTATIONS:
        return True
    if not key.startswith(HAMI_PREFIX) or key in USER_POD_ANNOTATIONS:
        return False
    name = key[len(HAMI_PREFIX) :]
    return not (name.endswith("-uuid") and name.startswith(("use-", "no-use-")))


def env_prefix_reaches_isolation(prefix: str) -> bool:
    """Whether ``envFrom`` with this ``prefix`` could yield an isolation (or webhook-set)
    variable for some key of its ConfigMap or Secret: an empty prefix, or one that some such
    name begins with (``CUDA_``, ``CUDA_DEVICE_MEMORY_LIMIT_1``...). The source's keys are
    not read: the tenant may change them after admission, so only the prefix decides."""
    if not prefix:
        return True
    fixed = ISOLATION_ENV | WEBHOOK_ENV | frozenset(ISOLATION_ENV_PREFIXES)
    if any(name.startswith(prefix) for name in fixed):
        return True
    return any(
        prefix.startswith(p + "_") and prefix[len(p) + 1 :].isdigit()
        for p in ISOLATION_ENV_PREFIXES
    )


def is_isolation_env(name: str) -> bool:
    """A variable that sets or switches off libvgpu's limits (`CUDA_DEVICE_MEMORY_LIMIT`,
    `CUDA_DEVICE_MEMORY_LIMIT_<i>`, `CUDA_DEVICE_SM_LIMIT[_<i>]`, `CUDA_DISABLE_CONTROL`, the
    shared region's path)."""
    if name in ISOLATION_ENV:
        return True
    return any(
        name == p or (name.startswith(p + "_") and name[len(p) + 1 :].isdigit())
        for p in ISOLATION_ENV_PREFIXES
    )
