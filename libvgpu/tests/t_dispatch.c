/* t_dispatch.c - interposition: dlsym, RTLD_NEXT, cuGetProcAddress for every
 * (symbol, version, flags) the fake driver advertises. */
#include <dlfcn.h>
#include <string.h>

#include "../include/libvgpu.h"
#include "cu.h"
#include "harness.h"

static const char *const hooked[] = {
#define X(n) #n,
    LIBVGPU_CUDA_EXPORTS(X) LIBVGPU_NVML_EXPORTS(X)
#undef X
    NULL};

static int is_hooked(const char *name)
{
    for (int i = 0; hooked[i]; i++)
        if (!strcmp(hooked[i], name))
            return 1;
    return 0;
}

static const char *object_of(void *p)
{
    Dl_info i;
    return p && dladdr(p, &i) && i.dli_fname ? i.dli_fname : "";
}

static void *vgpu_handle(void)
{
    void *h = dlopen(VT_BUILD_DIR "/libvgpu.so", RTLD_NOW | RTLD_NOLOAD);
    VT_CHECK(h != NULL);
    return h;
}

static void dlsym_returns_hooks(void)
{
    void *cuda = dlopen("libcuda.so.1", RTLD_NOW), *nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    void *self = vgpu_handle();
    VT_CHECK(cuda && nvml);
    for (int i = 0; hooked[i]; i++) {
        void *h = hooked[i][0] == 'n' ? nvml : cuda, *p = dlsym(h, hooked[i]);
        if (!p)
            continue; /* the fake lacks it */
        if (strstr(object_of(p), "libvgpu.so") == NULL) {
            fprintf(stderr, "  %s resolved to %s\n", hooked[i], object_of(p));
            VT_CHECK(0);
        }
        VT_CHECK(p == dlsym(self, hooked[i]));
    }
    /* names libvgpu does not hook come from the driver; unknown names stay NULL */
    VT_CHECK(strstr(object_of(dlsym(cuda, "cuCtxSetCurrent")), "libcuda.so"));
    VT_CHECK(dlsym(cuda, "cuNoSuchFunction") == NULL);
    VT_CHECK(dlsym(RTLD_DEFAULT, "cuMemAlloc_v2") == dlsym(self, "cuMemAlloc_v2"));
}

/* RTLD_NEXT keeps meaning "after the caller" (here: the test executable) */
static void dlsym_rtld_next(void)
{
    void *p = dlsym(RTLD_NEXT, "cuInit");
    VT_CHECK(strstr(object_of(p), "libvgpu.so") != NULL);
    VT_CHECK(dlsym(RTLD_NEXT, "cuNoSuchFunction") == NULL);
    VT_CHECK(dlsym(RTLD_NEXT, "malloc") != NULL);
}

/* every advertised entry: hooked exports answer with libvgpu's wrapper of that
 * very export; the rest with the driver's own function */
static void proc_address_all_versions(void)
{
    void *self = vgpu_handle();
    int n = 0;
    VT_EQ(cuInit(0), CUDA_SUCCESS);
    for (const struct fake_proc *e = fakegpu_proc_table; e->symbol; e++, n++) {
        void *p = NULL, *q = NULL;
        CUdriverProcAddressQueryResult st = -1;
        void *want = is_hooked(e->export_name) ? dlsym(self, e->export_name) : e->fn;
        VT_EQ(cuGetProcAddress_v2(e->symbol, &p, e->version, (cuuint64_t)e->flags, &st),
              CUDA_SUCCESS);
        VT_EQ(st, CU_GET_PROC_ADDRESS_SUCCESS);
        if (p != want) {
            fprintf(stderr, "  %s v%d flags %d: got %s, want %s\n", e->symbol, e->version,
                    e->flags, object_of(p), e->export_name);
            VT_CHECK(0);
        }
        VT_EQ(cuGetProcAddress(e->symbol, &q, e->version, (cuuint64_t)e->flags), CUDA_SUCCESS);
        VT_CHECK(q == want);
    }
    VT_CHECK(n > 40);
}

/* every allocator, free, query, context and launch entry the driver offers is hooked */
static void proc_table_fully_hooked(void)
{
    static const char *const exempt[] = {"cuCtxGetDevice", "cuDeviceGet", "cuStreamIsCapturing",
                                         NULL};
    for (const struct fake_proc *e = fakegpu_proc_table; e->symbol; e++) {
        int skip = 0;
        for (int i = 0; exempt[i]; i++)
            skip |= !strcmp(exempt[i], e->export_name);
        if (!skip && !is_hooked(e->export_name)) {
            fprintf(stderr, "  not hooked: %s\n", e->export_name);
            VT_CHECK(0);
        }
    }
}

/* cuGetProcAddress obtained through itself still hands out hooks */
static void proc_address_through_itself(void)
{
    CUresult (*gpa)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);
    void *p = NULL;
    VT_EQ(cuGetProcAddress_v2("cuGetProcAddress", &p, 12000, 0, NULL), CUDA_SUCCESS);
    VT_CHECK(p == dlsym(vgpu_handle(), "cuGetProcAddress_v2"));
    memcpy(&gpa, &p, sizeof p);
    VT_EQ(gpa("cuMemAlloc", &p, 12000, 0, NULL), CUDA_SUCCESS);
    VT_CHECK(p == dlsym(vgpu_handle(), "cuMemAlloc_v2"));
}

/* the wrappers handed out enforce the limit, in both ABIs */
static void proc_address_enforces(void)
{
    CUresult (*alloc2)(CUdeviceptr *, size_t);
    CUresult (*alloc1)(CUdeviceptr_v1 *, unsigned);
    void *p;
    CUdeviceptr d;
    CUdeviceptr_v1 d1;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuGetProcAddress("cuMemAlloc", &p, 12000, 0), CUDA_SUCCESS);
    memcpy(&alloc2, &p, sizeof p);
    VT_EQ(cuGetProcAddress("cuMemAlloc", &p, 3000, 0), CUDA_SUCCESS);
    memcpy(&alloc1, &p, sizeof p);
    VT_EQ(alloc2(&d, 40 * MiB), CUDA_SUCCESS);
    VT_EQ(alloc1(&d1, 24 * MiB), CUDA_SUCCESS);
    VT_EQ(alloc2(&d, 1), CUDA_ERROR_OUT_OF_MEMORY);
    VT_EQ(alloc1(&d1, 1), CUDA_ERROR_OUT_OF_MEMORY);
}

static void proc_address_missing(void)
{
    void *p = (void *)1;
    CUdriverProcAddressQueryResult st = 0;
    VT_EQ(cuGetProcAddress_v2("cuNoSuchFunction", &p, 12000, 0, &st), CUDA_ERROR_NOT_FOUND);
    VT_CHECK(p == NULL);
    VT_EQ(st, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
}

const struct vt_case vt_cases[] = {
    {"dlsym_returns_hooks", dlsym_returns_hooks, "", 0},
    {"dlsym_rtld_next", dlsym_rtld_next, "", 0},
    {"proc_address_all_versions", proc_address_all_versions, "", 0},
    {"proc_table_fully_hooked", proc_table_fully_hooked, "", 0},
    {"proc_address_through_itself", proc_address_through_itself, "", 0},
    {"proc_address_enforces", proc_address_enforces,
     "CUDA_DEVICE_MEMORY_LIMIT=64m;LIBVGPU_CONTEXT_OVERHEAD=0", 0},
    {"proc_address_missing", proc_address_missing, "", 0},
    {0},
};
