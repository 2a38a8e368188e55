/*
 * vmm.c - virtual memory management (cuMemCreate/cuMemRelease), stream-ordered
 * allocation with pools, and graph memory.
 *
 * VMM: charged on prop->location.id (device locations only; host and host-NUMA
 * handles are not device memory), at the granularity-rounded size.
 *
 * Pools: a pool holds memory reserved from the device beyond what is in use.
 * For every pool this process touches, libvgpu keeps the charge equal to
 * max(bytes in use by this process, RESERVED_MEM_CURRENT) - so memory a pool
 * keeps after frees still counts until it is trimmed. An allocation may use the
 * reserved-but-free part without new headroom; growth beyond it needs the
 * usual atomic check. If the pool grows past the limit, the allocation is
 * undone (synchronous free + trim) and OUT_OF_MEMORY returned.
 *
 * Graph memory: allocation nodes are checked against the limit when added or
 * captured; the device's RESERVED_MEM_CURRENT for graphs is charged after each
 * launch, upload, trim and exec destroy.
 */
#include <pthread.h>

#include "vgpu.h"

/* ---- VMM ---- */
CUresult cuMemCreate(CUmemGenericAllocationHandle *h, size_t size,
                     const CUmemAllocationProp *prop, unsigned long long flags)
{
    int dev, count = 0;
    size_t gran = 0;
    uint64_t bytes = size;
    CUresult r;
    VGPU_NEED(cuMemCreate);
    if (vgpu__passthrough() || !h || !prop || prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return vgpu__real.cuMemCreate(h, size, prop, flags);
    dev = prop->location.id;
    if (vgpu__real.cuDeviceGetCount)
        vgpu__real.cuDeviceGetCount(&count);
    if (dev < 0 || dev >= count || dev >= VGPU_MAXDEV)
        return vgpu__real.cuMemCreate(h, size, prop, flags); /* the driver rejects it */
    if (vgpu__real.cuMemGetAllocationGranularity &&
        vgpu__real.cuMemGetAllocationGranularity(&gran, prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM) ==
            CUDA_SUCCESS &&
        gran > 0)
        bytes = ((uint64_t)size + gran - 1) / gran * gran;
    if (vgpu__charge(dev, bytes, VGPU_KIND_DATA, 0) != 0)
        return CUDA_ERROR_OUT_OF_MEMORY;
    r = vgpu__real.cuMemCreate(h, size, prop, flags);
    if (r != CUDA_SUCCESS) {
        vgpu__uncharge(dev, bytes, VGPU_KIND_DATA);
        return r;
    }
    struct vgpu_track t = {.ns = VGPU_T_VMM, .key = *h, .dev = dev, .bytes = bytes,
                           .kind = VGPU_KIND_DATA};
    vgpu__track_put(&t);
    return r;
}

CUresult cuMemRelease(CUmemGenericAllocationHandle h)
{
    struct vgpu_track t;
    CUresult r;
    VGPU_NEED(cuMemRelease);
    r = vgpu__real.cuMemRelease(h);
    if (r == CUDA_SUCCESS && vgpu__track_take(VGPU_T_VMM, h, &t) == 0)
        vgpu__uncharge(t.dev, t.bytes, t.kind);
    return r;
}

/* ---- pools ---- */
#define MAXPOOLS 256
struct pool {
    CUmemoryPool p;
    int dev;
    uint64_t charged; /* what the region holds for this pool */
    uint64_t live;    /* bytes of this process's allocations in it */
};
static pthread_mutex_t g_pmu = PTHREAD_MUTEX_INITIALIZER;
static struct pool g_pools[MAXPOOLS];
static uint64_t g_graph_charged[VGPU_MAXDEV]; /* graph memory charged per device */

static struct pool *pool_get(CUmemoryPool p, int dev) /* g_pmu held */
{
    struct pool *freep = NULL;
    for (int i = 0; i < MAXPOOLS; i++) {
        if (g_pools[i].p == p)
            return &g_pools[i];
        if (!g_pools[i].p && !freep)
            freep = &g_pools[i];
    }
    if (freep) {
        freep->p = p;
        freep->dev = dev;
        freep->charged = freep->live = 0;
    }
    return freep;
}

static uint64_t pool_attr(CUmemoryPool p, int attr)
{
    cuuint64_t v = 0;
    if (vgpu__real.cuMemPoolGetAttribute)
        vgpu__real.cuMemPoolGetAttribute(p, attr, &v);
    return v;
}

/* bring the charge to max(live, reserved); force, or check when growing (0 ok) */
static int pool_settle(struct pool *q, int check)
{
    uint64_t res = pool_attr(q->p, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT);
    uint64_t target = res > q->live ? res : q->live;
    if (target > q->charged) {
        if (vgpu__charge(q->dev, target - q->charged, VGPU_KIND_DATA, !check) != 0)
            return -1;
    } else if (target < q->charged) {
        vgpu__uncharge(q->dev, q->charged - target, VGPU_KIND_DATA);
    }
    q->charged = target;
    return 0;
}

void vgpu__pool_reconcile(CUmemoryPool pool, int dev)
{
    pthread_mutex_lock(&g_pmu);
    struct pool *q = pool_get(pool, dev);
    if (q)
        pool_settle(q, 0);
    pthread_mutex_unlock(&g_pmu);
}

void vgpu__pool_release(uint64_t pool, uint64_t bytes)
{
    pthread_mutex_lock(&g_pmu);
    for (int i = 0; i < MAXPOOLS; i++) {
        if (g_pools[i].p == (CUmemoryPool)(uintptr_t)pool) {
            g_pools[i].live = g_pools[i].live >= bytes ? g_pools[i].live - bytes : 0;
            pool_settle(&g_pools[i], 0);
        }
    }
    pthread_mutex_unlock(&g_pmu);
}

static int capturing(CUstream s, int ptsz)
{
    CUstreamCaptureStatus st = CU_STREAM_CAPTURE_STATUS_NONE;
    CUresult (*f)(CUstream, CUstreamCaptureStatus *) =
        ptsz && vgpu__real.cuStreamIsCapturing_ptsz ? vgpu__real.cuStreamIsCapturing_ptsz
                                                    : vgpu__real.cuStreamIsCapturing;
    return f && f(s, &st) == CUDA_SUCCESS && st != CU_STREAM_CAPTURE_STATUS_NONE;
}

/* would `bytes` more fit on dev now? (used for memory that graphs reserve later) */
static int fits(int dev, uint64_t bytes)
{
    if (vgpu__charge(dev, bytes, VGPU_KIND_DATA, 0) != 0)
        return 0;
    vgpu__uncharge(dev, bytes, VGPU_KIND_DATA);
    return 1;
}

typedef CUresult (*alloc_fn)(CUdeviceptr *, size_t, CUmemoryPool, CUstream);
typedef CUresult (*alloc_default_fn)(CUdeviceptr *, size_t, CUstream);

static CUresult alloc_async(CUdeviceptr *dptr, size_t size, CUmemoryPool pool, CUstream s,
                            int ptsz, alloc_fn from_pool, alloc_default_fn dflt)
{
    int dev;
    CUresult r;
    struct pool *q;
    uint64_t room, need;
#define CALL() (from_pool ? from_pool(dptr, size, pool, s) : dflt(dptr, size, s))
    if (vgpu__passthrough() || !dptr || vgpu__current(&dev, NULL) != 0)
        return CALL();
    if (capturing(s, ptsz)) /* becomes a graph allocation node */
        return fits(dev, size) ? CALL() : CUDA_ERROR_OUT_OF_MEMORY;
    if (!pool && (!vgpu__real.cuDeviceGetMemPool ||
                  vgpu__real.cuDeviceGetMemPool(&pool, dev) != CUDA_SUCCESS))
        pool = NULL;
    pthread_mutex_lock(&g_pmu);
    q = pool ? pool_get(pool, dev) : NULL;
    if (!q) { /* no pool information: plain accounting */
        pthread_mutex_unlock(&g_pmu);
        if (vgpu__charge(dev, size, VGPU_KIND_DATA, 0) != 0)
            return CUDA_ERROR_OUT_OF_MEMORY;
        r = CALL();
        if (r != CUDA_SUCCESS) {
            vgpu__uncharge(dev, size, VGPU_KIND_DATA);
            return r;
        }
        struct vgpu_track t = {.ns = VGPU_T_PTR, .key = *dptr, .dev = dev, .bytes = size,
                               .kind = VGPU_KIND_DATA};
        vgpu__track_put(&t);
        return r;
    }
    room = q->charged > q->live ? q->charged - q->live : 0;
    need = size > room ? size - room : 0;
    if (need && vgpu__charge(dev, need, VGPU_KIND_DATA, 0) != 0) {
        /* memory the pool keeps after frees may be trimmable */
        if (vgpu__real.cuMemPoolTrimTo)
            vgpu__real.cuMemPoolTrimTo(pool, 0);
        pool_settle(q, 0);
        room = q->charged > q->live ? q->charged - q->live : 0;
        need = size > room ? size - room : 0;
        if (need && vgpu__charge(dev, need, VGPU_KIND_DATA, 0) != 0) {
            pthread_mutex_unlock(&g_pmu);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
    }
    q->charged += need;
    q->live += size;
    r = CALL();
    if (r != CUDA_SUCCESS) {
        q->live -= size;
        pool_settle(q, 0);
        pthread_mutex_unlock(&g_pmu);
        return r;
    }
    if (pool_settle(q, 1) != 0) { /* the pool grew past the limit: undo */
        vgpu__real.cuMemFree_v2(*dptr);
        q->live -= size;
        if (vgpu__real.cuMemPoolTrimTo)
            vgpu__real.cuMemPoolTrimTo(pool, 0);
        pool_settle(q, 0);
        pthread_mutex_unlock(&g_pmu);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    pthread_mutex_unlock(&g_pmu);
    struct vgpu_track t = {.ns = VGPU_T_PTR, .key = *dptr, .dev = dev, .bytes = size,
                           .kind = VGPU_KIND_DATA, .aux = (uint64_t)(uintptr_t)pool};
    vgpu__track_put(&t);
    return CUDA_SUCCESS;
#undef CALL
}

CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t size, CUstream s)
{
    VGPU_NEED(cuMemAllocAsync);
    return alloc_async(dptr, size, NULL, s, 0, NULL, vgpu__real.cuMemAllocAsync);
}

CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t size, CUstream s)
{
    VGPU_NEED(cuMemAllocAsync_ptsz);
    return alloc_async(dptr, size, NULL, s, 1, NULL, vgpu__real.cuMemAllocAsync_ptsz);
}

CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t size, CUmemoryPool p, CUstream s)
{
    VGPU_NEED(cuMemAllocFromPoolAsync);
    return alloc_async(dptr, size, p, s, 0, vgpu__real.cuMemAllocFromPoolAsync, NULL);
}

CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t size, CUmemoryPool p,
                                      CUstream s)
{
    VGPU_NEED(cuMemAllocFromPoolAsync_ptsz);
    return alloc_async(dptr, size, p, s, 1, vgpu__real.cuMemAllocFromPoolAsync_ptsz, NULL);
}

static void free_tracked(CUdeviceptr p)
{
    struct vgpu_track t;
    if (vgpu__track_take(VGPU_T_PTR, p, &t) != 0)
        return;
    if (t.aux)
        vgpu__pool_release(t.aux, t.bytes);
    else
        vgpu__uncharge(t.dev, t.bytes, t.kind);
}

CUresult cuMemFreeAsync(CUdeviceptr p, CUstream s)
{
    CUresult r;
    VGPU_NEED(cuMemFreeAsync);
    r = vgpu__real.cuMemFreeAsync(p, s);
    if (r == CUDA_SUCCESS && p)
        free_tracked(p);
    return r;
}

CUresult cuMemFreeAsync_ptsz(CUdeviceptr p, CUstream s)
{
    CUresult r;
    VGPU_NEED(cuMemFreeAsync_ptsz);
    r = vgpu__real.cuMemFreeAsync_ptsz(p, s);
    if (r == CUDA_SUCCESS && p)
        free_tracked(p);
    return r;
}

