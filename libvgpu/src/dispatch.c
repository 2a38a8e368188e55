/*
 * dispatch.c - how calls reach the hooks, and how the hooks reach the driver.
 *
 *  - dlsym: a look-up of a hooked driver name returns the hook, if the look-up
 *    would have found anything at all. Other names, and every RTLD_NEXT look-up,
 *    go to glibc untouched (see dlsym_tramp.S for RTLD_NEXT).
 *  - cuGetProcAddress[_v2]: the driver resolves (symbol, version, flags) to an
 *    entry point itself; the hook then swaps that entry point for the wrapper of
 *    the very same export. The wrapper therefore always has the caller's ABI.
 *  - real entry points come from dlopen("libcuda.so.1"/"libnvidia-ml.so.1",
 *    RTLD_NODELETE) and dlsym on that handle, never from a suffix walk-back.
 */

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "vgpu.h"

struct vgpu_real vgpu__real;

struct hook {
    const char *name;
    void *wrapper;
    size_t real_off; /* offset of the real pointer in struct vgpu_real */
};

static const struct hook g_hooks[] = {
#define VGPU_X(n, p) {#n, (void *)n, offsetof(struct vgpu_real, n)},
    VGPU_CUDA_REAL(VGPU_X) VGPU_NVML_REAL(VGPU_X)
#undef VGPU_X
};
#define NHOOKS (sizeof g_hooks / sizeof g_hooks[0])

struct realname {
    const char *name;
    size_t off;
};
static const struct realname g_cuda_names[] = {
#define VGPU_X(n, p) {#n, offsetof(struct vgpu_real, n)},
    VGPU_CUDA_REAL(VGPU_X) VGPU_CUDA_HELPERS(VGPU_X)
#undef VGPU_X
};
static const struct realname g_nvml_names[] = {
#define VGPU_X(n, p) {#n, offsetof(struct vgpu_real, n)},
    VGPU_NVML_REAL(VGPU_X) VGPU_NVML_HELPERS(VGPU_X)
#undef VGPU_X
};

/* ---- the real dlsym ----
 * These run inside dlsym, possibly before a sanitizer runtime (or anything
 * else) is initialised, so they are never instrumented. */
#define VGPU_NO_SAN __attribute__((no_sanitize("address", "undefined")))
typedef void *(*dlsym_fn)(void *, const char *);
static _Atomic(dlsym_fn) g_real_dlsym;

/* Called by the trampoline (also for RTLD_NEXT); must not use dlsym itself. */
void *vgpu__real_dlsym_get(void) __attribute__((used));
VGPU_NO_SAN void *vgpu__real_dlsym_get(void)
{
    static const char *const vers[] = {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17", "GLIBC_2.0"};
    dlsym_fn f = atomic_load_explicit(&g_real_dlsym, memory_order_acquire);
    for (size_t i = 0; !f && i < sizeof vers / sizeof vers[0]; i++)
        f = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", vers[i]);
    if (f)
        atomic_store_explicit(&g_real_dlsym, f, memory_order_release);
    return (void *)f;
}

VGPU_NO_SAN static void *real_dlsym(void *h, const char *s)
{
    dlsym_fn f = (dlsym_fn)vgpu__real_dlsym_get();
    return f ? f(h, s) : NULL;
}

VGPU_NO_SAN static int same(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

VGPU_NO_SAN static const struct hook *hook_by_name(const char *s)
{
    if (!s || !((s[0] == 'c' && s[1] == 'u') || (s[0] == 'n' && s[1] == 'v' && s[2] == 'm' && s[3] == 'l')))
        return NULL;
    for (size_t i = 0; i < NHOOKS; i++)
        if (same(g_hooks[i].name, s))
            return &g_hooks[i];
    return NULL;
}

/* dlsym for every handle except RTLD_NEXT (the trampoline routes that one). */
void *vgpu__dlsym_impl(void *handle, const char *symbol) __attribute__((used));
VGPU_NO_SAN void *vgpu__dlsym_impl(void *handle, const char *symbol)
{
    void *r = real_dlsym(handle, symbol);
    const struct hook *h;
    if (r && (h = hook_by_name(symbol)) != NULL)
        return h->wrapper;
    return r;
}

/* ---- resolving the driver ---- */
static void resolve(void *lib, const struct realname *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        void *p = lib ? real_dlsym(lib, names[i].name) : NULL;
        memcpy((char *)&vgpu__real + names[i].off, &p, sizeof p);
    }
}

static pthread_once_t g_cuda_once = PTHREAD_ONCE_INIT;
static void init_cuda(void)
{
    const struct vgpu_config *c = vgpu__config();
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NODELETE | RTLD_LOCAL);
    if (!lib)
        vgpu__log_raw(VGPU_LOG_ERROR, c->log_level, "libcuda.so.1 not found");
    resolve(lib, g_cuda_names, sizeof g_cuda_names / sizeof g_cuda_names[0]);
}

