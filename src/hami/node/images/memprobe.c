/* memprobe - what a CUDA program in a hami container sees (the real-node test's probe).
 *
 *   memprobe [STEP_MIB [HOLD_SECONDS]]
 *
 * Prints the device's UUID, cuMemGetInfo and cuDeviceTotalMem, then (with STEP_MIB)
 * allocates STEP_MIB blocks until the first failure and prints each result, the error name
 * and "RESULT: allocated N MiB"; with HOLD_SECONDS it keeps the memory that long. Linked
 * against libcuda.so.1 like any CUDA program, so libvgpu's hooks apply when it is loaded. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;
typedef unsigned long long CUdeviceptr;
typedef struct { unsigned char bytes[16]; } CUuuid;

CUresult cuInit(unsigned int flags);
CUresult cuDeviceGet(CUdevice *d, int ordinal);
CUresult cuDeviceGetUuid_v2(CUuuid *u, CUdevice d);
CUresult cuCtxCreate_v2(CUcontext *c, unsigned int flags, CUdevice d);
CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total_bytes);
CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d);
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n);

#define MIB (1024UL * 1024UL)

static const char *error_name(CUresult e)
{
    switch (e) { /* the codes a limited allocation can return (cuda.h) */
    case 0: return "CUDA_SUCCESS";
    case 1: return "CUDA_ERROR_INVALID_VALUE";
    case 2: return "CUDA_ERROR_OUT_OF_MEMORY";
    case 3: return "CUDA_ERROR_NOT_INITIALIZED";
    case 101: return "CUDA_ERROR_INVALID_DEVICE";
    default: return "CUDA_ERROR_UNKNOWN";
    }
}

static int check(const char *what, CUresult e)
{
    if (e != 0)
        printf("%s failed: %s (%d)\n", what, error_name(e), e);
    return e == 0;
}

int main(int argc, char **argv)
{
    CUdevice dev;
    CUcontext ctx;
    CUuuid u;
    size_t free_b = 0, total_b = 0, dev_total = 0;
    if (!check("cuInit", cuInit(0)) || !check("cuDeviceGet", cuDeviceGet(&dev, 0)) ||
        !check("cuCtxCreate", cuCtxCreate_v2(&ctx, 0, dev)))
        return 1;
    if (check("cuDeviceGetUuid", cuDeviceGetUuid_v2(&u, dev))) {
        printf("UUID: GPU-");
        for (int i = 0; i < 16; i++)
            printf("%02x%s", u.bytes[i], (i == 3 || i == 5 || i == 7 || i == 9) ? "-" : "");
        printf("\n");
    }
    if (check("cuMemGetInfo", cuMemGetInfo_v2(&free_b, &total_b)))
        printf("cuMemGetInfo free=%zu MiB total=%zu MiB\n", free_b / MIB, total_b / MIB);
    if (check("cuDeviceTotalMem", cuDeviceTotalMem_v2(&dev_total, dev)))
        printf("cuDeviceTotalMem %zu MiB\n", dev_total / MIB);
    if (argc < 2)
        return 0;
    size_t step = strtoul(argv[1], NULL, 10) * MIB, got = 0;
    for (int i = 0; step > 0 && i < 4096; i++) {
        CUdeviceptr p;
        CUresult e = cuMemAlloc_v2(&p, step);
        printf("alloc %d (%zu MiB): %s\n", i + 1, step / MIB, error_name(e));
        if (e != 0)
            break;
        got += step;
    }
    printf("RESULT: allocated %zu MiB\n", got / MIB);
    fflush(stdout);
    if (argc > 2)
        sleep((unsigned)strtoul(argv[2], NULL, 10));
    return 0;
}