void vgpu__free_tracked_ptr(CUdeviceptr p)
{
    free_tracked(p);
}

CUresult cuMemPoolTrimTo(CUmemoryPool p, size_t keep)
{
    CUresult r;
    VGPU_NEED(cuMemPoolTrimTo);
    r = vgpu__real.cuMemPoolTrimTo(p, keep);
    pthread_mutex_lock(&g_pmu);
    for (int i = 0; i < MAXPOOLS; i++)
        if (g_pools[i].p == p)
            pool_settle(&g_pools[i], 0);
    pthread_mutex_unlock(&g_pmu);
    return r;
}

CUresult cuMemPoolDestroy(CUmemoryPool p)
{
    CUresult r;
    VGPU_NEED(cuMemPoolDestroy);
    r = vgpu__real.cuMemPoolDestroy(p);
    if (r != CUDA_SUCCESS)
        return r;
    pthread_mutex_lock(&g_pmu);
    for (int i = 0; i < MAXPOOLS; i++) {
        if (g_pools[i].p == p) {
            vgpu__uncharge(g_pools[i].dev, g_pools[i].charged, VGPU_KIND_DATA);
            g_pools[i].p = NULL;
        }
    }
    pthread_mutex_unlock(&g_pmu);
    return r;
}

void vgpu__pools_fork_lock(void) { pthread_mutex_lock(&g_pmu); }
void vgpu__pools_fork_unlock(void) { pthread_mutex_unlock(&g_pmu); }

