/*
 * vgpu.h - internal interfaces of libvgpu (not installed). Internal symbols use
 * the vgpu__ prefix and hidden visibility; only hooks carry VGPU_EXPORT.
 */
#ifndef VGPU_INTERNAL_H
#define VGPU_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "../include/libvgpu.h"
#include "cuda_abi.h"
#include "nvml_abi.h"

#define VGPU_EXPORT __attribute__((visibility("default")))
#define VGPU_MAXDEV LVGPU_MAX_DEVICES

/* ---- config.c: the environment, read once ---- */
enum { VGPU_LIM_NONE = 0, VGPU_LIM_SET = 1, VGPU_LIM_INVALID = 2 };
enum { VGPU_POLICY_DEFAULT = 0, VGPU_POLICY_FORCE = 1, VGPU_POLICY_DISABLE = 2 };

struct vgpu_config {
    int disabled;      /* CUDA_DISABLE_CONTROL: pure pass-through */
    int oversubscribe; /* CUDA_OVERSUBSCRIBE (recorded; no spill) */
    int log_level;     /* LIBCUDA_LOG_LEVEL: 0 silent, 1 error (default) .. 4 debug */
    int mem_state[VGPU_MAXDEV];
    uint64_t mem_limit[VGPU_MAXDEV]; /* bytes when mem_state == SET */
    int sm_state[VGPU_MAXDEV];
    unsigned sm_limit[VGPU_MAXDEV]; /* 1..99 when sm_state == SET */
    int policy;                     /* GPU_CORE_UTILIZATION_POLICY */
    int priority;                   /* CUDA_TASK_PRIORITY */
    int ctx_overhead_set;
    uint64_t ctx_overhead; /* LIBVGPU_CONTEXT_OVERHEAD */
    int config_error;      /* some value was malformed */
    char shm_path[1024];   /* CUDA_DEVICE_MEMORY_SHARED_CACHE */
};
const struct vgpu_config *vgpu__config(void);
/* parsers, exposed for the unit tests through the config test program */
int vgpu__parse_size(const char *s, uint64_t *out); /* 0 ok, -1 malformed */
int vgpu__parse_bool(const char *s, int *out);

/* ---- log.c writes a line; config.c's vgpu__log gates it by LIBCUDA_LOG_LEVEL ---- */
enum { VGPU_LOG_ERROR = 1, VGPU_LOG_WARN = 2, VGPU_LOG_INFO = 3, VGPU_LOG_DEBUG = 4 };
void vgpu__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vgpu__log_raw(int level, int log_level, const char *msg);

