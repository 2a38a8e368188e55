// check_launch.cu - launch cost and start-up cost.
//   launch:  median ns per cuLaunchKernel of an empty kernel (batches of 1000)
//   startup: ms from process start to the end of the first CUDA call
#include <algorithm>
#include <cuda.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <vector>

__global__ void empty_kernel() {}

static double now_ms()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "launch";
    if (!strcmp(mode, "startup")) {
        double t0 = now_ms();
        void *p;
        cudaFree(0);
        cudaMalloc(&p, 1 << 20);
        printf("startup_ms=%.1f\n", now_ms() - t0);
        return 0;
    }
    cudaFree(0);
    CUfunction f;
    if (cudaGetFuncBySymbol(&f, (const void *)empty_kernel) != cudaSuccess) return 1;
    std::vector<double> per;
    for (int b = 0; b < 300; b++) {
        double t0 = now_ms();
        for (int i = 0; i < 1000; i++)
            cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, 0, NULL, NULL);
        double t1 = now_ms();
        cuCtxSynchronize();
        if (b >= 20) per.push_back((t1 - t0) * 1e6 / 1000.0);
    }
    std::sort(per.begin(), per.end());
    printf("launch_ns=%.1f\n", per[per.size() / 2]);
    return 0;
}
