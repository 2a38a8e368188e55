/* t_alloc.c - the OOM boundary of every allocator, symmetric frees, and the
 * virtualised memory views. Limit 64 MiB, context overhead 0 unless stated. */
#include <string.h>
#include <unistd.h>

#include "cu.h"
#include "harness.h"

#define LIM "CUDA_DEVICE_MEMORY_LIMIT=64m;LIBVGPU_CONTEXT_OVERHEAD=0"

static uint64_t used0(void) /* container usage on the current device, via the view */
{
    size_t f, t;
    VT_EQ(cuMemGetInfo_v2(&f, &t), CUDA_SUCCESS);
    return t - f;
}

/* allocate `chunk` with fn until it fails; the failure must be OOM */
typedef CUresult (*alloc1)(uint64_t *key, size_t chunk);
static int fill(alloc1 fn, size_t chunk, uint64_t *keys, int max)
{
    int n = 0;
    CUresult r;
    while (n < max && (r = fn(&keys[n], chunk)) == CUDA_SUCCESS)
        n++;
    VT_CHECK(n < max);
    VT_EQ(r, CUDA_ERROR_OUT_OF_MEMORY);
    return n;
}

static CUresult a_v2(uint64_t *k, size_t n) { CUdeviceptr p; CUresult r = cuMemAlloc_v2(&p, n); *k = p; return r; }
static CUresult a_v1(uint64_t *k, size_t n) { CUdeviceptr_v1 p; CUresult r = cuMemAlloc(&p, (unsigned)n); *k = p; return r; }
static CUresult a_managed(uint64_t *k, size_t n) { CUdeviceptr p; CUresult r = cuMemAllocManaged(&p, n, 1); *k = p; return r; }
static CUresult a_pitch(uint64_t *k, size_t n) { CUdeviceptr p; size_t pt; CUresult r = cuMemAllocPitch_v2(&p, &pt, 1000, n / 1024, 4); *k = p; return r; }
static CUresult a_pitch1(uint64_t *k, size_t n) { CUdeviceptr_v1 p; unsigned pt; CUresult r = cuMemAllocPitch(&p, &pt, 1000, (unsigned)(n / 1024), 4); *k = p; return r; }
static CUresult a_async(uint64_t *k, size_t n) { CUdeviceptr p; CUresult r = cuMemAllocAsync(&p, n, NULL); *k = p; return r; }
static CUresult a_async_ptsz(uint64_t *k, size_t n) { CUdeviceptr p; CUresult r = cuMemAllocAsync_ptsz(&p, n, NULL); *k = p; return r; }
static CUresult a_pool(uint64_t *k, size_t n)
{
    CUmemoryPool q; CUdeviceptr p;
    cuDeviceGetMemPool(&q, 0);
    CUresult r = cuMemAllocFromPoolAsync(&p, n, q, NULL); *k = p; return r;
}
static CUresult a_array(uint64_t *k, size_t n) /* n bytes of UINT8 rows of 1024 */
{
    CUDA_ARRAY_DESCRIPTOR d = {1024, n / 1024, CU_AD_FORMAT_UNSIGNED_INT8, 1}; CUarray a;
    CUresult r = cuArrayCreate_v2(&a, &d); *k = (uint64_t)(uintptr_t)a; return r;
}
static CUresult a_array3d(uint64_t *k, size_t n)
{
    CUDA_ARRAY3D_DESCRIPTOR d = {512, 128, n / 65536, CU_AD_FORMAT_UNSIGNED_INT8, 1, 0}; CUarray a;
    CUresult r = cuArray3DCreate_v2(&a, &d); *k = (uint64_t)(uintptr_t)a; return r;
}
static int g_vmm_dev;
static CUresult a_vmm(uint64_t *k, size_t n)
{
    CUmemAllocationProp p; memset(&p, 0, sizeof p);
    p.type = 1; p.location.type = CU_MEM_LOCATION_TYPE_DEVICE; p.location.id = g_vmm_dev;
    CUmemGenericAllocationHandle h; CUresult r = cuMemCreate(&h, n, &p, 0); *k = h; return r;
}

