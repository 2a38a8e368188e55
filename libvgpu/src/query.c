/*
 * query.c - the virtualised memory views. With a limit: total = min(limit,
 * physical), free = total - container usage, clamped to [0, physical free].
 * Without one: the driver's own answers. Output pointers may be NULL.
 */
#include <limits.h>

#include "vgpu.h"

static void virtualise(int dev, size_t *free_b, size_t *total_b)
{
    uint64_t lim, used, total, fr;
    int rc = vgpu__limit(dev, &lim);
    if (rc == 0)
        return; /* unlimited: real values */
    if (rc < 0)
        lim = 0; /* misconfigured: nothing is available */
    if (!vgpu__region())
        lim = 0; /* no shared accounting: allocation is refused, so show none free */
    used = vgpu__usage(dev);
    total = lim < *total_b ? lim : *total_b;
    fr = used < total ? total - used : 0;
    if (fr > *free_b)
        fr = *free_b;
    *total_b = (size_t)total;
    *free_b = (size_t)fr;
}

CUresult cuMemGetInfo_v2(size_t *free_b, size_t *total_b)
{
    size_t f = 0, t = 0;
    int dev;
    CUresult r;
    VGPU_NEED(cuMemGetInfo_v2);
    r = vgpu__real.cuMemGetInfo_v2(&f, &t);
    if (r != CUDA_SUCCESS)
        return r;
    if (!vgpu__passthrough() && vgpu__current(&dev, NULL) == 0)
        virtualise(dev, &f, &t);
    if (free_b)
        *free_b = f;
    if (total_b)
        *total_b = t;
    return r;
}

CUresult cuMemGetInfo(unsigned int *free_b, unsigned int *total_b)
{
    size_t f = 0, t = 0;
    CUresult r = cuMemGetInfo_v2(&f, &t);
    if (r != CUDA_SUCCESS)
        return r;
    if (free_b)
        *free_b = f > UINT_MAX ? UINT_MAX : (unsigned)f;
    if (total_b)
        *total_b = t > UINT_MAX ? UINT_MAX : (unsigned)t;
    return r;
}

static void total_of(CUdevice dev, size_t *bytes)
{
    uint64_t lim;
    int rc;
    if (vgpu__passthrough())
        return;
    rc = vgpu__limit(dev, &lim);
    if (rc < 0)
        *bytes = 0;
    else if (rc > 0 && lim < *bytes)
        *bytes = (size_t)lim;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    CUresult r;
    VGPU_NEED(cuDeviceTotalMem_v2);
    r = vgpu__real.cuDeviceTotalMem_v2(bytes, dev);
    if (r == CUDA_SUCCESS && bytes)
        total_of(dev, bytes);
    return r;
}

CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice dev)
{
    size_t b = 0;
    CUresult r;
    VGPU_NEED(cuDeviceTotalMem);
    r = vgpu__real.cuDeviceTotalMem(bytes, dev);
    if (r != CUDA_SUCCESS || !bytes)
        return r;
    b = *bytes;
    total_of(dev, &b);
    *bytes = (unsigned)b;
    return r;
}
