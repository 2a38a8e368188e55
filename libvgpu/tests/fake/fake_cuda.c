/*
 * fake_cuda.c - a simulated CUDA driver (built as libcuda.so.1) for testing
 * libvgpu without a GPU. Devices have FAKEGPU_MEM bytes (default 1 GiB) each,
 * FAKEGPU_DEVICES of them (default 2). When NVIDIA_VISIBLE_DEVICES is a
 * comma-separated list of GPU UUIDs (GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx,
 * at most 8), device i has the i-th UUID and the list sets the device count, as
 * on a node where the container runtime exposed exactly those GPUs; any other
 * value (unset, "all", "none", indexes, a directory path, MIG UUIDs) leaves
 * the fake's own UUIDs (byte j of device d = 0x10 * d + j) and FAKEGPU_DEVICES.
 * Kernels "run" on a per-device virtual
 * timeline: a launch of CUfunction f takes (uintptr_t)f microseconds of device
 * time; events complete when the timeline reaches them. Stream handle
 * FAKE_CAPTURE_STREAM is always "being captured". Every call is counted
 * (fakegpu_count). Built with -Bsymbolic so its own table points at itself.
 */

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/cuda_abi.h"
#include "fake.h"

#define EXPORT __attribute__((visibility("default")))
#define MIB (1ull << 20)
#define CTX_COST (8 * MIB)
#define POOL_CHUNK (32 * MIB)
#define VMM_GRAN (2 * MIB)
#define MAXOBJ 65536

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int ndev = -1;
static uint64_t mem_total = 1ull << 30;

struct dev {
    uint64_t used;
    uint64_t busy_until, busy_total; /* ns */
    uint64_t pool_used, pool_reserved;
    uint64_t graph_reserved;
    int primary_refs;
};
static struct dev devs[8];

struct obj { /* allocations, arrays, handles, contexts, events, graphs */
    int kind, dev;
    uint64_t key, size, aux;
};
static struct obj objs[MAXOBJ];
static uint64_t next_addr = 0x7f0000000000ull;

static _Thread_local int cur_dev = -1; /* current context's device (one context per device) */
static _Thread_local uintptr_t cur_ctx;

/* ---- call counting ---- */
static struct { const char *name; int n; } calls[256];
static void count(const char *name)
{
    for (int i = 0; i < 256; i++) {
        if (calls[i].name == name || !calls[i].name) {
            calls[i].name = name;
            calls[i].n++;
            return;
        }
    }
}
#define CALLED() count(__func__)
EXPORT int fakegpu_count(const char *name)
{
    for (int i = 0; i < 256 && calls[i].name; i++)
        if (!strcmp(calls[i].name, name))
            return calls[i].n;
    return 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static unsigned char uuids[8][16];

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "GPU-" + 8-4-4-4-12 hex digits, exactly n characters long */
static int parse_uuid(const char *s, size_t n, unsigned char out[16])
{
    static const char shape[] = "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    if (n != sizeof shape - 1 || strncmp(s, "GPU-", 4))
        return 0;
    int k = 0;
    for (size_t i = 4; i < n; i++) {
        if (shape[i] == '-') {
            if (s[i] != '-') return 0;
            continue;
        }
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0) return 0;
        out[k++] = (unsigned char)(hi << 4 | lo);
        i++;
    }
    return k == 16;
}

/* the number of UUIDs NVIDIA_VISIBLE_DEVICES lists (into uuids[]); 0: not a UUID list */
static int uuids_from_env(void)
{
    const char *p = getenv("NVIDIA_VISIBLE_DEVICES");
    int n = 0;
    if (!p || !*p)
        return 0;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (n >= 8 || !parse_uuid(p, len, uuids[n]))
            return 0;
        n++;
        if (!end)
            return n;
        p = end + 1;
    }
}

static void setup_once(void)
{
    int listed = uuids_from_env();
    const char *v = getenv("FAKEGPU_DEVICES");
    int n = listed ? listed : v ? atoi(v) : 2;
    if (n < 1 || n > 8)
        n = 2;
    if (!listed)
        for (int d = 0; d < 8; d++)
            for (int i = 0; i < 16; i++)
                uuids[d][i] = (unsigned char)(0x10 * d + i);
    ndev = n;
    v = getenv("FAKEGPU_MEM");
    if (v)
        mem_total = strtoull(v, NULL, 0);
}
static pthread_once_t setup_done = PTHREAD_ONCE_INIT;
static void setup(void) { pthread_once(&setup_done, setup_once); }

enum { O_FREE, O_MEM, O_ARRAY, O_VMM, O_ASYNC, O_CTX, O_EVENT, O_GRAPH, O_EXEC, O_POOL };

