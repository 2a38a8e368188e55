// check_alloc.cu - allocate 64 MiB at a time through one API until refused.
// Prints: "<mode> allocated_mib=<n> oom=<0|1> tracked_mib=<limit view used>".
// "tracked" is total - free from cuMemGetInfo, i.e. what libvgpu has charged.
#include <cuda.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

#define CHUNK (64ull << 20)

static void report(const char *mode, unsigned long long bytes, int oom)
{
    size_t f = 0, t = 0;
    cuMemGetInfo(&f, &t);
    printf("%s allocated_mib=%llu oom=%d tracked_mib=%llu total_mib=%llu\n", mode, bytes >> 20, oom,
           (unsigned long long)(t - f) >> 20, (unsigned long long)t >> 20);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "malloc";
    unsigned long long n = 0;
    int oom = 0;
    cudaFree(0);
    if (!strcmp(mode, "malloc")) {
        void *p;
        cudaError_t r;
        while ((r = cudaMalloc(&p, CHUNK)) == cudaSuccess) n += CHUNK;
        oom = r == cudaErrorMemoryAllocation;
    } else if (!strcmp(mode, "async")) {
        void *p;
        cudaError_t r;
        while ((r = cudaMallocAsync(&p, CHUNK, 0)) == cudaSuccess && cudaStreamSynchronize(0) == cudaSuccess)
            n += CHUNK;
        oom = r == cudaErrorMemoryAllocation;
    } else if (!strcmp(mode, "managed")) {
        void *p;
        cudaError_t r;
        while ((r = cudaMallocManaged(&p, CHUNK)) == cudaSuccess) n += CHUNK;
        oom = r == cudaErrorMemoryAllocation;
    } else if (!strcmp(mode, "vmm")) {
        CUmemAllocationProp prop;
        memset(&prop, 0, sizeof prop);
        prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
        prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        prop.location.id = 0;
        size_t g = 0;
        cuMemGetAllocationGranularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
        size_t sz = (CHUNK + g - 1) / g * g;
        CUmemGenericAllocationHandle h;
        CUresult r;
        while ((r = cuMemCreate(&h, sz, &prop, 0)) == CUDA_SUCCESS) n += sz;
        oom = r == CUDA_ERROR_OUT_OF_MEMORY;
    } else if (!strcmp(mode, "graph")) {
        for (;;) {
            cudaGraph_t g;
            cudaGraphExec_t e;
            cudaGraphNode_t node;
            cudaMemAllocNodeParams prm;
            memset(&prm, 0, sizeof prm);
            prm.poolProps.allocType = cudaMemAllocationTypePinned;
            prm.poolProps.location.type = cudaMemLocationTypeDevice;
            prm.poolProps.location.id = 0;
            prm.bytesize = CHUNK;
            cudaGraphCreate(&g, 0);
            cudaError_t r = cudaGraphAddMemAllocNode(&node, g, NULL, 0, &prm);
            if (r == cudaSuccess) r = cudaGraphInstantiate(&e, g, 0);
            if (r == cudaSuccess) r = cudaGraphLaunch(e, 0);
            if (r == cudaSuccess) r = cudaStreamSynchronize(0);
            if (r != cudaSuccess) {
                oom = r == cudaErrorMemoryAllocation;
                break;
            }
            n += CHUNK; /* no free node: the allocation outlives the launch */
        }
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    report(mode, n, oom);
    return 0;
}
