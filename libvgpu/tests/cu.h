/* cu.h - driver and NVML prototypes the tests call (resolved from the fake
 * libraries at link time; libvgpu's hooks win at run time when preloaded). */
#ifndef VT_CU_H
#define VT_CU_H
#include "../src/cuda_abi.h"
#include "../src/nvml_abi.h"
#include "fake/fake.h"

CUresult cuInit(unsigned int flags);
CUresult cuGetProcAddress(const char *s, void **pfn, int ver, cuuint64_t flags);
CUresult cuGetProcAddress_v2(const char *s, void **pfn, int ver, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *st);
CUresult cuDeviceGetCount(int *n);
CUresult cuDeviceGetUuid_v2(CUuuid *u, CUdevice d);
CUresult cuCtxCreate_v2(CUcontext *c, unsigned int f, CUdevice d);
CUresult cuCtxCreate_v4(CUcontext *c, void *p, unsigned int f, CUdevice d);
CUresult cuCtxDestroy_v2(CUcontext c);
CUresult cuCtxSetCurrent(CUcontext c);
CUresult cuCtxSynchronize(void);
CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d);
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d);
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n);
CUresult cuMemAlloc(CUdeviceptr_v1 *p, unsigned int n);
CUresult cuMemFree_v2(CUdeviceptr p);
CUresult cuMemFree(CUdeviceptr_v1 p);
CUresult cuMemAllocPitch_v2(CUdeviceptr *p, size_t *pitch, size_t w, size_t h, unsigned e);
CUresult cuMemAllocPitch(CUdeviceptr_v1 *p, unsigned *pitch, unsigned w, unsigned h, unsigned e);
CUresult cuMemAllocManaged(CUdeviceptr *p, size_t n, unsigned f);
CUresult cuMemGetInfo_v2(size_t *f, size_t *t);
CUresult cuMemGetInfo(unsigned *f, unsigned *t);
CUresult cuDeviceTotalMem_v2(size_t *b, CUdevice d);
CUresult cuDeviceTotalMem(unsigned *b, CUdevice d);
CUresult cuArrayCreate_v2(CUarray *a, const CUDA_ARRAY_DESCRIPTOR *d);
CUresult cuArray3DCreate_v2(CUarray *a, const CUDA_ARRAY3D_DESCRIPTOR *d);
CUresult cuArrayDestroy(CUarray a);
CUresult cuMipmappedArrayCreate(CUmipmappedArray *m, const CUDA_ARRAY3D_DESCRIPTOR *d, unsigned l);
CUresult cuMipmappedArrayDestroy(CUmipmappedArray m);
CUresult cuMemCreate(CUmemGenericAllocationHandle *h, size_t n, const CUmemAllocationProp *p,
                     unsigned long long f);
CUresult cuMemRelease(CUmemGenericAllocationHandle h);
CUresult cuMemAllocAsync(CUdeviceptr *p, size_t n, CUstream s);
CUresult cuMemAllocAsync_ptsz(CUdeviceptr *p, size_t n, CUstream s);
CUresult cuMemFreeAsync(CUdeviceptr p, CUstream s);
CUresult cuMemAllocFromPoolAsync(CUdeviceptr *p, size_t n, CUmemoryPool q, CUstream s);
CUresult cuMemPoolTrimTo(CUmemoryPool p, size_t keep);
CUresult cuDeviceGetMemPool(CUmemoryPool *p, CUdevice d);
CUresult cuGraphCreate(CUgraph *g, unsigned f);
CUresult cuGraphAddMemAllocNode(CUgraphNode *n, CUgraph g, const CUgraphNode *deps, size_t nd,
                                CUDA_MEM_ALLOC_NODE_PARAMS *p);
CUresult cuGraphInstantiateWithFlags(CUgraphExec *e, CUgraph g, unsigned long long f);
CUresult cuGraphLaunch(CUgraphExec e, CUstream s);
CUresult cuGraphExecDestroy(CUgraphExec e);
CUresult cuDeviceGraphMemTrim(CUdevice d);
CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                        unsigned by, unsigned bz, unsigned shm, CUstream s, void **a, void **x);
CUresult cuLaunchKernelEx(const CUlaunchConfig *c, CUfunction f, void **a, void **x);
CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                                   unsigned bx, unsigned by, unsigned bz, unsigned shm,
                                   CUstream s, void **a);

nvmlReturn_t nvmlInit_v2(void);
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned i, nvmlDevice_t *d);
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *buf, unsigned len);
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m);
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m);
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t d, unsigned *n, void *p);
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned *n, void *p);

/* fake-driver test helpers */
uint64_t fakegpu_used(int d);
uint64_t fakegpu_busy_ns(int d);
int fakegpu_count(const char *name);
extern const struct fake_proc fakegpu_proc_table[];

/* open a context on device d and make it current */
static inline CUcontext vt_ctx(int d)
{
    CUcontext c = NULL;
    if (cuInit(0) != CUDA_SUCCESS || cuCtxCreate_v2(&c, 0, d) != CUDA_SUCCESS)
        return NULL;
    return c;
}
#endif