static struct obj *find(int kind, uint64_t key)
{
    for (int i = 0; i < MAXOBJ; i++)
        if (objs[i].kind == kind && objs[i].key == key)
            return &objs[i];
    return NULL;
}
static struct obj *add(int kind, int dev, uint64_t key, uint64_t size)
{
    for (int i = 0; i < MAXOBJ; i++)
        if (objs[i].kind == O_FREE) {
            objs[i] = (struct obj){kind, dev, key, size, 0};
            return &objs[i];
        }
    return NULL;
}

/* take device memory; caller holds mu */
static CUresult take(int dev, uint64_t size, int kind, uint64_t *addr)
{
    if (devs[dev].used + size > mem_total)
        return CUDA_ERROR_OUT_OF_MEMORY;
    devs[dev].used += size;
    *addr = next_addr;
    next_addr += (size + 4095) & ~4095ull;
    next_addr += 4096;
    add(kind, dev, *addr, size);
    return CUDA_SUCCESS;
}

static CUresult give(int kind, uint64_t key)
{
    struct obj *o = find(kind, key);
    if (!o)
        return CUDA_ERROR_INVALID_VALUE;
    devs[o->dev].used -= o->size;
    o->kind = O_FREE;
    return CUDA_SUCCESS;
}

#define LOCKED(expr) do { CUresult r_; pthread_mutex_lock(&mu); r_ = (expr); pthread_mutex_unlock(&mu); return r_; } while (0)
#define NEEDCTX() do { if (cur_dev < 0) return CUDA_ERROR_INVALID_CONTEXT; } while (0)

EXPORT CUresult cuInit(unsigned int f) { (void)f; CALLED(); setup(); return CUDA_SUCCESS; }
EXPORT CUresult cuDriverGetVersion(int *v) { *v = 12080; return CUDA_SUCCESS; }
EXPORT CUresult cuDeviceGetCount(int *n) { setup(); *n = ndev; return CUDA_SUCCESS; }
EXPORT CUresult cuDeviceGet(CUdevice *d, int i) { setup(); if (i < 0 || i >= ndev) return CUDA_ERROR_INVALID_DEVICE; *d = i; return CUDA_SUCCESS; }
EXPORT CUresult cuDeviceGetUuid_v2(CUuuid *u, CUdevice d)
{
    setup();
    if (d < 0 || d >= ndev) return CUDA_ERROR_INVALID_DEVICE;
    memcpy(u->bytes, uuids[d], 16);
    return CUDA_SUCCESS;
}
/* device d's UUID bytes for the fake NVML (0, or -1 for no such device) */
EXPORT int fakegpu_uuid(int d, unsigned char out[16])
{
    setup();
    if (d < 0 || d >= ndev) return -1;
    memcpy(out, uuids[d], 16);
    return 0;
}
EXPORT CUresult cuDeviceGetUuid(CUuuid *u, CUdevice d) { return cuDeviceGetUuid_v2(u, d); }
EXPORT CUresult cuDeviceGetAttribute(int *v, int a, CUdevice d) { (void)d; *v = a == CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT ? 132 : 1; return CUDA_SUCCESS; }
EXPORT CUresult cuDeviceTotalMem_v2(size_t *b, CUdevice d) { CALLED(); setup(); if (d < 0 || d >= ndev) return CUDA_ERROR_INVALID_DEVICE; *b = mem_total; return CUDA_SUCCESS; }
EXPORT CUresult cuDeviceTotalMem(unsigned *b, CUdevice d) { CALLED(); setup(); if (d < 0 || d >= ndev) return CUDA_ERROR_INVALID_DEVICE; *b = mem_total > 0xffffffffu ? 0xffffffffu : (unsigned)mem_total; return CUDA_SUCCESS; }

