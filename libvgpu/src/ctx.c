/*
 * ctx.c - contexts. Each context costs device memory the driver keeps for
 * itself; libvgpu charges a per-context overhead (LIBVGPU_CONTEXT_OVERHEAD, or
 * measured once per device from NVML's device usage around the first context
 * it sees created) and, when a context goes away, returns the overhead and
 * everything still tracked against that context.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "vgpu.h"

#define MAX_OVERHEAD (1ull << 30)

static pthread_mutex_t g_cmu = PTHREAD_MUTEX_INITIALIZER;
static int g_primary_refs[VGPU_MAXDEV];
static CUcontext g_primary[VGPU_MAXDEV];
static int g_measured[VGPU_MAXDEV];
static uint64_t g_overhead[VGPU_MAXDEV];

void vgpu__ctx_fork_lock(void) { pthread_mutex_lock(&g_cmu); }
void vgpu__ctx_fork_unlock(void) { pthread_mutex_unlock(&g_cmu); }

void vgpu__ctx_reset(void)
{
    memset(g_primary_refs, 0, sizeof g_primary_refs);
    memset(g_primary, 0, sizeof g_primary);
}

/* the device and context current on this thread, charging a new context's overhead */
int vgpu__current(int *dev, CUcontext *ctx)
{
    CUcontext c = NULL;
    vgpu__init_cuda();
    if (!vgpu__real.cuCtxGetDevice || vgpu__real.cuCtxGetDevice(dev) != CUDA_SUCCESS)
        return -1;
    if (vgpu__real.cuCtxGetCurrent)
        vgpu__real.cuCtxGetCurrent(&c);
    if (ctx)
        *ctx = c;
    vgpu__ctx_ensure_charged(*dev, c);
    return 0;
}

/* NVML handle of CUDA device dev, matched by UUID */
static int nvml_used(int dev, uint64_t *used)
{
    CUuuid u;
    char uuid[LVGPU_UUID_LEN];
    nvmlDevice_t h;
    nvmlMemory_t m;
    const unsigned char *b = (const unsigned char *)u.bytes;
    if (vgpu__init_nvml() != 0 || !vgpu__real.nvmlInit_v2 ||
        !vgpu__real.nvmlDeviceGetHandleByUUID || !vgpu__real.nvmlDeviceGetMemoryInfo)
        return -1;
    if (!vgpu__real.cuDeviceGetUuid_v2 || vgpu__real.cuDeviceGetUuid_v2(&u, dev) != CUDA_SUCCESS)
        return -1;
    snprintf(uuid, sizeof uuid,
             "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    if (vgpu__real.nvmlInit_v2() != NVML_SUCCESS ||
        vgpu__real.nvmlDeviceGetHandleByUUID(uuid, &h) != NVML_SUCCESS ||
        vgpu__real.nvmlDeviceGetMemoryInfo(h, &m) != NVML_SUCCESS)
        return -1;
    *used = m.used;
    return 0;
}

static uint64_t overhead(int dev)
{
    const struct vgpu_config *c = vgpu__config();
    if (c->ctx_overhead_set)
        return c->ctx_overhead;
    return (dev >= 0 && dev < VGPU_MAXDEV) ? g_overhead[dev] : 0;
}

/* around creating the first context on dev: before=1 samples, before=0 sets */
static void measure(int dev, int before, uint64_t *sample)
{
    uint64_t now;
    if (vgpu__config()->ctx_overhead_set || dev < 0 || dev >= VGPU_MAXDEV || g_measured[dev])
        return;
    if (nvml_used(dev, &now) != 0) {
        if (!before)
            g_measured[dev] = 1;
        return;
    }
    if (before) {
        *sample = now;
        return;
    }
    g_measured[dev] = 1;
    if (*sample != UINT64_MAX && now > *sample && now - *sample <= MAX_OVERHEAD)
        g_overhead[dev] = now - *sample;
    vgpu__log(VGPU_LOG_INFO, "device %d: context overhead %llu bytes", dev,
              (unsigned long long)g_overhead[dev]);
}

static void charge_ctx(int dev, CUcontext ctx)
{
    struct vgpu_track t = {.ns = VGPU_T_CTX, .key = (uint64_t)(uintptr_t)ctx, .dev = dev,
                           .bytes = overhead(dev), .kind = VGPU_KIND_CTX, .ctx = ctx};
    if (vgpu__track_get(VGPU_T_CTX, t.key, &t) == 0)
        return;
    vgpu__charge(dev, t.bytes, VGPU_KIND_CTX, 1);
    vgpu__track_put(&t);
}