/* ---- dispatch.c: real entry points ---- */
#define VGPU_CUDA_REAL(X) \
    X(cuInit, (unsigned int flags)) \
    X(cuGetProcAddress, (const char *s, void **pfn, int ver, cuuint64_t flags)) \
    X(cuGetProcAddress_v2, (const char *s, void **pfn, int ver, cuuint64_t flags, \
                            CUdriverProcAddressQueryResult *st)) \
    X(cuMemAlloc, (CUdeviceptr_v1 *dptr, unsigned int size)) \
    X(cuMemAlloc_v2, (CUdeviceptr *dptr, size_t size)) \
    X(cuMemFree, (CUdeviceptr_v1 dptr)) \
    X(cuMemFree_v2, (CUdeviceptr dptr)) \
    X(cuMemAllocPitch, (CUdeviceptr_v1 *dptr, unsigned int *pitch, unsigned int w, \
                        unsigned int h, unsigned int elem)) \
    X(cuMemAllocPitch_v2, (CUdeviceptr *dptr, size_t *pitch, size_t w, size_t h, \
                           unsigned int elem)) \
    X(cuMemAllocManaged, (CUdeviceptr *dptr, size_t size, unsigned int flags)) \
    X(cuMemGetInfo, (unsigned int *free_b, unsigned int *total_b)) \
    X(cuMemGetInfo_v2, (size_t *free_b, size_t *total_b)) \
    X(cuDeviceTotalMem, (unsigned int *bytes, CUdevice dev)) \
    X(cuDeviceTotalMem_v2, (size_t *bytes, CUdevice dev)) \
    X(cuArrayCreate_v2, (CUarray *arr, const CUDA_ARRAY_DESCRIPTOR *d)) \
    X(cuArray3DCreate_v2, (CUarray *arr, const CUDA_ARRAY3D_DESCRIPTOR *d)) \
    X(cuArrayDestroy, (CUarray arr)) \
    X(cuMipmappedArrayCreate, (CUmipmappedArray *h, const CUDA_ARRAY3D_DESCRIPTOR *d, \
                               unsigned int levels)) \
    X(cuMipmappedArrayDestroy, (CUmipmappedArray h)) \
    X(cuMemCreate, (CUmemGenericAllocationHandle *h, size_t size, \
                    const CUmemAllocationProp *prop, unsigned long long flags)) \
    X(cuMemRelease, (CUmemGenericAllocationHandle h)) \
    X(cuMemAllocAsync, (CUdeviceptr *dptr, size_t size, CUstream s)) \
    X(cuMemAllocAsync_ptsz, (CUdeviceptr *dptr, size_t size, CUstream s)) \
    X(cuMemFreeAsync, (CUdeviceptr dptr, CUstream s)) \
    X(cuMemFreeAsync_ptsz, (CUdeviceptr dptr, CUstream s)) \
    X(cuMemAllocFromPoolAsync, (CUdeviceptr *dptr, size_t size, CUmemoryPool p, CUstream s)) \
    X(cuMemAllocFromPoolAsync_ptsz, (CUdeviceptr *dptr, size_t size, CUmemoryPool p, \
                                     CUstream s)) \
    X(cuMemPoolTrimTo, (CUmemoryPool p, size_t keep)) \
    X(cuMemPoolDestroy, (CUmemoryPool p)) \
    X(cuGraphAddMemAllocNode, (CUgraphNode *n, CUgraph g, const CUgraphNode *deps, \
                               size_t ndeps, CUDA_MEM_ALLOC_NODE_PARAMS *p)) \
    X(cuDeviceGraphMemTrim, (CUdevice dev)) \
    X(cuGraphLaunch, (CUgraphExec e, CUstream s)) \
    X(cuGraphLaunch_ptsz, (CUgraphExec e, CUstream s)) \
    X(cuGraphUpload, (CUgraphExec e, CUstream s)) \
    X(cuGraphUpload_ptsz, (CUgraphExec e, CUstream s)) \
    X(cuGraphExecDestroy, (CUgraphExec e)) \
    X(cuDevicePrimaryCtxRetain, (CUcontext *ctx, CUdevice dev)) \
    X(cuDevicePrimaryCtxRelease_v2, (CUdevice dev)) \
    X(cuDevicePrimaryCtxReset_v2, (CUdevice dev)) \
    X(cuCtxCreate_v2, (CUcontext *ctx, unsigned int flags, CUdevice dev)) \
    X(cuCtxCreate_v3, (CUcontext *ctx, void *params, int n, unsigned int flags, CUdevice dev)) \
    X(cuCtxCreate_v4, (CUcontext *ctx, void *params, unsigned int flags, CUdevice dev)) \
    X(cuCtxDestroy_v2, (CUcontext ctx)) \
    X(cuLaunchKernel, (CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, \
                       unsigned by, unsigned bz, unsigned shm, CUstream s, void **args, \
                       void **extra)) \
    X(cuLaunchKernel_ptsz, (CUfunction f, unsigned gx, unsigned gy, unsigned gz, \
                            unsigned bx, unsigned by, unsigned bz, unsigned shm, CUstream s, \
                            void **args, void **extra)) \
    X(cuLaunchKernelEx, (const CUlaunchConfig *cfg, CUfunction f, void **args, void **extra)) \
    X(cuLaunchKernelEx_ptsz, (const CUlaunchConfig *cfg, CUfunction f, void **args, \
                              void **extra)) \
    X(cuLaunchCooperativeKernel, (CUfunction f, unsigned gx, unsigned gy, unsigned gz, \
                                  unsigned bx, unsigned by, unsigned bz, unsigned shm, \
                                  CUstream s, void **args)) \
    X(cuLaunchCooperativeKernel_ptsz, (CUfunction f, unsigned gx, unsigned gy, unsigned gz, \
                                       unsigned bx, unsigned by, unsigned bz, unsigned shm, \
                                       CUstream s, void **args))