/* ---- contexts ---- */
static CUresult ctx_make(CUcontext *c, CUdevice d, int primary)
{
    setup();
    if (d < 0 || d >= ndev) return CUDA_ERROR_INVALID_DEVICE;
    if (!c) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&mu);
    uintptr_t h = primary ? (0xC0000 + (uintptr_t)d) : (uintptr_t)next_addr++;
    if (!primary || devs[d].primary_refs++ == 0) {
        if (devs[d].used + CTX_COST > mem_total) { pthread_mutex_unlock(&mu); return CUDA_ERROR_OUT_OF_MEMORY; }
        devs[d].used += CTX_COST;
        add(O_CTX, d, h, CTX_COST);
    }
    pthread_mutex_unlock(&mu);
    *c = (CUcontext)h;
    if (!primary) { cur_dev = d; cur_ctx = h; }
    return CUDA_SUCCESS;
}
EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d) { CALLED(); return ctx_make(c, d, 1); }
EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d)
{
    CALLED();
    pthread_mutex_lock(&mu);
    if (devs[d].primary_refs > 0 && --devs[d].primary_refs == 0) give(O_CTX, 0xC0000 + (uintptr_t)d);
    pthread_mutex_unlock(&mu);
    if (cur_ctx == 0xC0000 + (uintptr_t)d) { cur_dev = -1; cur_ctx = 0; }
    return CUDA_SUCCESS;
}
EXPORT CUresult cuDevicePrimaryCtxReset_v2(CUdevice d)
{
    pthread_mutex_lock(&mu);
    if (devs[d].primary_refs > 0) { devs[d].primary_refs = 0; give(O_CTX, 0xC0000 + (uintptr_t)d); }
    pthread_mutex_unlock(&mu);
    return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxCreate_v2(CUcontext *c, unsigned f, CUdevice d) { (void)f; CALLED(); return ctx_make(c, d, 0); }
EXPORT CUresult cuCtxCreate_v3(CUcontext *c, void *p, int n, unsigned f, CUdevice d) { (void)p; (void)n; (void)f; CALLED(); return ctx_make(c, d, 0); }
EXPORT CUresult cuCtxCreate_v4(CUcontext *c, void *p, unsigned f, CUdevice d) { (void)p; (void)f; CALLED(); return ctx_make(c, d, 0); }
EXPORT CUresult cuCtxDestroy_v2(CUcontext c)
{
    CALLED();
    pthread_mutex_lock(&mu);
    CUresult r = give(O_CTX, (uintptr_t)c);
    pthread_mutex_unlock(&mu);
    if ((uintptr_t)c == cur_ctx) { cur_dev = -1; cur_ctx = 0; }
    return r;
}
EXPORT CUresult cuCtxSetCurrent(CUcontext c)
{
    pthread_mutex_lock(&mu);
    struct obj *o = c ? find(O_CTX, (uintptr_t)c) : NULL;
    cur_dev = o ? o->dev : -1;
    cur_ctx = o ? (uintptr_t)c : 0;
    pthread_mutex_unlock(&mu);
    return c && !o ? CUDA_ERROR_INVALID_CONTEXT : CUDA_SUCCESS;
}
EXPORT CUresult cuCtxGetCurrent(CUcontext *c) { *c = (CUcontext)cur_ctx; return CUDA_SUCCESS; }
EXPORT CUresult cuCtxGetDevice(CUdevice *d) { NEEDCTX(); *d = cur_dev; return CUDA_SUCCESS; }
EXPORT CUresult cuCtxSynchronize(void)
{
    NEEDCTX();
    uint64_t until = devs[cur_dev].busy_until, now;
    while ((now = now_ns()) < until) { struct timespec ts = {0, (long)(until - now)}; nanosleep(&ts, NULL); }
    pthread_mutex_lock(&mu);
    devs[cur_dev].pool_reserved = (devs[cur_dev].pool_used + POOL_CHUNK - 1) / POOL_CHUNK * POOL_CHUNK;
    pthread_mutex_unlock(&mu);
    return CUDA_SUCCESS;
}

/* ---- memory ---- */
EXPORT CUresult cuMemGetInfo_v2(size_t *f, size_t *t)
{
    CALLED(); NEEDCTX();
    pthread_mutex_lock(&mu);
    *f = mem_total - devs[cur_dev].used - devs[cur_dev].pool_reserved - devs[cur_dev].graph_reserved;
    *t = mem_total;
    pthread_mutex_unlock(&mu);
    return CUDA_SUCCESS;
}
EXPORT CUresult cuMemGetInfo(unsigned *f, unsigned *t)
{
    size_t a, b; CUresult r = cuMemGetInfo_v2(&a, &b);
    if (!r) { *f = a > 0xffffffffu ? 0xffffffffu : (unsigned)a; *t = b > 0xffffffffu ? 0xffffffffu : (unsigned)b; }
    return r;
}
EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n)
{
    CALLED(); NEEDCTX();
    if (!n || !p) return CUDA_ERROR_INVALID_VALUE;
    uint64_t a; pthread_mutex_lock(&mu); CUresult r = take(cur_dev, n, O_MEM, &a); pthread_mutex_unlock(&mu);
    if (!r) *p = a;
    return r;
}
EXPORT CUresult cuMemAlloc(CUdeviceptr_v1 *p, unsigned n)
{
    CUdeviceptr a; CALLED(); CUresult r = cuMemAlloc_v2(&a, n);
    if (!r) *p = (CUdeviceptr_v1)a; /* truncated handle: the fake keys v1 pointers the same way */
    if (!r) { pthread_mutex_lock(&mu); find(O_MEM, a)->key = (CUdeviceptr_v1)a; pthread_mutex_unlock(&mu); }
    return r;
}
EXPORT CUresult cuMemAllocManaged(CUdeviceptr *p, size_t n, unsigned f) { (void)f; CALLED(); return cuMemAlloc_v2(p, n); }
EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *p, size_t *pitch, size_t w, size_t h, unsigned e)
{
    CALLED(); (void)e;
    size_t pt = (w + 511) / 512 * 512;
    if (getenv("FAKEGPU_WIDE_PITCH")) pt = (w + 2047) / 2048 * 2048;
    CUresult r = cuMemAlloc_v2(p, pt * h);
    if (!r) *pitch = pt;
    return r;
}
EXPORT CUresult cuMemAllocPitch(CUdeviceptr_v1 *p, unsigned *pitch, unsigned w, unsigned h, unsigned e)
{
    CUdeviceptr a; size_t pt; CALLED();
    CUresult r = cuMemAllocPitch_v2(&a, &pt, w, h, e);
    if (!r) { *p = (CUdeviceptr_v1)a; *pitch = (unsigned)pt; pthread_mutex_lock(&mu); find(O_MEM, a)->key = (CUdeviceptr_v1)a; pthread_mutex_unlock(&mu); }
    return r;
}
EXPORT CUresult cuMemFree_v2(CUdeviceptr p)
{
    CALLED();
    pthread_mutex_lock(&mu);
    CUresult r = give(O_MEM, p);
    if (r) { struct obj *o = find(O_ASYNC, p); if (o) { devs[o->dev].pool_used -= o->size; o->kind = O_FREE; r = 0; } }
    pthread_mutex_unlock(&mu);
    return r;
}
EXPORT CUresult cuMemFree(CUdeviceptr_v1 p) { CALLED(); LOCKED(give(O_MEM, p)); }