static void f_v2(uint64_t k) { VT_EQ(cuMemFree_v2(k), CUDA_SUCCESS); }
static void f_v1(uint64_t k) { VT_EQ(cuMemFree((CUdeviceptr_v1)k), CUDA_SUCCESS); }
static void f_async(uint64_t k) { VT_EQ(cuMemFreeAsync(k, NULL), CUDA_SUCCESS); }
static void f_array(uint64_t k) { VT_EQ(cuArrayDestroy((CUarray)(uintptr_t)k), CUDA_SUCCESS); }
static void f_vmm(uint64_t k) { VT_EQ(cuMemRelease(k), CUDA_SUCCESS); }

static void boundary(alloc1 fn, size_t chunk, int expect, void (*freefn)(uint64_t))
{
    uint64_t keys[4096];
    VT_CHECK(vt_ctx(0));
    int n = fill(fn, chunk, keys, 4096);
    VT_EQ(n, expect);
    VT_CHECK(used0() <= 64 * MiB);
    VT_CHECK(fakegpu_used(0) <= 64 * MiB + 8 * MiB); /* + the fake's context */
    freefn(keys[n - 1]);                      /* one back: one more fits */
    VT_EQ(fn(&keys[n - 1], chunk), CUDA_SUCCESS);
    for (int i = 0; i < n; i++)
        freefn(keys[i]);
    if (freefn == f_async) { /* what a pool keeps counts until trimmed */
        CUmemoryPool q;
        cuDeviceGetMemPool(&q, 0);
        VT_EQ(cuMemPoolTrimTo(q, 0), CUDA_SUCCESS);
    }
    VT_EQ(used0(), 0);
}

static void alloc_v2(void) { boundary(a_v2, MiB, 64, f_v2); }
static void alloc_v1(void) { boundary(a_v1, MiB, 64, f_v1); }
static void alloc_managed(void) { boundary(a_managed, MiB, 64, f_v2); }
static void alloc_pitch(void) { boundary(a_pitch, MiB, 64, f_v2); }   /* pitch 1024 x 1024 rows */
static void alloc_pitch_v1(void) { boundary(a_pitch1, MiB, 64, f_v1); }
static void alloc_pitch_wide(void) { boundary(a_pitch, MiB, 32, f_v2); } /* driver pitch 2048 */
static void alloc_array(void) { boundary(a_array, MiB, 64, f_array); }
static void alloc_array3d(void) { boundary(a_array3d, MiB, 64, f_array); }
static void alloc_vmm(void) { boundary(a_vmm, 4 * MiB, 16, f_vmm); }
static void alloc_vmm_rounded(void) { boundary(a_vmm, MiB, 32, f_vmm); } /* 2 MiB granularity */

static void alloc_mipmap(void)
{
    CUDA_ARRAY3D_DESCRIPTOR d = {1024, 1024, 0, CU_AD_FORMAT_UNSIGNED_INT8, 1, 0};
    CUmipmappedArray m[64];
    int n = 0;
    CUresult r;
    VT_CHECK(vt_ctx(0));
    while ((r = cuMipmappedArrayCreate(&m[n], &d, 2)) == CUDA_SUCCESS)
        n++;
    VT_EQ(r, CUDA_ERROR_OUT_OF_MEMORY);
    VT_EQ(n, 51); /* 1 MiB + 256 KiB each */
    for (int i = 0; i < n; i++)
        VT_EQ(cuMipmappedArrayDestroy(m[i]), CUDA_SUCCESS);
    VT_EQ(used0(), 0);
}

/* VMM charges prop->location.id, not the current context's device */
static void vmm_by_location(void)
{
    uint64_t keys[64];
    CUcontext c1;
    VT_CHECK(vt_ctx(0));
    g_vmm_dev = 1;
    VT_EQ(fill(a_vmm, 4 * MiB, keys, 64), 16);
    VT_EQ(used0(), 0); /* device 0 untouched */
    VT_EQ(cuCtxCreate_v2(&c1, 0, 1), CUDA_SUCCESS);
    VT_EQ(used0(), 64 * MiB);
    for (int i = 0; i < 16; i++)
        f_vmm(keys[i]);
    VT_EQ(used0(), 0);
}

