/*
 * launch.c - every kernel launch path goes through the compute-share limiter:
 * cuLaunchKernel, cuLaunchKernelEx, cuLaunchCooperativeKernel, cuGraphLaunch,
 * each with its per-thread-default-stream (_ptsz) twin.
 */
#include "vgpu.h"

#define LAUNCH(name, ptsz, stream, key, call)                  \
    do {                                                       \
        CUresult r_;                                           \
        VGPU_NEED(name);                                       \
        if (vgpu__passthrough())                               \
            return call;                                       \
        vgpu__limit_launch((stream), (ptsz), (key));           \
        r_ = call;                                             \
        vgpu__limit_after_launch((stream), (ptsz), (key));     \
        return r_;                                             \
    } while (0)

CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                        unsigned by, unsigned bz, unsigned shm, CUstream s, void **args,
                        void **extra)
{
    LAUNCH(cuLaunchKernel, 0, s, f,
           vgpu__real.cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shm, s, args, extra));
}

CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                             unsigned by, unsigned bz, unsigned shm, CUstream s, void **args,
                             void **extra)
{
    LAUNCH(cuLaunchKernel_ptsz, 1, s, f,
           vgpu__real.cuLaunchKernel_ptsz(f, gx, gy, gz, bx, by, bz, shm, s, args, extra));
}

CUresult cuLaunchKernelEx(const CUlaunchConfig *cfg, CUfunction f, void **args, void **extra)
{
    LAUNCH(cuLaunchKernelEx, 0, cfg ? cfg->hStream : NULL, f,
           vgpu__real.cuLaunchKernelEx(cfg, f, args, extra));
}

CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *cfg, CUfunction f, void **args,
                               void **extra)
{
    LAUNCH(cuLaunchKernelEx_ptsz, 1, cfg ? cfg->hStream : NULL, f,
           vgpu__real.cuLaunchKernelEx_ptsz(cfg, f, args, extra));
}

CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                                   unsigned bx, unsigned by, unsigned bz, unsigned shm,
                                   CUstream s, void **args)
{
    LAUNCH(cuLaunchCooperativeKernel, 0, s, f,
           vgpu__real.cuLaunchCooperativeKernel(f, gx, gy, gz, bx, by, bz, shm, s, args));
}

CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                                        unsigned bx, unsigned by, unsigned bz, unsigned shm,
                                        CUstream s, void **args)
{
    LAUNCH(cuLaunchCooperativeKernel_ptsz, 1, s, f,
           vgpu__real.cuLaunchCooperativeKernel_ptsz(f, gx, gy, gz, bx, by, bz, shm, s, args));
}

static CUresult graph_launch(CUgraphExec e, CUstream s, int ptsz)
{
    CUresult r;
    vgpu__limit_launch(s, ptsz, e);
    r = ptsz ? vgpu__real.cuGraphLaunch_ptsz(e, s) : vgpu__real.cuGraphLaunch(e, s);
    vgpu__limit_after_launch(s, ptsz, e);
    if (r == CUDA_SUCCESS)
        vgpu__after_graph_launch(); /* graph memory may have been reserved */
    return r;
}

CUresult cuGraphLaunch(CUgraphExec e, CUstream s)
{
    VGPU_NEED(cuGraphLaunch);
    if (vgpu__passthrough())
        return vgpu__real.cuGraphLaunch(e, s);
    return graph_launch(e, s, 0);
}

CUresult cuGraphLaunch_ptsz(CUgraphExec e, CUstream s)
{
    VGPU_NEED(cuGraphLaunch_ptsz);
    if (vgpu__passthrough())
        return vgpu__real.cuGraphLaunch_ptsz(e, s);
    return graph_launch(e, s, 1);
}