static uint64_t fmt_bytes(int f) { return f == 1 || f == 8 ? 1 : (f == 2 || f == 9 || f == 0x10) ? 2 : 4; }
static CUresult array_make(void *out, uint64_t bytes)
{
    NEEDCTX(); uint64_t a;
    pthread_mutex_lock(&mu); CUresult r = take(cur_dev, bytes, O_ARRAY, &a); pthread_mutex_unlock(&mu);
    if (!r) *(void **)out = (void *)(uintptr_t)a;
    return r;
}
EXPORT CUresult cuArrayCreate_v2(CUarray *a, const CUDA_ARRAY_DESCRIPTOR *d)
{ CALLED(); return array_make(a, (d->Width * fmt_bytes(d->Format) * d->NumChannels + 511) / 512 * 512 * (d->Height ? d->Height : 1)); }
EXPORT CUresult cuArray3DCreate_v2(CUarray *a, const CUDA_ARRAY3D_DESCRIPTOR *d)
{ CALLED(); return array_make(a, (d->Width * fmt_bytes(d->Format) * d->NumChannels + 511) / 512 * 512 * (d->Height ? d->Height : 1) * (d->Depth ? d->Depth : 1)); }
EXPORT CUresult cuArrayDestroy(CUarray a) { CALLED(); LOCKED(give(O_ARRAY, (uintptr_t)a)); }
EXPORT CUresult cuMipmappedArrayCreate(CUmipmappedArray *m, const CUDA_ARRAY3D_DESCRIPTOR *d, unsigned levels)
{
    CALLED(); uint64_t t = 0; size_t w = d->Width, h = d->Height, z = d->Depth;
    for (unsigned i = 0; i < levels; i++) {
        t += (w * fmt_bytes(d->Format) * d->NumChannels + 511) / 512 * 512 * (h ? h : 1) * (z ? z : 1);
        w = w > 1 ? w / 2 : 1; h = h > 1 ? h / 2 : h; z = z > 1 ? z / 2 : z;
    }
    return array_make(m, t);
}
EXPORT CUresult cuMipmappedArrayDestroy(CUmipmappedArray m) { CALLED(); LOCKED(give(O_ARRAY, (uintptr_t)m)); }

/* ---- VMM ---- */
EXPORT CUresult cuMemGetAllocationGranularity(size_t *g, const CUmemAllocationProp *p, int o) { (void)p; (void)o; *g = VMM_GRAN; return CUDA_SUCCESS; }
EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *h, size_t n, const CUmemAllocationProp *p, unsigned long long f)
{
    CALLED(); (void)f; setup();
    if (!p || !n) return CUDA_ERROR_INVALID_VALUE;
    n = (n + VMM_GRAN - 1) / VMM_GRAN * VMM_GRAN; /* the real driver demands multiples */
    uint64_t a; int dev = p->location.type == CU_MEM_LOCATION_TYPE_DEVICE ? p->location.id : -1;
    if (dev >= ndev) return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&mu);
    CUresult r = dev >= 0 ? take(dev, n, O_VMM, &a) : (a = next_addr++, add(O_VMM, 7, a, 0), CUDA_SUCCESS);
    pthread_mutex_unlock(&mu);
    if (!r) *h = a;
    return r;
}
EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle h) { CALLED(); LOCKED(give(O_VMM, h)); }