static void vmm_host_not_charged(void)
{
    CUmemAllocationProp p;
    CUmemGenericAllocationHandle h[40];
    memset(&p, 0, sizeof p);
    p.location.type = CU_MEM_LOCATION_TYPE_HOST_NUMA;
    VT_CHECK(vt_ctx(0));
    for (int i = 0; i < 40; i++)
        VT_EQ(cuMemCreate(&h[i], 4 * MiB, &p, 0), CUDA_SUCCESS);
    VT_EQ(used0(), 0);
    for (int i = 0; i < 40; i++)
        VT_EQ(cuMemRelease(h[i]), CUDA_SUCCESS);
}

static void alloc_async(void) { boundary(a_async, MiB, 64, f_async); }
static void alloc_async_ptsz(void) { boundary(a_async_ptsz, MiB, 64, f_async); }
static void alloc_from_pool(void) { boundary(a_pool, MiB, 64, f_async); }

/* memory a pool keeps after frees still counts until trimmed */
static void pool_reserve_counts(void)
{
    uint64_t keys[128];
    CUdeviceptr p;
    CUmemoryPool q;
    VT_CHECK(vt_ctx(0));
    VT_EQ(fill(a_async, MiB, keys, 128), 64);
    for (int i = 0; i < 64; i++)
        f_async(keys[i]);
    VT_EQ(used0(), 64 * MiB);                               /* still reserved */
    VT_EQ(cuMemAlloc_v2(&p, MiB), CUDA_ERROR_OUT_OF_MEMORY); /* not for others */
    VT_EQ(a_async(&keys[0], MiB), CUDA_SUCCESS);             /* but for the pool */
    f_async(keys[0]);
    cuDeviceGetMemPool(&q, 0);
    VT_EQ(cuMemPoolTrimTo(q, 0), CUDA_SUCCESS);
    VT_EQ(used0(), 0);
    VT_EQ(cuMemAlloc_v2(&p, MiB), CUDA_SUCCESS);
    f_v2(p);
}

/* limit 48 MiB: the pool reserves 32 MiB chunks; growth to 64 is undone */
static void pool_growth_past_limit(void)
{
    uint64_t keys[128];
    CUdeviceptr p;
    VT_CHECK(vt_ctx(0));
    VT_EQ(fill(a_async, MiB, keys, 128), 32);
    VT_CHECK(fakegpu_used(0) <= 48 * MiB + 8 * MiB);
    VT_EQ(used0(), 32 * MiB);
    VT_EQ(cuMemAlloc_v2(&p, 16 * MiB), CUDA_SUCCESS);
    f_v2(p);
    for (int i = 0; i < 32; i++)
        f_async(keys[i]);
}

/* stream capture: the allocation becomes a graph node, checked not charged */
static void captured_async(void)
{
    CUdeviceptr p;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAllocAsync(&p, 32 * MiB, FAKE_CAPTURE_STREAM), CUDA_SUCCESS);
    VT_EQ(used0(), 0);
    VT_EQ(cuMemAllocAsync(&p, 65 * MiB, FAKE_CAPTURE_STREAM), CUDA_ERROR_OUT_OF_MEMORY);
}

