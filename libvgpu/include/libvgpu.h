/*
 * libvgpu.h - the public contract of libvgpu.
 *
 * Two things are public and nothing else:
 *   1. the exported symbols (LIBVGPU_EXPORTS below): hook functions carrying the
 *      driver's own names, plus dlsym. `nm -D --defined-only libvgpu.so` lists
 *      exactly these; the test suite checks it.
 *   2. the shared region: the per-container file named by
 *      CUDA_DEVICE_MEMORY_SHARED_CACHE, read by the node monitor.
 *
 * Region ABI. The byte layout is HAMi-core's version 1.2 (magic 19920718,
 * major 1, minor 2), so HAMi's vGPU monitor reads it unchanged. libvgpu does
 * not use the two POSIX semaphores of that layout; their bytes carry a libvgpu
 * extension header instead (lvgpu_ext_t), versioned on its own.
 *
 * Locking protocol (fcntl record locks - libvgpu takes open-file-description
 * locks, F_OFD_*, which conflict with classic POSIX ones - released by the
 * kernel when the owner dies, so a SIGKILL can never wedge the container):
 *   - LVGPU_LOCK_REGION_OFF: exclusive write lock while reading-and-changing
 *     usage of several slots, registering a slot or changing device keys.
 *   - LVGPU_LOCK_SLOT_OFF(i): held (write lock) by the owner of slot i for its
 *     whole life; a slot whose byte nobody holds belongs to a dead process.
 * Slots never move. Counters are 64-bit and written with atomic stores, so a
 * reader without the lock sees each value whole.
 */
#ifndef LIBVGPU_H
#define LIBVGPU_H

#include <stddef.h>
#include <stdint.h>

#define LVGPU_MAGIC 19920718
#define LVGPU_MAJOR 1u
#define LVGPU_MINOR 2u
#define LVGPU_EXT_MAGIC 0x55504756u /* "VGPU" little-endian */
#define LVGPU_EXT_VERSION 1u
#define LVGPU_MAX_DEVICES 16
#define LVGPU_MAX_PROCS 1024
#define LVGPU_UUID_LEN 96

/* slot status values (HAMi meaning) */
#define LVGPU_SLOT_FREE 0
#define LVGPU_SLOT_RUNNING 1
#define LVGPU_SLOT_SUSPENDED 2

/* ext.flags bits */
#define LVGPU_EXT_CONFIG_ERROR 0x1u /* some process found a malformed env value */

typedef struct {
    uint64_t context_size; /* per-context overhead charged */
    uint64_t module_size;  /* always 0 (not tracked separately) */
    uint64_t data_size;    /* allocations */
    uint64_t offset;       /* always 0 */
    uint64_t total;        /* what the limit is checked against */
    uint64_t unused[3];
} lvgpu_devmem_t;

typedef struct {
    uint64_t dec_util;
    uint64_t enc_util;
    uint64_t sm_util; /* libvgpu: its own estimate of GPU busy percent */
    uint64_t unused[3];
} lvgpu_devutil_t;

typedef struct {
    int32_t pid;     /* pid in the process's own namespace */
    int32_t hostpid; /* written by the node agent when known, else 0 */
    lvgpu_devmem_t used[LVGPU_MAX_DEVICES];
    uint64_t monitorused[LVGPU_MAX_DEVICES];
    lvgpu_devutil_t device_util[LVGPU_MAX_DEVICES];
    int32_t status;
    uint64_t seqlock;   /* odd while the owner updates its counters */
    uint64_t unused[2]; /* libvgpu: [0] = slot generation */
} lvgpu_slot_t;

/* the 32 bytes of HAMi's `sem` field */
typedef struct {
    uint32_t magic;   /* LVGPU_EXT_MAGIC */
    uint32_t version; /* LVGPU_EXT_VERSION */
    uint32_t flags;   /* LVGPU_EXT_* */
    uint32_t reserved0;
    uint64_t generation; /* bumped on every slot registration */
    uint64_t reserved1;
} lvgpu_ext_t;

typedef struct {
    int32_t initialized_flag; /* LVGPU_MAGIC once initialised */
    uint32_t major_version;
    uint32_t minor_version;
    int32_t sm_init_flag;
    uint64_t owner_pid; /* unused by libvgpu (HAMi semaphore owner) */
    lvgpu_ext_t ext;    /* HAMi: sem_t sem */
    uint64_t device_num;
    char uuids[LVGPU_MAX_DEVICES][LVGPU_UUID_LEN];
    uint64_t limit[LVGPU_MAX_DEVICES];    /* bytes; 0 = none */
    uint64_t sm_limit[LVGPU_MAX_DEVICES]; /* percent; 0 = none */
    lvgpu_slot_t procs[LVGPU_MAX_PROCS];
    int32_t proc_num; /* high-water mark of slots ever used */
    int32_t utilization_switch;
    int32_t recent_kernel;
    int32_t priority;
    uint64_t last_kernel_time; /* seconds since the epoch */
    uint8_t sem_postinit[32];  /* unused by libvgpu */
} lvgpu_region_t;