/* ---- stream-ordered pools: default pool per device is (CUmemoryPool)(0x900 + dev) ---- */
static int pool_dev(CUmemoryPool p) { uintptr_t v = (uintptr_t)p; return v >= 0x900 && v < 0x908 ? (int)(v - 0x900) : -1; }
EXPORT CUresult cuDeviceGetMemPool(CUmemoryPool *p, CUdevice d) { *p = (CUmemoryPool)(uintptr_t)(0x900 + d); return CUDA_SUCCESS; }
EXPORT CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *p, CUdevice d) { return cuDeviceGetMemPool(p, d); }
EXPORT CUresult cuMemPoolGetAttribute(CUmemoryPool p, int attr, void *v)
{
    int d = pool_dev(p); if (d < 0) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&mu);
    cuuint64_t x = attr == CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT ? devs[d].pool_reserved : attr == CU_MEMPOOL_ATTR_USED_MEM_CURRENT ? devs[d].pool_used : 0;
    pthread_mutex_unlock(&mu);
    *(cuuint64_t *)v = x;
    return CUDA_SUCCESS;
}
static CUresult async_alloc(CUdeviceptr *p, size_t n, CUmemoryPool pool, CUstream s)
{
    NEEDCTX();
    if (s == FAKE_CAPTURE_STREAM) { *p = next_addr++; return CUDA_SUCCESS; } /* a graph node */
    int d = pool ? pool_dev(pool) : cur_dev;
    if (d < 0) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&mu);
    struct dev *v = &devs[d];
    if (v->pool_used + n > v->pool_reserved) {
        uint64_t want = (v->pool_used + n + POOL_CHUNK - 1) / POOL_CHUNK * POOL_CHUNK;
        if (v->used + v->graph_reserved + want > mem_total) { pthread_mutex_unlock(&mu); return CUDA_ERROR_OUT_OF_MEMORY; }
        v->pool_reserved = want;
    }
    v->pool_used += n;
    *p = next_addr; next_addr += (n + 4095) & ~4095ull;
    add(O_ASYNC, d, *p, n);
    pthread_mutex_unlock(&mu);
    return CUDA_SUCCESS;
}
EXPORT CUresult cuMemAllocAsync(CUdeviceptr *p, size_t n, CUstream s) { CALLED(); return async_alloc(p, n, NULL, s); }
EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *p, size_t n, CUstream s) { CALLED(); return async_alloc(p, n, NULL, s); }
EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *p, size_t n, CUmemoryPool q, CUstream s) { CALLED(); return async_alloc(p, n, q, s); }
EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *p, size_t n, CUmemoryPool q, CUstream s) { CALLED(); return async_alloc(p, n, q, s); }
static CUresult async_free(CUdeviceptr p)
{
    pthread_mutex_lock(&mu);
    struct obj *o = find(O_ASYNC, p);
    if (o) { devs[o->dev].pool_used -= o->size; o->kind = O_FREE; }
    pthread_mutex_unlock(&mu);
    return o ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
EXPORT CUresult cuMemFreeAsync(CUdeviceptr p, CUstream s) { (void)s; CALLED(); return async_free(p); }
EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr p, CUstream s) { (void)s; CALLED(); return async_free(p); }
EXPORT CUresult cuMemPoolTrimTo(CUmemoryPool p, size_t keep)
{
    int d = pool_dev(p); CALLED(); if (d < 0) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&mu);
    uint64_t floor = devs[d].pool_used > keep ? devs[d].pool_used : keep;
    uint64_t r = (floor + POOL_CHUNK - 1) / POOL_CHUNK * POOL_CHUNK;
    if (r < devs[d].pool_reserved) devs[d].pool_reserved = r;
    pthread_mutex_unlock(&mu);
    return CUDA_SUCCESS;
}
EXPORT CUresult cuMemPoolDestroy(CUmemoryPool p) { (void)p; return CUDA_SUCCESS; }

