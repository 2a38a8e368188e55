/*
 * mem.c - classic device allocators: linear, pitched, managed, arrays,
 * mipmapped arrays (and the pre-3.2 32-bit entry points). Each one charges
 * before calling the driver (check and charge are one atomic step), gives the
 * charge back if the driver fails, and records what it charged so the free
 * returns exactly that. Frees of pointers it does not know are forwarded.
 */
#include "vgpu.h"

/* charge, run, then record or give back */
static CUresult admit(int dev, uint64_t bytes)
{
    return vgpu__charge(dev, bytes, VGPU_KIND_DATA, 0) ? CUDA_ERROR_OUT_OF_MEMORY
                                                        : CUDA_SUCCESS;
}

static void record(int ns, uint64_t key, int dev, uint64_t bytes, CUcontext ctx)
{
    struct vgpu_track t = {.ns = ns, .key = key, .dev = dev, .bytes = bytes,
                           .kind = VGPU_KIND_DATA, .ctx = ctx};
    vgpu__track_put(&t);
}

static void release(int ns, uint64_t key)
{
    struct vgpu_track t;
    if (vgpu__track_take(ns, key, &t) == 0)
        vgpu__uncharge(t.dev, t.bytes, t.kind);
}

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t size)
{
    int dev;
    CUcontext ctx;
    CUresult r;
    VGPU_NEED(cuMemAlloc_v2);
    if (vgpu__passthrough() || !dptr || vgpu__current(&dev, &ctx) != 0)
        return vgpu__real.cuMemAlloc_v2(dptr, size);
    if ((r = admit(dev, size)) != CUDA_SUCCESS)
        return r;
    r = vgpu__real.cuMemAlloc_v2(dptr, size);
    if (r == CUDA_SUCCESS)
        record(VGPU_T_PTR, *dptr, dev, size, ctx);
    else
        vgpu__uncharge(dev, size, VGPU_KIND_DATA);
    return r;
}

CUresult cuMemAlloc(CUdeviceptr_v1 *dptr, unsigned int size)
{
    int dev;
    CUcontext ctx;
    CUresult r;
    VGPU_NEED(cuMemAlloc);
    if (vgpu__passthrough() || !dptr || vgpu__current(&dev, &ctx) != 0)
        return vgpu__real.cuMemAlloc(dptr, size);
    if ((r = admit(dev, size)) != CUDA_SUCCESS)
        return r;
    r = vgpu__real.cuMemAlloc(dptr, size);
    if (r == CUDA_SUCCESS)
        record(VGPU_T_PTR, *dptr, dev, size, ctx);
    else
        vgpu__uncharge(dev, size, VGPU_KIND_DATA);
    return r;
}

CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t size, unsigned int flags)
{
    int dev;
    CUcontext ctx;
    CUresult r;
    VGPU_NEED(cuMemAllocManaged);
    if (vgpu__passthrough() || !dptr || vgpu__current(&dev, &ctx) != 0)
        return vgpu__real.cuMemAllocManaged(dptr, size, flags);
    if ((r = admit(dev, size)) != CUDA_SUCCESS)
        return r;
    r = vgpu__real.cuMemAllocManaged(dptr, size, flags);
    if (r == CUDA_SUCCESS)
        record(VGPU_T_PTR, *dptr, dev, size, ctx);
    else
        vgpu__uncharge(dev, size, VGPU_KIND_DATA);
    return r;
}

CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    CUresult r;
    VGPU_NEED(cuMemFree_v2);
    r = vgpu__real.cuMemFree_v2(dptr);
    if (r == CUDA_SUCCESS && dptr)
        vgpu__free_tracked_ptr(dptr);
    return r;
}

CUresult cuMemFree(CUdeviceptr_v1 dptr)
{
    CUresult r;
    VGPU_NEED(cuMemFree);
    r = vgpu__real.cuMemFree(dptr);
    if (r == CUDA_SUCCESS && dptr)
        vgpu__free_tracked_ptr(dptr);
    return r;
}

/*
 * Pitched: the driver picks the pitch. Charge an estimate first (width rounded
 * to 512 bytes), then settle on pitch * height: the surplus is given back, a
 * shortfall is charged with the same limit check (or the allocation undone).
 */
#define PITCH_GUESS(w) (((uint64_t)(w) + 511u) & ~(uint64_t)511u)

static CUresult settle_pitch(int dev, uint64_t guess, uint64_t actual, CUdeviceptr p,
                             CUcontext ctx, int v1)
{
    if (actual > guess && vgpu__charge(dev, actual - guess, VGPU_KIND_DATA, 0) != 0) {
        if (v1)
            vgpu__real.cuMemFree((CUdeviceptr_v1)p);
        else
            vgpu__real.cuMemFree_v2(p);
        vgpu__uncharge(dev, guess, VGPU_KIND_DATA);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (actual < guess)
        vgpu__uncharge(dev, guess - actual, VGPU_KIND_DATA);
    record(VGPU_T_PTR, p, dev, actual, ctx);
    return CUDA_SUCCESS;
}

CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t w, size_t h,
                            unsigned int elem)
{
    int dev;
    CUcontext ctx;
    CUresult r;
    uint64_t guess = PITCH_GUESS(w) * h;
    VGPU_NEED(cuMemAllocPitch_v2);
    if (vgpu__passthrough() || !dptr || !pitch || vgpu__current(&dev, &ctx) != 0)
        return vgpu__real.cuMemAllocPitch_v2(dptr, pitch, w, h, elem);
    if ((r = admit(dev, guess)) != CUDA_SUCCESS)
        return r;
    r = vgpu__real.cuMemAllocPitch_v2(dptr, pitch, w, h, elem);
    if (r != CUDA_SUCCESS) {
        vgpu__uncharge(dev, guess, VGPU_KIND_DATA);
        return r;
    }
    return settle_pitch(dev, guess, (uint64_t)*pitch * h, *dptr, ctx, 0);
}