/* driver functions libvgpu calls but does not hook */
#define VGPU_CUDA_HELPERS(X) \
    X(cuCtxGetCurrent, (CUcontext *ctx)) \
    X(cuCtxGetDevice, (CUdevice *dev)) \
    X(cuDeviceGetCount, (int *n)) \
    X(cuDeviceGetUuid, (CUuuid *u, CUdevice dev)) \
    X(cuDeviceGetUuid_v2, (CUuuid *u, CUdevice dev)) \
    X(cuDeviceGetAttribute, (int *v, int attr, CUdevice dev)) \
    X(cuMemGetAllocationGranularity, (size_t *g, const CUmemAllocationProp *p, int opt)) \
    X(cuMemPoolGetAttribute, (CUmemoryPool p, int attr, void *v)) \
    X(cuDeviceGetMemPool, (CUmemoryPool *p, CUdevice dev)) \
    X(cuDeviceGetGraphMemAttribute, (CUdevice dev, int attr, void *v)) \
    X(cuStreamIsCapturing, (CUstream s, CUstreamCaptureStatus *st)) \
    X(cuStreamIsCapturing_ptsz, (CUstream s, CUstreamCaptureStatus *st)) \
    X(cuEventCreate, (CUevent *e, unsigned int flags)) \
    X(cuEventRecord, (CUevent e, CUstream s)) \
    X(cuEventRecord_ptsz, (CUevent e, CUstream s)) \
    X(cuEventQuery, (CUevent e)) \
    X(cuEventElapsedTime, (float *ms, CUevent a, CUevent b)) \
    X(cuEventDestroy_v2, (CUevent e))

#define VGPU_NVML_REAL(X) \
    X(nvmlDeviceGetMemoryInfo, (nvmlDevice_t d, nvmlMemory_t *m)) \
    X(nvmlDeviceGetMemoryInfo_v2, (nvmlDevice_t d, nvmlMemory_v2_t *m)) \
    X(nvmlDeviceGetComputeRunningProcesses, (nvmlDevice_t d, unsigned *n, void *p)) \
    X(nvmlDeviceGetComputeRunningProcesses_v2, (nvmlDevice_t d, unsigned *n, void *p)) \
    X(nvmlDeviceGetComputeRunningProcesses_v3, (nvmlDevice_t d, unsigned *n, void *p)) \
    X(nvmlDeviceGetGraphicsRunningProcesses, (nvmlDevice_t d, unsigned *n, void *p)) \
    X(nvmlDeviceGetGraphicsRunningProcesses_v2, (nvmlDevice_t d, unsigned *n, void *p)) \
    X(nvmlDeviceGetGraphicsRunningProcesses_v3, (nvmlDevice_t d, unsigned *n, void *p)) \
    X(nvmlDeviceGetMPSComputeRunningProcesses, (nvmlDevice_t d, unsigned *n, void *p)) \
    X(nvmlDeviceGetMPSComputeRunningProcesses_v2, (nvmlDevice_t d, unsigned *n, void *p)) \
    X(nvmlDeviceGetMPSComputeRunningProcesses_v3, (nvmlDevice_t d, unsigned *n, void *p))

#define VGPU_NVML_HELPERS(X) \
    X(nvmlInit_v2, (void)) \
    X(nvmlDeviceGetHandleByIndex_v2, (unsigned i, nvmlDevice_t *d)) \
    X(nvmlDeviceGetUUID, (nvmlDevice_t d, char *buf, unsigned len)) \
    X(nvmlDeviceGetIndex, (nvmlDevice_t d, unsigned *i)) \
    X(nvmlDeviceGetHandleByUUID, (const char *uuid, nvmlDevice_t *d))

struct vgpu_real {
#define VGPU_X(n, p) CUresult(*n) p;
    VGPU_CUDA_REAL(VGPU_X)
    VGPU_CUDA_HELPERS(VGPU_X)
#undef VGPU_X
#define VGPU_X(n, p) nvmlReturn_t(*n) p;
    VGPU_NVML_REAL(VGPU_X)
    VGPU_NVML_HELPERS(VGPU_X)
#undef VGPU_X
};
extern struct vgpu_real vgpu__real;

/* the exported hooks, declared with the driver's prototypes */
#define VGPU_X(n, p) VGPU_EXPORT CUresult n p;
VGPU_CUDA_REAL(VGPU_X)
#undef VGPU_X
#define VGPU_X(n, p) VGPU_EXPORT nvmlReturn_t n p;
VGPU_NVML_REAL(VGPU_X)
#undef VGPU_X