#define LVGPU_REGION_SIZE sizeof(lvgpu_region_t)
#define LVGPU_FILE_SIZE (LVGPU_REGION_SIZE + 1)
#define LVGPU_LOCK_REGION_OFF ((long)LVGPU_REGION_SIZE)
#define LVGPU_LOCK_SLOT_OFF(i) ((long)LVGPU_REGION_SIZE + 1 + (long)(i))

#if defined(__x86_64__) || defined(__aarch64__)
_Static_assert(sizeof(lvgpu_devmem_t) == 64, "devmem layout");
_Static_assert(sizeof(lvgpu_devutil_t) == 48, "devutil layout");
_Static_assert(sizeof(lvgpu_slot_t) == 1960, "slot layout");
_Static_assert(offsetof(lvgpu_slot_t, status) == 1928, "slot status");
_Static_assert(offsetof(lvgpu_region_t, procs) == 1856, "procs offset");
_Static_assert(offsetof(lvgpu_region_t, last_kernel_time) == 2008912, "tail");
_Static_assert(sizeof(lvgpu_region_t) == 2008952, "region size");
#endif

/* Exported CUDA driver hooks (the driver's own names and ABIs). */
#define LIBVGPU_CUDA_EXPORTS(X) \
    X(cuInit) X(cuGetProcAddress) X(cuGetProcAddress_v2) \
    X(cuMemAlloc) X(cuMemAlloc_v2) X(cuMemFree) X(cuMemFree_v2) \
    X(cuMemAllocPitch) X(cuMemAllocPitch_v2) X(cuMemAllocManaged) \
    X(cuMemGetInfo) X(cuMemGetInfo_v2) X(cuDeviceTotalMem) X(cuDeviceTotalMem_v2) \
    X(cuArrayCreate_v2) X(cuArray3DCreate_v2) X(cuArrayDestroy) \
    X(cuMipmappedArrayCreate) X(cuMipmappedArrayDestroy) \
    X(cuMemCreate) X(cuMemRelease) \
    X(cuMemAllocAsync) X(cuMemAllocAsync_ptsz) X(cuMemFreeAsync) X(cuMemFreeAsync_ptsz) \
    X(cuMemAllocFromPoolAsync) X(cuMemAllocFromPoolAsync_ptsz) \
    X(cuMemPoolTrimTo) X(cuMemPoolDestroy) \
    X(cuGraphAddMemAllocNode) X(cuDeviceGraphMemTrim) \
    X(cuGraphLaunch) X(cuGraphLaunch_ptsz) X(cuGraphUpload) X(cuGraphUpload_ptsz) \
    X(cuGraphExecDestroy) \
    X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease_v2) X(cuDevicePrimaryCtxReset_v2) \
    X(cuCtxCreate_v2) X(cuCtxCreate_v3) X(cuCtxCreate_v4) X(cuCtxDestroy_v2) \
    X(cuLaunchKernel) X(cuLaunchKernel_ptsz) X(cuLaunchKernelEx) X(cuLaunchKernelEx_ptsz) \
    X(cuLaunchCooperativeKernel) X(cuLaunchCooperativeKernel_ptsz)

/* Exported NVML hooks. */
#define LIBVGPU_NVML_EXPORTS(X) \
    X(nvmlDeviceGetMemoryInfo) X(nvmlDeviceGetMemoryInfo_v2) \
    X(nvmlDeviceGetComputeRunningProcesses) X(nvmlDeviceGetComputeRunningProcesses_v2) \
    X(nvmlDeviceGetComputeRunningProcesses_v3) \
    X(nvmlDeviceGetGraphicsRunningProcesses) X(nvmlDeviceGetGraphicsRunningProcesses_v2) \
    X(nvmlDeviceGetGraphicsRunningProcesses_v3) \
    X(nvmlDeviceGetMPSComputeRunningProcesses) X(nvmlDeviceGetMPSComputeRunningProcesses_v2) \
    X(nvmlDeviceGetMPSComputeRunningProcesses_v3)

/* Plus `dlsym`, which routes driver look-ups to the hooks above. */

#endif /* LIBVGPU_H */