static void graph_memory(void)
{
    CUgraph g, g2;
    CUgraphNode n;
    CUgraphExec e;
    CUdeviceptr p;
    CUDA_MEM_ALLOC_NODE_PARAMS prm;
    VT_CHECK(vt_ctx(0));
    memset(&prm, 0, sizeof prm);
    prm.poolProps.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prm.poolProps.location.id = 0;
    prm.bytesize = 48 * MiB;
    VT_EQ(cuGraphCreate(&g, 0), CUDA_SUCCESS);
    VT_EQ(cuGraphAddMemAllocNode(&n, g, NULL, 0, &prm), CUDA_SUCCESS);
    VT_EQ(cuGraphInstantiateWithFlags(&e, g, 0), CUDA_SUCCESS);
    VT_EQ(used0(), 0);
    VT_EQ(cuGraphLaunch(e, NULL), CUDA_SUCCESS);
    VT_EQ(used0(), 48 * MiB); /* reserved by the launch */
    VT_EQ(cuMemAlloc_v2(&p, 32 * MiB), CUDA_ERROR_OUT_OF_MEMORY);
    VT_EQ(cuMemAlloc_v2(&p, 16 * MiB), CUDA_SUCCESS);
    f_v2(p);
    prm.bytesize = 80 * MiB;
    VT_EQ(cuGraphCreate(&g2, 0), CUDA_SUCCESS);
    VT_EQ(cuGraphAddMemAllocNode(&n, g2, NULL, 0, &prm), CUDA_ERROR_OUT_OF_MEMORY);
    VT_EQ(cuGraphExecDestroy(e), CUDA_SUCCESS);
    VT_EQ(cuDeviceGraphMemTrim(0), CUDA_SUCCESS);
    VT_EQ(used0(), 0);
}

static void single_over_limit(void)
{
    CUdeviceptr p;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAlloc_v2(&p, 64 * MiB + 1), CUDA_ERROR_OUT_OF_MEMORY);
    VT_EQ(cuMemAlloc_v2(&p, 64 * MiB), CUDA_SUCCESS);
    f_v2(p);
}

/* context overhead: measured from NVML (the fake charges 8 MiB per context) */
static void context_overhead(void)
{
    CUcontext a, b;
    CUdeviceptr p;
    VT_CHECK((a = vt_ctx(0)) != NULL);
    VT_EQ(used0(), 8 * MiB);
    VT_EQ(cuCtxCreate_v4(&b, NULL, 0, 0), CUDA_SUCCESS);
    VT_EQ(used0(), 16 * MiB);
    VT_EQ(cuMemAlloc_v2(&p, 10 * MiB), CUDA_SUCCESS);
    VT_EQ(used0(), 26 * MiB);
    VT_EQ(cuCtxDestroy_v2(b), CUDA_SUCCESS); /* its allocations go with it */
    VT_EQ(cuCtxSetCurrent(a), CUDA_SUCCESS);
    VT_EQ(used0(), 8 * MiB);
}

static void context_overhead_env(void)
{
    CUcontext a;
    VT_CHECK((a = vt_ctx(0)) != NULL);
    VT_EQ(used0(), 10 * MiB);
}

static void primary_context(void)
{
    CUcontext c;
    CUdeviceptr p;
    VT_EQ(cuInit(0), CUDA_SUCCESS);
    VT_EQ(cuDevicePrimaryCtxRetain(&c, 0), CUDA_SUCCESS);
    VT_EQ(cuCtxSetCurrent(c), CUDA_SUCCESS);
    VT_EQ(used0(), 8 * MiB);
    VT_EQ(cuMemAlloc_v2(&p, 56 * MiB), CUDA_SUCCESS);
    VT_EQ(cuMemAlloc_v2(&p, 1), CUDA_ERROR_OUT_OF_MEMORY);
    VT_EQ(cuDevicePrimaryCtxRelease_v2(0), CUDA_SUCCESS);
    VT_EQ(cuDevicePrimaryCtxRetain(&c, 0), CUDA_SUCCESS);
    VT_EQ(cuCtxSetCurrent(c), CUDA_SUCCESS);
    VT_EQ(used0(), 8 * MiB);
}

static void free_unknown_forwarded(void)
{
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemFree_v2(0x1234), CUDA_ERROR_INVALID_VALUE); /* the driver's answer, no -1 */
    VT_EQ(cuMemFree_v2(0), CUDA_ERROR_INVALID_VALUE);
    VT_EQ(fakegpu_count("cuMemFree_v2"), 2);
}