/* ---- streams, events, launches ---- */
EXPORT CUresult cuStreamIsCapturing(CUstream s, CUstreamCaptureStatus *st) { *st = s == FAKE_CAPTURE_STREAM; return CUDA_SUCCESS; }
EXPORT CUresult cuStreamIsCapturing_ptsz(CUstream s, CUstreamCaptureStatus *st) { return cuStreamIsCapturing(s, st); }
EXPORT CUresult cuEventCreate(CUevent *e, unsigned f) { (void)f; NEEDCTX(); *e = (CUevent)malloc(sizeof(uint64_t)); *(uint64_t *)*e = 0; return CUDA_SUCCESS; }
EXPORT CUresult cuEventDestroy_v2(CUevent e) { free(e); return CUDA_SUCCESS; }
static uint64_t timeline(int d) { uint64_t n = now_ns(); return devs[d].busy_until > n ? devs[d].busy_until : n; }
EXPORT CUresult cuEventRecord(CUevent e, CUstream s) { (void)s; NEEDCTX(); if (s == FAKE_CAPTURE_STREAM) return CUDA_SUCCESS; pthread_mutex_lock(&mu); *(uint64_t *)e = timeline(cur_dev); pthread_mutex_unlock(&mu); return CUDA_SUCCESS; }
EXPORT CUresult cuEventRecord_ptsz(CUevent e, CUstream s) { return cuEventRecord(e, s); }
EXPORT CUresult cuEventQuery(CUevent e) { return now_ns() >= *(uint64_t *)e ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY; }
EXPORT CUresult cuEventElapsedTime(float *ms, CUevent a, CUevent b) { *ms = (float)((double)(*(uint64_t *)b - *(uint64_t *)a) / 1e6); return CUDA_SUCCESS; }

static CUresult run(CUfunction f, CUstream s)
{
    NEEDCTX();
    if (s == FAKE_CAPTURE_STREAM) return CUDA_SUCCESS; /* recorded into a graph, not run */
    uint64_t dur = (uint64_t)(uintptr_t)f * 1000u;
    pthread_mutex_lock(&mu);
    devs[cur_dev].busy_until = timeline(cur_dev) + dur;
    devs[cur_dev].busy_total += dur;
    pthread_mutex_unlock(&mu);
    return CUDA_SUCCESS;
}
EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned a, unsigned b, unsigned c, unsigned d, unsigned e, unsigned g, unsigned h, CUstream s, void **x, void **y)
{ (void)a; (void)b; (void)c; (void)d; (void)e; (void)g; (void)h; (void)x; (void)y; CALLED(); return run(f, s); }
EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned a, unsigned b, unsigned c, unsigned d, unsigned e, unsigned g, unsigned h, CUstream s, void **x, void **y)
{ (void)a; (void)b; (void)c; (void)d; (void)e; (void)g; (void)h; (void)x; (void)y; CALLED(); return run(f, s); }
EXPORT CUresult cuLaunchKernelEx(const CUlaunchConfig *cfg, CUfunction f, void **x, void **y) { (void)x; (void)y; CALLED(); return run(f, cfg->hStream); }
EXPORT CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *cfg, CUfunction f, void **x, void **y) { (void)x; (void)y; CALLED(); return run(f, cfg->hStream); }
EXPORT CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned a, unsigned b, unsigned c, unsigned d, unsigned e, unsigned g, unsigned h, CUstream s, void **x)
{ (void)a; (void)b; (void)c; (void)d; (void)e; (void)g; (void)h; (void)x; CALLED(); return run(f, s); }
EXPORT CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned a, unsigned b, unsigned c, unsigned d, unsigned e, unsigned g, unsigned h, CUstream s, void **x)
{ (void)a; (void)b; (void)c; (void)d; (void)e; (void)g; (void)h; (void)x; CALLED(); return run(f, s); }