void vgpu__ctx_ensure_charged(int dev, CUcontext ctx)
{
    struct vgpu_track t;
    if (!ctx || vgpu__track_get(VGPU_T_CTX, (uint64_t)(uintptr_t)ctx, &t) == 0)
        return;
    pthread_mutex_lock(&g_cmu);
    charge_ctx(dev, ctx);
    pthread_mutex_unlock(&g_cmu);
}

CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice dev)
{
    uint64_t before = UINT64_MAX;
    CUresult r;
    VGPU_NEED(cuDevicePrimaryCtxRetain);
    if (vgpu__passthrough() || !ctx || dev < 0 || dev >= VGPU_MAXDEV)
        return vgpu__real.cuDevicePrimaryCtxRetain(ctx, dev);
    pthread_mutex_lock(&g_cmu);
    if (g_primary_refs[dev] == 0)
        measure(dev, 1, &before);
    r = vgpu__real.cuDevicePrimaryCtxRetain(ctx, dev);
    if (r == CUDA_SUCCESS) {
        if (g_primary_refs[dev]++ == 0) {
            measure(dev, 0, &before);
            g_primary[dev] = *ctx;
        }
        charge_ctx(dev, *ctx);
    }
    pthread_mutex_unlock(&g_cmu);
    return r;
}

static void primary_gone(CUdevice dev, int reset)
{
    CUcontext c = NULL;
    if (dev < 0 || dev >= VGPU_MAXDEV)
        return;
    pthread_mutex_lock(&g_cmu);
    if (g_primary_refs[dev] > 0 && (reset || --g_primary_refs[dev] == 0)) {
        g_primary_refs[dev] = 0;
        c = g_primary[dev];
        g_primary[dev] = NULL;
    }
    pthread_mutex_unlock(&g_cmu);
    if (c)
        vgpu__track_drop_ctx(c);
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    CUresult r;
    VGPU_NEED(cuDevicePrimaryCtxRelease_v2);
    r = vgpu__real.cuDevicePrimaryCtxRelease_v2(dev);
    if (r == CUDA_SUCCESS && !vgpu__passthrough())
        primary_gone(dev, 0);
    return r;
}

CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev)
{
    CUresult r;
    VGPU_NEED(cuDevicePrimaryCtxReset_v2);
    r = vgpu__real.cuDevicePrimaryCtxReset_v2(dev);
    if (r == CUDA_SUCCESS && !vgpu__passthrough())
        primary_gone(dev, 1);
    return r;
}

/* common tail of the cuCtxCreate family */
static CUresult created(CUresult r, CUcontext *ctx, CUdevice dev, uint64_t before)
{
    if (r == CUDA_SUCCESS && ctx && !vgpu__passthrough()) {
        measure(dev, 0, &before);
        charge_ctx(dev, *ctx);
    }
    pthread_mutex_unlock(&g_cmu);
    return r;
}

CUresult cuCtxCreate_v2(CUcontext *ctx, unsigned int flags, CUdevice dev)
{
    uint64_t before = UINT64_MAX;
    VGPU_NEED(cuCtxCreate_v2);
    pthread_mutex_lock(&g_cmu);
    measure(dev, 1, &before);
    return created(vgpu__real.cuCtxCreate_v2(ctx, flags, dev), ctx, dev, before);
}

CUresult cuCtxCreate_v3(CUcontext *ctx, void *params, int n, unsigned int flags, CUdevice dev)
{
    uint64_t before = UINT64_MAX;
    VGPU_NEED(cuCtxCreate_v3);
    pthread_mutex_lock(&g_cmu);
    measure(dev, 1, &before);
    return created(vgpu__real.cuCtxCreate_v3(ctx, params, n, flags, dev), ctx, dev, before);
}

CUresult cuCtxCreate_v4(CUcontext *ctx, void *params, unsigned int flags, CUdevice dev)
{
    uint64_t before = UINT64_MAX;
    VGPU_NEED(cuCtxCreate_v4);
    pthread_mutex_lock(&g_cmu);
    measure(dev, 1, &before);
    return created(vgpu__real.cuCtxCreate_v4(ctx, params, flags, dev), ctx, dev, before);
}

CUresult cuCtxDestroy_v2(CUcontext ctx)
{
    CUresult r;
    VGPU_NEED(cuCtxDestroy_v2);
    r = vgpu__real.cuCtxDestroy_v2(ctx);
    if (r == CUDA_SUCCESS && ctx && !vgpu__passthrough())
        vgpu__track_drop_ctx(ctx);
    return r;
}
