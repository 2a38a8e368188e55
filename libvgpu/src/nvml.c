/*
 * nvml.c - NVML views inside the container: memory info shows the limit (so
 * nvidia-smi reports it) and process lists show only this container's
 * processes, with their pids as the container sees them.
 */
#include <stdlib.h>
#include <string.h>

#include "vgpu.h"

#define NVML_NEED(name)                                           \
    do {                                                          \
        if (vgpu__init_nvml() != 0 || !vgpu__real.name)           \
            return NVML_ERROR_FUNCTION_NOT_FOUND;                 \
    } while (0)

/* limit and usage for an NVML device; 0 when no limit applies */
static int view(nvmlDevice_t d, uint64_t *limit, uint64_t *usage)
{
    const struct vgpu_config *c = vgpu__config();
    char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE] = {0};
    unsigned index;
    int idx = -1;
    uint64_t lim = 0;
    if (c->disabled)
        return 0;
    if (vgpu__real.nvmlDeviceGetUUID && vgpu__real.nvmlDeviceGetUUID(d, uuid, sizeof uuid) == NVML_SUCCESS)
        idx = vgpu__region_index_by_uuid(uuid);
    if (idx >= 0)
        lim = vgpu__limit_by_index(idx);
    /* a process that never used CUDA (nvidia-smi): the env, by NVML index */
    if (vgpu__real.nvmlDeviceGetIndex && vgpu__real.nvmlDeviceGetIndex(d, &index) == NVML_SUCCESS &&
        index < VGPU_MAXDEV) {
        if (c->mem_state[index] == VGPU_LIM_INVALID)
            lim = 1; /* nothing usable; shown as (almost) zero */
        else if (c->mem_state[index] == VGPU_LIM_SET && (!lim || c->mem_limit[index] < lim))
            lim = c->mem_limit[index];
    }
    *limit = lim;
    *usage = idx >= 0 ? vgpu__usage_by_index(idx) : 0;
    return lim ? 1 : 0;
}

static void clamp(uint64_t lim, uint64_t usage, unsigned long long *total,
                  unsigned long long *free_b, unsigned long long *used)
{
    uint64_t t = lim < *total ? lim : *total;
    uint64_t u = usage < t ? usage : t;
    *total = t;
    *used = u;
    *free_b = t - u;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m)
{
    uint64_t lim, usage;
    nvmlReturn_t r;
    NVML_NEED(nvmlDeviceGetMemoryInfo);
    r = vgpu__real.nvmlDeviceGetMemoryInfo(d, m);
    if (r == NVML_SUCCESS && m && view(d, &lim, &usage))
        clamp(lim, usage, &m->total, &m->free, &m->used);
    return r;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m)
{
    uint64_t lim, usage;
    nvmlReturn_t r;
    NVML_NEED(nvmlDeviceGetMemoryInfo_v2);
    r = vgpu__real.nvmlDeviceGetMemoryInfo_v2(d, m);
    if (r == NVML_SUCCESS && m && view(d, &lim, &usage)) {
        clamp(lim, usage, &m->total, &m->free, &m->used);
        m->reserved = 0;
    }
    return r;
}

typedef nvmlReturn_t (*plist_fn)(nvmlDevice_t, unsigned *, void *);

/* call the real list, keep this container's entries, rewrite their pids */
static nvmlReturn_t filtered(plist_fn real, nvmlDevice_t d, unsigned *count, void *out,
                             size_t esz)
{
    unsigned cap = 64, n = 0, kept = 0;
    unsigned char *buf = NULL;
    nvmlReturn_t r = NVML_ERROR_UNKNOWN;
    if (!count)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (int tries = 0; tries < 4; tries++) {
        unsigned char *nb = realloc(buf, (size_t)cap * esz);
        if (!nb) {
            free(buf);
            return NVML_ERROR_UNKNOWN;
        }
        buf = nb;
        n = cap;
        r = real(d, &n, buf);
        if (r != NVML_ERROR_INSUFFICIENT_SIZE)
            break;
        cap = n + 32;
    }
    if (r != NVML_SUCCESS) {
        free(buf);
        return r;
    }
    for (unsigned i = 0; i < n; i++) {
        unsigned pid;
        int local;
        memcpy(&pid, buf + (size_t)i * esz, sizeof pid);
        if (!vgpu__pid_in_container(pid, &local))
            continue;
        pid = (unsigned)local;
        memcpy(buf + (size_t)i * esz, &pid, sizeof pid);
        if (kept != i)
            memmove(buf + (size_t)kept * esz, buf + (size_t)i * esz, esz);
        kept++;
    }
    if (*count < kept || (!out && kept)) {
        *count = kept;
        free(buf);
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    if (kept)
        memcpy(out, buf, (size_t)kept * esz);
    *count = kept;
    free(buf);
    return NVML_SUCCESS;
}

#define PLIST(name, esz)                                                         \
    nvmlReturn_t name(nvmlDevice_t d, unsigned *n, void *p)                      \
    {                                                                            \
        NVML_NEED(name);                                                         \
        if (vgpu__config()->disabled)                                            \
            return vgpu__real.name(d, n, p);                                     \
        return filtered(vgpu__real.name, d, n, p, (esz));                        \
    }

PLIST(nvmlDeviceGetComputeRunningProcesses, sizeof(nvmlProcessInfo_v1_t))
PLIST(nvmlDeviceGetComputeRunningProcesses_v2, sizeof(nvmlProcessInfo_v2_t))
PLIST(nvmlDeviceGetComputeRunningProcesses_v3, sizeof(nvmlProcessInfo_v2_t))
PLIST(nvmlDeviceGetGraphicsRunningProcesses, sizeof(nvmlProcessInfo_v1_t))
PLIST(nvmlDeviceGetGraphicsRunningProcesses_v2, sizeof(nvmlProcessInfo_v2_t))
PLIST(nvmlDeviceGetGraphicsRunningProcesses_v3, sizeof(nvmlProcessInfo_v2_t))
PLIST(nvmlDeviceGetMPSComputeRunningProcesses, sizeof(nvmlProcessInfo_v1_t))
PLIST(nvmlDeviceGetMPSComputeRunningProcesses_v2, sizeof(nvmlProcessInfo_v2_t))
PLIST(nvmlDeviceGetMPSComputeRunningProcesses_v3, sizeof(nvmlProcessInfo_v2_t))
