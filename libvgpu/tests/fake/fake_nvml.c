/*
 * fake_nvml.c - a simulated NVML (built as libnvidia-ml.so.1) over the fake
 * driver's devices. Process lists report the calling process (when it has
 * used the device) and one process of "another container" (pid FAKE_FOREIGN_PID).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../src/cuda_abi.h"
#include "../../src/nvml_abi.h"

#define EXPORT __attribute__((visibility("default")))
#define FAKE_FOREIGN_PID 999999u

extern uint64_t fakegpu_used(int d);
extern uint64_t fakegpu_total(void);
extern CUresult cuDeviceGetCount(int *n);
extern int fakegpu_uuid(int d, unsigned char out[16]);

static int ndev(void) { int n = 0; cuDeviceGetCount(&n); return n; }
static nvmlDevice_t handle(int i) { return (nvmlDevice_t)(uintptr_t)(0x500 + i); }
static int index_of(nvmlDevice_t d) { int i = (int)((uintptr_t)d - 0x500); return i >= 0 && i < ndev() ? i : -1; }

EXPORT nvmlReturn_t nvmlInit_v2(void) { return NVML_SUCCESS; }
EXPORT nvmlReturn_t nvmlInit(void) { return NVML_SUCCESS; }
EXPORT nvmlReturn_t nvmlShutdown(void) { return NVML_SUCCESS; }
EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *n) { *n = (unsigned)ndev(); return NVML_SUCCESS; }
EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned i, nvmlDevice_t *d)
{ if ((int)i >= ndev()) return NVML_ERROR_INVALID_ARGUMENT; *d = handle((int)i); return NVML_SUCCESS; }
EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t d, unsigned *i)
{ int k = index_of(d); if (k < 0) return NVML_ERROR_INVALID_ARGUMENT; *i = (unsigned)k; return NVML_SUCCESS; }
EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *buf, unsigned len)
{
    int k = index_of(d);
    unsigned char b[16];
    if (k < 0 || fakegpu_uuid(k, b)) return NVML_ERROR_INVALID_ARGUMENT;
    snprintf(buf, len, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *d)
{
    char buf[96];
    for (int i = 0; i < ndev(); i++) {
        nvmlDeviceGetUUID(handle(i), buf, sizeof buf);
        if (!strcmp(buf, uuid)) { *d = handle(i); return NVML_SUCCESS; }
    }
    return NVML_ERROR_INVALID_ARGUMENT;
}
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m)
{
    int k = index_of(d);
    if (k < 0) return NVML_ERROR_INVALID_ARGUMENT;
    m->total = fakegpu_total();
    m->used = fakegpu_used(k);
    m->free = m->total - m->used;
    return NVML_SUCCESS;
}
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m)
{
    nvmlMemory_t v;
    nvmlReturn_t r = nvmlDeviceGetMemoryInfo(d, &v);
    if (r) return r;
    m->total = v.total; m->used = v.used; m->free = v.free; m->reserved = 5 << 20;
    return NVML_SUCCESS;
}

/* two entries: this process (if it holds device memory) and a foreign one */
static nvmlReturn_t plist(nvmlDevice_t d, unsigned *n, void *out, size_t esz)
{
    int k = index_of(d);
    unsigned want = 1, i = 0;
    unsigned char *p = out;
    if (k < 0) return NVML_ERROR_INVALID_ARGUMENT;
    if (fakegpu_used(k) > 0) want = 2;
    if (*n < want) { *n = want; return NVML_ERROR_INSUFFICIENT_SIZE; }
    memset(out, 0, want * esz);
    unsigned pids[2] = {FAKE_FOREIGN_PID, (unsigned)getpid()};
    unsigned long long mem[2] = {123ull << 20, fakegpu_used(k)};
    for (i = 0; i < want; i++) {
        memcpy(p + i * esz, &pids[i], sizeof(unsigned));
        memcpy(p + i * esz + 8, &mem[i], sizeof mem[i]);
    }
    *n = want;
    return NVML_SUCCESS;
}
#define PL(name, esz) EXPORT nvmlReturn_t name(nvmlDevice_t d, unsigned *n, void *p) { return plist(d, n, p, esz); }
PL(nvmlDeviceGetComputeRunningProcesses, sizeof(nvmlProcessInfo_v1_t))
PL(nvmlDeviceGetComputeRunningProcesses_v2, sizeof(nvmlProcessInfo_v2_t))
PL(nvmlDeviceGetComputeRunningProcesses_v3, sizeof(nvmlProcessInfo_v2_t))
PL(nvmlDeviceGetGraphicsRunningProcesses, sizeof(nvmlProcessInfo_v1_t))
PL(nvmlDeviceGetGraphicsRunningProcesses_v2, sizeof(nvmlProcessInfo_v2_t))
PL(nvmlDeviceGetGraphicsRunningProcesses_v3, sizeof(nvmlProcessInfo_v2_t))
PL(nvmlDeviceGetMPSComputeRunningProcesses, sizeof(nvmlProcessInfo_v1_t))
PL(nvmlDeviceGetMPSComputeRunningProcesses_v2, sizeof(nvmlProcessInfo_v2_t))
PL(nvmlDeviceGetMPSComputeRunningProcesses_v3, sizeof(nvmlProcessInfo_v2_t))