void vgpu__init_cuda(void); /* config + real CUDA entry points, once */
int vgpu__init_nvml(void);  /* real NVML entry points, once; 0 when present */
void *vgpu__hook_for(void *real_fn, const char *symbol, int ver, cuuint64_t flags);
int vgpu__passthrough(void); /* CUDA_DISABLE_CONTROL */
/* a hook's real entry or, when the driver lacks it, CUDA_ERROR_NOT_FOUND */
#define VGPU_NEED(name) \
    do { vgpu__init_cuda(); if (!vgpu__real.name) return CUDA_ERROR_NOT_FOUND; } while (0)

/* ---- region.c: the shared region ---- */
enum { VGPU_KIND_CTX = 0, VGPU_KIND_DATA = 2 };
int vgpu__charge(int dev, uint64_t bytes, int kind, int force); /* 0 ok, -1 over limit */
void vgpu__uncharge(int dev, uint64_t bytes, int kind);
uint64_t vgpu__usage(int dev);                  /* container-wide, live slots only */
int vgpu__limit(int dev, uint64_t *limit);      /* 0 unlimited, 1 limited, -1 deny all */
int vgpu__region_index(int dev);                /* CUDA ordinal -> region device index */
int vgpu__region_index_by_uuid(const char *uuid); /* -1 when unknown */
uint64_t vgpu__usage_by_index(int idx);
uint64_t vgpu__limit_by_index(int idx);
lvgpu_region_t *vgpu__region(void);             /* NULL when unavailable */
int vgpu__pid_in_container(unsigned pid, int *local_pid);
void vgpu__region_note_sm(int dev, unsigned util_pct);
void vgpu__region_fork_lock(void);
void vgpu__region_fork_unlock(void);
void vgpu__region_fork_child(void); /* in the child: forget the parent's slot; unlocks */

/* ---- track.c: what this process allocated ---- */
enum { VGPU_T_PTR = 1, VGPU_T_VMM, VGPU_T_ARRAY, VGPU_T_MIPMAP, VGPU_T_POOL, VGPU_T_GRAPHMEM,
       VGPU_T_CTX };
struct vgpu_track {
    int ns;
    uint64_t key;
    int dev;
    uint64_t bytes;
    int kind;
    CUcontext ctx;
    uint64_t aux; /* pool handle for stream-ordered pointers */
};
void vgpu__track_put(const struct vgpu_track *t);
int vgpu__track_take(int ns, uint64_t key, struct vgpu_track *out); /* 0 found */
int vgpu__track_get(int ns, uint64_t key, struct vgpu_track *out);
void vgpu__track_update(int ns, uint64_t key, uint64_t bytes);
/* remove every entry of ctx, uncharging it; returns how many */
int vgpu__track_drop_ctx(CUcontext ctx);
void vgpu__track_reset(void); /* after fork */
void vgpu__track_fork_lock(void);
void vgpu__track_fork_unlock(void);

/* ---- helpers shared by hook files ---- */
int vgpu__current(int *dev, CUcontext *ctx); /* ctx.c; 0 when a context is current */
void vgpu__ctx_ensure_charged(int dev, CUcontext ctx);
void vgpu__pool_reconcile(CUmemoryPool pool, int dev);
void vgpu__graphmem_reconcile(int dev);
void vgpu__pool_release(uint64_t pool, uint64_t bytes);
void vgpu__pools_reset(void);
void vgpu__free_tracked_ptr(CUdeviceptr p); /* handles pool pointers too */
void vgpu__after_graph_launch(void);
void vgpu__ctx_reset(void);
void vgpu__ctx_fork_lock(void);
void vgpu__ctx_fork_unlock(void);
void vgpu__pools_fork_lock(void);
void vgpu__pools_fork_unlock(void);

/* ---- limiter.c: compute share ---- */
void vgpu__limit_launch(CUstream s, int ptsz, const void *key);
void vgpu__limit_after_launch(CUstream s, int ptsz, const void *key);
void vgpu__limiter_reset(void);

/* ---- time ---- */
uint64_t vgpu__now_ns(void);

#endif /* VGPU_INTERNAL_H */