/* in a forked child (g_pmu held by the fork): the parent's pools are not ours */
void vgpu__pools_reset(void)
{
    for (int i = 0; i < MAXPOOLS; i++)
        g_pools[i].p = NULL;
    for (int d = 0; d < VGPU_MAXDEV; d++)
        g_graph_charged[d] = 0;
}

/* ---- graph memory ---- */

void vgpu__graphmem_reconcile(int dev)
{
    cuuint64_t res = 0;
    if (dev < 0 || dev >= VGPU_MAXDEV || !vgpu__real.cuDeviceGetGraphMemAttribute ||
        vgpu__real.cuDeviceGetGraphMemAttribute(dev, CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT,
                                                &res) != CUDA_SUCCESS)
        return;
    pthread_mutex_lock(&g_pmu);
    if (res > g_graph_charged[dev])
        vgpu__charge(dev, res - g_graph_charged[dev], VGPU_KIND_DATA, 1);
    else if (res < g_graph_charged[dev])
        vgpu__uncharge(dev, g_graph_charged[dev] - res, VGPU_KIND_DATA);
    g_graph_charged[dev] = res;
    pthread_mutex_unlock(&g_pmu);
}

CUresult cuGraphAddMemAllocNode(CUgraphNode *n, CUgraph g, const CUgraphNode *deps,
                                size_t ndeps, CUDA_MEM_ALLOC_NODE_PARAMS *p)
{
    VGPU_NEED(cuGraphAddMemAllocNode);
    if (!vgpu__passthrough() && p &&
        p->poolProps.location.type == CU_MEM_LOCATION_TYPE_DEVICE &&
        !fits(p->poolProps.location.id, p->bytesize))
        return CUDA_ERROR_OUT_OF_MEMORY;
    return vgpu__real.cuGraphAddMemAllocNode(n, g, deps, ndeps, p);
}

CUresult cuDeviceGraphMemTrim(CUdevice dev)
{
    CUresult r;
    VGPU_NEED(cuDeviceGraphMemTrim);
    r = vgpu__real.cuDeviceGraphMemTrim(dev);
    if (!vgpu__passthrough())
        vgpu__graphmem_reconcile(dev);
    return r;
}

static void after_graph(void)
{
    int dev;
    if (!vgpu__passthrough() && vgpu__real.cuCtxGetDevice &&
        vgpu__real.cuCtxGetDevice(&dev) == CUDA_SUCCESS)
        vgpu__graphmem_reconcile(dev);
}

CUresult cuGraphUpload(CUgraphExec e, CUstream s)
{
    CUresult r;
    VGPU_NEED(cuGraphUpload);
    r = vgpu__real.cuGraphUpload(e, s);
    after_graph();
    return r;
}

CUresult cuGraphUpload_ptsz(CUgraphExec e, CUstream s)
{
    CUresult r;
    VGPU_NEED(cuGraphUpload_ptsz);
    r = vgpu__real.cuGraphUpload_ptsz(e, s);
    after_graph();
    return r;
}

CUresult cuGraphExecDestroy(CUgraphExec e)
{
    CUresult r;
    VGPU_NEED(cuGraphExecDestroy);
    r = vgpu__real.cuGraphExecDestroy(e);
    after_graph();
    return r;
}

/* cuGraphLaunch lives in launch.c (it is also a compute-share path) */
void vgpu__after_graph_launch(void)
{
    after_graph();
}