static void views(void)
{
    size_t f, t, tot;
    unsigned f1, t1, tot1;
    CUdeviceptr p;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAlloc_v2(&p, 24 * MiB), CUDA_SUCCESS);
    VT_EQ(cuMemGetInfo_v2(&f, &t), CUDA_SUCCESS);
    VT_EQ(t, 64 * MiB);
    VT_EQ(f, 40 * MiB);
    VT_EQ(cuMemGetInfo_v2(NULL, &t), CUDA_SUCCESS); /* NULL-safe */
    VT_EQ(t, 64 * MiB);
    VT_EQ(cuMemGetInfo_v2(&f, NULL), CUDA_SUCCESS);
    VT_EQ(f, 40 * MiB);
    VT_EQ(cuMemGetInfo(&f1, &t1), CUDA_SUCCESS);
    VT_EQ(t1, 64 * MiB);
    VT_EQ(f1, 40 * MiB);
    VT_EQ(cuDeviceTotalMem_v2(&tot, 0), CUDA_SUCCESS);
    VT_EQ(tot, 64 * MiB);
    VT_EQ(cuDeviceTotalMem(&tot1, 1), CUDA_SUCCESS);
    VT_EQ(tot1, 64 * MiB);
}

static void views_unlimited(void)
{
    size_t f, t, tot;
    CUdeviceptr p;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAlloc_v2(&p, 512 * MiB), CUDA_SUCCESS);
    VT_EQ(cuMemGetInfo_v2(&f, &t), CUDA_SUCCESS);
    VT_EQ(t, 1024 * MiB);
    VT_EQ(f, 1024 * MiB - 512 * MiB - 8 * MiB); /* the fake's context */
    VT_EQ(cuDeviceTotalMem_v2(&tot, 0), CUDA_SUCCESS);
    VT_EQ(tot, 1024 * MiB); /* physical, not 0 */
}

static void views_limit_above_physical(void)
{
    size_t f, t;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemGetInfo_v2(&f, &t), CUDA_SUCCESS);
    VT_EQ(t, 1024 * MiB);
    VT_EQ(f, 1024 * MiB - 8 * MiB); /* clamped to physical free */
}

static void views_nvml(void)
{
    nvmlDevice_t d;
    nvmlMemory_t m;
    nvmlMemory_v2_t m2;
    CUdeviceptr p;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAlloc_v2(&p, 24 * MiB), CUDA_SUCCESS);
    VT_EQ(nvmlInit_v2(), NVML_SUCCESS);
    VT_EQ(nvmlDeviceGetHandleByIndex_v2(0, &d), NVML_SUCCESS);
    VT_EQ(nvmlDeviceGetMemoryInfo(d, &m), NVML_SUCCESS);
    VT_EQ(m.total, 64 * MiB);
    VT_EQ(m.used, 24 * MiB);
    VT_EQ(m.free, 40 * MiB);
    VT_EQ(nvmlDeviceGetMemoryInfo_v2(d, &m2), NVML_SUCCESS);
    VT_EQ(m2.total, 64 * MiB);
    VT_EQ(m2.used, 24 * MiB);
    VT_EQ(m2.free, 40 * MiB);
    VT_EQ(m2.reserved, 0);
    /* device 1, never used by CUDA here: the env limit by NVML index */
    VT_EQ(nvmlDeviceGetHandleByIndex_v2(1, &d), NVML_SUCCESS);
    VT_EQ(nvmlDeviceGetMemoryInfo(d, &m), NVML_SUCCESS);
    VT_EQ(m.total, 64 * MiB);
}

static void nvml_process_list(void)
{
    nvmlDevice_t d;
    nvmlProcessInfo_v2_t p3[8];
    nvmlProcessInfo_v1_t p1[8];
    unsigned n = 8;
    CUdeviceptr ptr;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAlloc_v2(&ptr, MiB), CUDA_SUCCESS);
    VT_EQ(nvmlDeviceGetHandleByIndex_v2(0, &d), NVML_SUCCESS);
    VT_EQ(nvmlDeviceGetComputeRunningProcesses_v3(d, &n, p3), NVML_SUCCESS);
    VT_EQ(n, 1); /* the foreign process is hidden */
    VT_EQ(p3[0].pid, (unsigned)getpid());
    n = 8;
    VT_EQ(nvmlDeviceGetComputeRunningProcesses(d, &n, p1), NVML_SUCCESS);
    VT_EQ(n, 1);
    VT_EQ(p1[0].pid, (unsigned)getpid());
    n = 0;
    VT_EQ(nvmlDeviceGetComputeRunningProcesses_v3(d, &n, NULL), NVML_ERROR_INSUFFICIENT_SIZE);
    VT_EQ(n, 1);
}