/* ---- graphs: a graph is its memory (sum of alloc nodes) and its run time (us) ---- */
EXPORT CUresult cuGraphCreate(CUgraph *g, unsigned f) { (void)f; pthread_mutex_lock(&mu); uint64_t k = next_addr++; add(O_GRAPH, 0, k, 0)->aux = 0; pthread_mutex_unlock(&mu); *g = (CUgraph)(uintptr_t)k; return CUDA_SUCCESS; }
EXPORT CUresult cuGraphAddMemAllocNode(CUgraphNode *n, CUgraph g, const CUgraphNode *deps, size_t nd, CUDA_MEM_ALLOC_NODE_PARAMS *p)
{
    (void)deps; (void)nd; CALLED();
    pthread_mutex_lock(&mu);
    struct obj *o = find(O_GRAPH, (uintptr_t)g);
    if (o) { o->size += p->bytesize; o->dev = p->poolProps.location.id; }
    p->dptr = next_addr++;
    pthread_mutex_unlock(&mu);
    *n = (CUgraphNode)(uintptr_t)p->dptr;
    return o ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
EXPORT CUresult cuGraphInstantiateWithFlags(CUgraphExec *e, CUgraph g, unsigned long long f)
{
    (void)f; pthread_mutex_lock(&mu);
    struct obj *o = find(O_GRAPH, (uintptr_t)g);
    uint64_t k = next_addr++;
    struct obj *x = add(O_EXEC, o ? o->dev : 0, k, o ? o->size : 0);
    x->aux = 0;
    pthread_mutex_unlock(&mu);
    *e = (CUgraphExec)(uintptr_t)k;
    return CUDA_SUCCESS;
}
static CUresult graph_run(CUgraphExec e, CUstream s, int launch)
{
    NEEDCTX();
    pthread_mutex_lock(&mu);
    struct obj *x = find(O_EXEC, (uintptr_t)e);
    if (!x) { pthread_mutex_unlock(&mu); return CUDA_ERROR_INVALID_HANDLE; }
    if (!x->aux) { devs[x->dev].graph_reserved += x->size; x->aux = 1; }
    pthread_mutex_unlock(&mu);
    return launch ? run((CUfunction)(uintptr_t)1000, s) : CUDA_SUCCESS; /* graphs take 1 ms */
}
EXPORT CUresult cuGraphLaunch(CUgraphExec e, CUstream s) { CALLED(); return graph_run(e, s, 1); }
EXPORT CUresult cuGraphLaunch_ptsz(CUgraphExec e, CUstream s) { CALLED(); return graph_run(e, s, 1); }
EXPORT CUresult cuGraphUpload(CUgraphExec e, CUstream s) { CALLED(); return graph_run(e, s, 0); }
EXPORT CUresult cuGraphUpload_ptsz(CUgraphExec e, CUstream s) { CALLED(); return graph_run(e, s, 0); }
EXPORT CUresult cuGraphExecDestroy(CUgraphExec e)
{
    pthread_mutex_lock(&mu);
    struct obj *x = find(O_EXEC, (uintptr_t)e);
    if (x) { x->kind = O_FREE; }
    pthread_mutex_unlock(&mu);
    return x ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}
EXPORT CUresult cuDeviceGraphMemTrim(CUdevice d)
{
    /* release graph memory of execs that no longer exist */
    pthread_mutex_lock(&mu);
    uint64_t live = 0;
    for (int i = 0; i < MAXOBJ; i++) if (objs[i].kind == O_EXEC && objs[i].dev == d && objs[i].aux) live += objs[i].size;
    devs[d].graph_reserved = live;
    pthread_mutex_unlock(&mu);
    return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetGraphMemAttribute(CUdevice d, int attr, void *v)
{
    pthread_mutex_lock(&mu);
    *(cuuint64_t *)v = attr == CU_GRAPH_MEM_ATTR_RESERVED_MEM_CURRENT ? devs[d].graph_reserved : 0;
    pthread_mutex_unlock(&mu);
    return CUDA_SUCCESS;
}

/* ---- test helpers ---- */
EXPORT uint64_t fakegpu_used(int d) { return devs[d].used + devs[d].pool_reserved + devs[d].graph_reserved; }
EXPORT uint64_t fakegpu_busy_ns(int d) { return devs[d].busy_total; }
EXPORT uint64_t fakegpu_total(void) { setup(); return mem_total; }

/* ---- cuGetProcAddress: what this driver advertises ---- */
EXPORT CUresult cuGetProcAddress(const char *sym, void **pfn, int ver, cuuint64_t flags);
EXPORT CUresult cuGetProcAddress_v2(const char *sym, void **pfn, int ver, cuuint64_t flags,
                                    CUdriverProcAddressQueryResult *st);
#define P(sym, ver, fl, fn) {sym, ver, fl, #fn, (void *)fn}
EXPORT const struct fake_proc fakegpu_proc_table[] = {
    P("cuGetProcAddress", 11030, 0, cuGetProcAddress), P("cuGetProcAddress", 12000, 0, cuGetProcAddress_v2),
    P("cuInit", 2000, 0, cuInit),
    P("cuMemAlloc", 2000, 0, cuMemAlloc), P("cuMemAlloc", 3020, 0, cuMemAlloc_v2),
    P("cuMemFree", 2000, 0, cuMemFree), P("cuMemFree", 3020, 0, cuMemFree_v2),
    P("cuMemAllocPitch", 2000, 0, cuMemAllocPitch), P("cuMemAllocPitch", 3020, 0, cuMemAllocPitch_v2),
    P("cuMemAllocManaged", 6000, 0, cuMemAllocManaged),
    P("cuMemGetInfo", 2000, 0, cuMemGetInfo), P("cuMemGetInfo", 3020, 0, cuMemGetInfo_v2),
    P("cuDeviceTotalMem", 2000, 0, cuDeviceTotalMem), P("cuDeviceTotalMem", 3020, 0, cuDeviceTotalMem_v2),
    P("cuArrayCreate", 3020, 0, cuArrayCreate_v2), P("cuArray3DCreate", 3020, 0, cuArray3DCreate_v2),
    P("cuArrayDestroy", 2000, 0, cuArrayDestroy),
    P("cuMipmappedArrayCreate", 5000, 0, cuMipmappedArrayCreate), P("cuMipmappedArrayDestroy", 5000, 0, cuMipmappedArrayDestroy),
    P("cuMemCreate", 10020, 0, cuMemCreate), P("cuMemRelease", 10020, 0, cuMemRelease),
    P("cuMemAllocAsync", 11020, 0, cuMemAllocAsync), P("cuMemAllocAsync", 11020, 2, cuMemAllocAsync_ptsz),
    P("cuMemFreeAsync", 11020, 0, cuMemFreeAsync), P("cuMemFreeAsync", 11020, 2, cuMemFreeAsync_ptsz),
    P("cuMemAllocFromPoolAsync", 11020, 0, cuMemAllocFromPoolAsync), P("cuMemAllocFromPoolAsync", 11020, 2, cuMemAllocFromPoolAsync_ptsz),
    P("cuMemPoolTrimTo", 11020, 0, cuMemPoolTrimTo), P("cuMemPoolDestroy", 11020, 0, cuMemPoolDestroy),
    P("cuGraphAddMemAllocNode", 11040, 0, cuGraphAddMemAllocNode), P("cuDeviceGraphMemTrim", 11040, 0, cuDeviceGraphMemTrim),
    P("cuGraphLaunch", 10000, 0, cuGraphLaunch), P("cuGraphLaunch", 10000, 2, cuGraphLaunch_ptsz),
    P("cuGraphUpload", 11010, 0, cuGraphUpload), P("cuGraphUpload", 11010, 2, cuGraphUpload_ptsz),
    P("cuGraphExecDestroy", 10000, 0, cuGraphExecDestroy),
    P("cuDevicePrimaryCtxRetain", 7000, 0, cuDevicePrimaryCtxRetain),
    P("cuDevicePrimaryCtxRelease", 11000, 0, cuDevicePrimaryCtxRelease_v2),
    P("cuDevicePrimaryCtxReset", 11000, 0, cuDevicePrimaryCtxReset_v2),
    P("cuCtxCreate", 3020, 0, cuCtxCreate_v2), P("cuCtxCreate", 11040, 0, cuCtxCreate_v3), P("cuCtxCreate", 12050, 0, cuCtxCreate_v4),
    P("cuCtxDestroy", 4000, 0, cuCtxDestroy_v2),
    P("cuLaunchKernel", 4000, 0, cuLaunchKernel), P("cuLaunchKernel", 7000, 2, cuLaunchKernel_ptsz),
    P("cuLaunchKernelEx", 11060, 0, cuLaunchKernelEx), P("cuLaunchKernelEx", 11060, 2, cuLaunchKernelEx_ptsz),
    P("cuLaunchCooperativeKernel", 9000, 0, cuLaunchCooperativeKernel), P("cuLaunchCooperativeKernel", 9000, 2, cuLaunchCooperativeKernel_ptsz),
    P("cuCtxGetDevice", 2000, 0, cuCtxGetDevice), P("cuDeviceGet", 2000, 0, cuDeviceGet),
    P("cuStreamIsCapturing", 10000, 0, cuStreamIsCapturing),
    {NULL, 0, 0, NULL, NULL},
};

static const struct fake_proc *pick(const char *sym, int ver, cuuint64_t flags)
{
    const struct fake_proc *best = NULL, *dflt = NULL;
    int ptsz = (flags & 2) != 0;
    for (const struct fake_proc *p = fakegpu_proc_table; p->symbol; p++) {
        if (strcmp(p->symbol, sym) || p->version > ver)
            continue;
        if (p->flags == 2 && ptsz && (!best || p->version >= best->version)) best = p;
        if (p->flags == 0 && (!dflt || p->version >= dflt->version)) dflt = p;
    }
    return best ? best : dflt;
}

EXPORT CUresult cuGetProcAddress_v2(const char *sym, void **pfn, int ver, cuuint64_t flags, CUdriverProcAddressQueryResult *st)
{
    CALLED();
    const struct fake_proc *p = sym ? pick(sym, ver, flags) : NULL;
    if (st) *st = p ? CU_GET_PROC_ADDRESS_SUCCESS : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    if (!p) { *pfn = NULL; return CUDA_ERROR_NOT_FOUND; }
    *pfn = p->fn;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuGetProcAddress(const char *sym, void **pfn, int ver, cuuint64_t flags) { return cuGetProcAddress_v2(sym, pfn, ver, flags, NULL); }
