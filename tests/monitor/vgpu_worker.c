/* vgpu_worker.c - a CUDA "workload" for the monitor tests, run under libvgpu with the fake
 * driver: allocates argv[1] MiB on device 0, prints "ready", then launches kernels of argv[2]
 * microseconds back to back (waiting for each) until killed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cu.h"

int main(int argc, char **argv)
{
    CUcontext ctx;
    CUdeviceptr ptr;
    size_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 64;
    uintptr_t kernel_us = argc > 2 ? strtoull(argv[2], NULL, 10) : 2000;
    if (cuInit(0) != CUDA_SUCCESS || cuCtxCreate_v2(&ctx, 0, 0) != CUDA_SUCCESS) {
        puts("no context");
        return 2;
    }
    if (cuMemAlloc_v2(&ptr, mib << 20) != CUDA_SUCCESS) {
        puts("out of memory");
        return 3;
    }
    puts("ready");
    fflush(stdout);
    for (;;) {
        cuLaunchKernel((CUfunction)kernel_us, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL);
        cuCtxSynchronize();
    }
}