void vgpu__init_cuda(void)
{
    pthread_once(&g_cuda_once, init_cuda);
}

static pthread_once_t g_nvml_once = PTHREAD_ONCE_INIT;
static int g_nvml_ok;
static void init_nvml(void)
{
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_NODELETE | RTLD_LOCAL);
    resolve(lib, g_nvml_names, sizeof g_nvml_names / sizeof g_nvml_names[0]);
    g_nvml_ok = lib != NULL;
}

int vgpu__init_nvml(void)
{
    vgpu__config();
    pthread_once(&g_nvml_once, init_nvml);
    return g_nvml_ok ? 0 : -1;
}

int vgpu__passthrough(void)
{
    return vgpu__config()->disabled;
}

uint64_t vgpu__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- cuGetProcAddress ---- */

/* first CUDA version whose cuGetProcAddress maps the base name to this export */
static int min_version(const char *name)
{
    static const struct { const char *n; int v; } t[] = {
        {"cuGetProcAddress_v2", 12000}, {"cuCtxCreate_v3", 11040}, {"cuCtxCreate_v4", 12050},
        {"cuDevicePrimaryCtxRelease_v2", 11000}, {"cuDevicePrimaryCtxReset_v2", 11000},
        {"cuCtxDestroy_v2", 4000},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(t[i].n, name))
            return t[i].v;
    return strstr(name, "_v2") ? 3020 : 0;
}

/* length of the base name: without _ptsz/_ptds and without a _vN suffix */
static size_t base_len(const char *name, int *ptsz)
{
    size_t n = strlen(name);
    *ptsz = 0;
    if (n > 5 && (!strcmp(name + n - 5, "_ptsz") || !strcmp(name + n - 5, "_ptds"))) {
        n -= 5;
        *ptsz = 1;
    }
    size_t k = n;
    while (k > 0 && name[k - 1] >= '0' && name[k - 1] <= '9')
        k--;
    if (k < n && k >= 2 && name[k - 1] == 'v' && name[k - 2] == '_')
        n = k - 2;
    return n;
}

/*
 * The wrapper to hand out for the driver's answer `real_fn`. Normally found by
 * identity with a resolved export; if the driver answered with an address that
 * is not one of its exports, fall back to (base name, version, stream flag).
 */
void *vgpu__hook_for(void *real_fn, const char *symbol, int ver, cuuint64_t flags)
{
    const struct hook *best = NULL;
    int want_ptsz = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0, bestv = -1;
    size_t slen;
    for (size_t i = 0; i < NHOOKS; i++) {
        void *p;
        memcpy(&p, (char *)&vgpu__real + g_hooks[i].real_off, sizeof p);
        if (p && p == real_fn)
            return g_hooks[i].wrapper;
    }
    if (!symbol || !real_fn)
        return real_fn;
    slen = strlen(symbol);
    for (size_t i = 0; i < NHOOKS; i++) {
        int ptsz, v;
        size_t bl = base_len(g_hooks[i].name, &ptsz);
        if (bl != slen || strncmp(g_hooks[i].name, symbol, slen) || ptsz != want_ptsz)
            continue;
        v = min_version(g_hooks[i].name);
        if (v <= ver && v > bestv) {
            best = &g_hooks[i];
            bestv = v;
        }
    }
    if (best) {
        void *p;
        memcpy(&p, (char *)&vgpu__real + best->real_off, sizeof p);
        if (p) {
            vgpu__log(VGPU_LOG_DEBUG, "cuGetProcAddress(%s, %d): by name -> %s", symbol, ver,
                      best->name);
            return best->wrapper;
        }
    }
    return real_fn;
}

CUresult cuGetProcAddress(const char *s, void **pfn, int ver, cuuint64_t flags)
{
    CUresult r;
    VGPU_NEED(cuGetProcAddress);
    r = vgpu__real.cuGetProcAddress(s, pfn, ver, flags);
    if (r == CUDA_SUCCESS && pfn && *pfn)
        *pfn = vgpu__hook_for(*pfn, s, ver, flags);
    return r;
}

CUresult cuGetProcAddress_v2(const char *s, void **pfn, int ver, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *st)
{
    CUresult r;
    VGPU_NEED(cuGetProcAddress_v2);
    r = vgpu__real.cuGetProcAddress_v2(s, pfn, ver, flags, st);
    if (r == CUDA_SUCCESS && pfn && *pfn)
        *pfn = vgpu__hook_for(*pfn, s, ver, flags);
    return r;
}

CUresult cuInit(unsigned int flags)
{
    VGPU_NEED(cuInit);
    return vgpu__real.cuInit(flags);
}