CUresult cuMemAllocPitch(CUdeviceptr_v1 *dptr, unsigned int *pitch, unsigned int w,
                         unsigned int h, unsigned int elem)
{
    int dev;
    CUcontext ctx;
    CUresult r;
    uint64_t guess = PITCH_GUESS(w) * h;
    VGPU_NEED(cuMemAllocPitch);
    if (vgpu__passthrough() || !dptr || !pitch || vgpu__current(&dev, &ctx) != 0)
        return vgpu__real.cuMemAllocPitch(dptr, pitch, w, h, elem);
    if ((r = admit(dev, guess)) != CUDA_SUCCESS)
        return r;
    r = vgpu__real.cuMemAllocPitch(dptr, pitch, w, h, elem);
    if (r != CUDA_SUCCESS) {
        vgpu__uncharge(dev, guess, VGPU_KIND_DATA);
        return r;
    }
    return settle_pitch(dev, guess, (uint64_t)*pitch * h, *dptr, ctx, 1);
}

/* bytes per element of an array format (unknown formats: 4, the common case) */
static uint64_t format_bytes(CUarray_format f)
{
    switch (f) {
    case CU_AD_FORMAT_UNSIGNED_INT8: case CU_AD_FORMAT_SIGNED_INT8: return 1;
    case CU_AD_FORMAT_UNSIGNED_INT16: case CU_AD_FORMAT_SIGNED_INT16: case CU_AD_FORMAT_HALF:
        return 2;
    default: return 4;
    }
}

static uint64_t array_bytes(size_t w, size_t h, size_t d, CUarray_format f, unsigned ch)
{
    uint64_t row = PITCH_GUESS((uint64_t)w * format_bytes(f) * (ch ? ch : 1));
    return row * (h ? h : 1) * (d ? d : 1);
}

static CUresult array_common(int ns, uint64_t bytes, CUresult (*call)(void *, const void *),
                             void *out, const void *desc)
{
    int dev;
    CUcontext ctx;
    CUresult r;
    if (vgpu__passthrough() || !out || vgpu__current(&dev, &ctx) != 0)
        return call(out, desc);
    if ((r = admit(dev, bytes)) != CUDA_SUCCESS)
        return r;
    r = call(out, desc);
    if (r == CUDA_SUCCESS)
        record(ns, (uint64_t)(uintptr_t)*(void **)out, dev, bytes, ctx);
    else
        vgpu__uncharge(dev, bytes, VGPU_KIND_DATA);
    return r;
}

static CUresult call_array2d(void *out, const void *d)
{
    return vgpu__real.cuArrayCreate_v2(out, d);
}
static CUresult call_array3d(void *out, const void *d)
{
    return vgpu__real.cuArray3DCreate_v2(out, d);
}

static _Thread_local unsigned t_levels; /* the level count, passed to call_mipmap */
static CUresult call_mipmap(void *out, const void *d)
{
    return vgpu__real.cuMipmappedArrayCreate(out, d, t_levels);
}

CUresult cuArrayCreate_v2(CUarray *arr, const CUDA_ARRAY_DESCRIPTOR *d)
{
    VGPU_NEED(cuArrayCreate_v2);
    if (!d)
        return vgpu__real.cuArrayCreate_v2(arr, d);
    return array_common(VGPU_T_ARRAY, array_bytes(d->Width, d->Height, 1, d->Format,
                                                  d->NumChannels),
                        call_array2d, arr, d);
}

CUresult cuArray3DCreate_v2(CUarray *arr, const CUDA_ARRAY3D_DESCRIPTOR *d)
{
    VGPU_NEED(cuArray3DCreate_v2);
    if (!d)
        return vgpu__real.cuArray3DCreate_v2(arr, d);
    return array_common(VGPU_T_ARRAY, array_bytes(d->Width, d->Height, d->Depth, d->Format,
                                                  d->NumChannels),
                        call_array3d, arr, d);
}

CUresult cuArrayDestroy(CUarray arr)
{
    CUresult r;
    VGPU_NEED(cuArrayDestroy);
    r = vgpu__real.cuArrayDestroy(arr);
    if (r == CUDA_SUCCESS)
        release(VGPU_T_ARRAY, (uint64_t)(uintptr_t)arr);
    return r;
}

CUresult cuMipmappedArrayCreate(CUmipmappedArray *h, const CUDA_ARRAY3D_DESCRIPTOR *d,
                                unsigned int levels)
{
    uint64_t total = 0;
    size_t w, hh, dd;
    VGPU_NEED(cuMipmappedArrayCreate);
    if (!d)
        return vgpu__real.cuMipmappedArrayCreate(h, d, levels);
    w = d->Width;
    hh = d->Height;
    dd = d->Depth;
    for (unsigned i = 0; i < levels && i < 64; i++) {
        total += array_bytes(w, hh, dd, d->Format, d->NumChannels);
        w = w > 1 ? w / 2 : 1;
        hh = hh > 1 ? hh / 2 : hh;
        dd = dd > 1 ? dd / 2 : dd;
    }
    t_levels = levels;
    return array_common(VGPU_T_MIPMAP, total, call_mipmap, h, d);
}

CUresult cuMipmappedArrayDestroy(CUmipmappedArray h)
{
    CUresult r;
    VGPU_NEED(cuMipmappedArrayDestroy);
    r = vgpu__real.cuMipmappedArrayDestroy(h);
    if (r == CUDA_SUCCESS)
        release(VGPU_T_MIPMAP, (uint64_t)(uintptr_t)h);
    return r;
}