static void views_nvml_unlimited(void)
{
    nvmlDevice_t d;
    nvmlMemory_t m;
    VT_EQ(nvmlDeviceGetHandleByIndex_v2(0, &d), NVML_SUCCESS);
    VT_EQ(nvmlDeviceGetMemoryInfo(d, &m), NVML_SUCCESS);
    VT_EQ(m.total, 1024 * MiB);
}

static void per_device_limits(void)
{
    CUcontext c1;
    CUdeviceptr p;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAlloc_v2(&p, 40 * MiB), CUDA_SUCCESS);
    VT_EQ(cuCtxCreate_v2(&c1, 0, 1), CUDA_SUCCESS);
    VT_EQ(cuMemAlloc_v2(&p, 16 * MiB), CUDA_SUCCESS);
    VT_EQ(cuMemAlloc_v2(&p, 1), CUDA_ERROR_OUT_OF_MEMORY);
}

const struct vt_case vt_cases[] = {
    {"alloc_v2", alloc_v2, LIM, 0},
    {"alloc_v1", alloc_v1, LIM, 0},
    {"alloc_managed", alloc_managed, LIM, 0},
    {"alloc_pitch", alloc_pitch, LIM, 0},
    {"alloc_pitch_v1", alloc_pitch_v1, LIM, 0},
    {"alloc_pitch_wide", alloc_pitch_wide, LIM ";FAKEGPU_WIDE_PITCH=1", 0},
    {"alloc_array", alloc_array, LIM, 0},
    {"alloc_array3d", alloc_array3d, LIM, 0},
    {"alloc_mipmap", alloc_mipmap, LIM, 0},
    {"alloc_vmm", alloc_vmm, LIM, 0},
    {"alloc_vmm_rounded", alloc_vmm_rounded, LIM, 0},
    {"vmm_by_location", vmm_by_location, LIM, 0},
    {"vmm_host_not_charged", vmm_host_not_charged, LIM, 0},
    {"alloc_async", alloc_async, LIM, 0},
    {"alloc_async_ptsz", alloc_async_ptsz, LIM, 0},
    {"alloc_from_pool", alloc_from_pool, LIM, 0},
    {"pool_reserve_counts", pool_reserve_counts, LIM, 0},
    {"pool_growth_past_limit", pool_growth_past_limit,
     "CUDA_DEVICE_MEMORY_LIMIT=48m;LIBVGPU_CONTEXT_OVERHEAD=0", 0},
    {"captured_async", captured_async, LIM, 0},
    {"graph_memory", graph_memory, LIM, 0},
    {"single_over_limit", single_over_limit, LIM, 0},
    {"context_overhead", context_overhead, "CUDA_DEVICE_MEMORY_LIMIT=64m", 0},
    {"context_overhead_env", context_overhead_env,
     "CUDA_DEVICE_MEMORY_LIMIT=64m;LIBVGPU_CONTEXT_OVERHEAD=10Mi", 0},
    {"primary_context", primary_context, "CUDA_DEVICE_MEMORY_LIMIT=64m", 0},
    {"free_unknown_forwarded", free_unknown_forwarded, LIM, 0},
    {"views", views, LIM, 0},
    {"views_unlimited", views_unlimited, "LIBVGPU_CONTEXT_OVERHEAD=0", 0},
    {"views_limit_above_physical", views_limit_above_physical,
     "CUDA_DEVICE_MEMORY_LIMIT=2g;LIBVGPU_CONTEXT_OVERHEAD=0", 0},
    {"views_nvml", views_nvml, LIM, 0},
    {"views_nvml_unlimited", views_nvml_unlimited, "", 0},
    {"nvml_process_list", nvml_process_list, LIM, 0},
    {"per_device_limits", per_device_limits,
     "CUDA_DEVICE_MEMORY_LIMIT=64m;CUDA_DEVICE_MEMORY_LIMIT_1=16Mi;LIBVGPU_CONTEXT_OVERHEAD=0", 0},
    {0},
};
