/* t_limiter.c - the compute share on the fake device: kernels of CUfunction f
 * take f microseconds of device time; the share is device busy time / wall. */
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../include/libvgpu.h"
#include "cu.h"
#include "harness.h"

#define K1MS ((CUfunction)(uintptr_t)1000)
enum { P_KERNEL, P_EX, P_COOP, P_GRAPH };

static CUresult launch(int path, CUstream s)
{
    CUlaunchConfig cfg = {1, 1, 1, 1, 1, 1, 0, s, NULL, 0};
    switch (path) {
    case P_EX: return cuLaunchKernelEx(&cfg, K1MS, NULL, NULL);
    case P_COOP: return cuLaunchCooperativeKernel(K1MS, 1, 1, 1, 1, 1, 1, 0, s, NULL);
    case P_GRAPH: {
        static CUgraphExec e;
        if (!e) {
            CUgraph g;
            cuGraphCreate(&g, 0);
            cuGraphInstantiateWithFlags(&e, g, 0);
        }
        return cuGraphLaunch(e, s); /* the fake's graphs run 1 ms */
    }
    default: return cuLaunchKernel(K1MS, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL);
    }
}

/* launch back to back for `secs`; returns the device time enqueued per wall time, in percent */
static double share(int path, double secs)
{
    VT_CHECK(vt_ctx(0));
    uint64_t t0 = vt_now_ns(), b0 = fakegpu_busy_ns(0);
    while (vt_now_ns() - t0 < (uint64_t)(secs * 1e9))
        VT_EQ(launch(path, NULL), CUDA_SUCCESS);
    uint64_t wall = vt_now_ns() - t0;
    return 100.0 * (double)(fakegpu_busy_ns(0) - b0) / (double)wall;
}

static void expect_share(int path, double lo, double hi)
{
    double s = share(path, 1.5);
    fprintf(stderr, "  share %.1f%%\n", s);
    VT_CHECK(s >= lo && s <= hi);
}

static void share30(void) { expect_share(P_KERNEL, 25, 35); }
static void share70(void) { expect_share(P_KERNEL, 65, 75); }
static void share30_ex(void) { expect_share(P_EX, 25, 35); }
static void share30_coop(void) { expect_share(P_COOP, 25, 35); }
static void share30_graph(void) { expect_share(P_GRAPH, 25, 35); }
static void unlimited(void) { expect_share(P_KERNEL, 95, 1e9); }
static void policy_disable(void) { expect_share(P_KERNEL, 95, 1e9); }

/* captured launches do not run, so they are never delayed */
static void capture_not_throttled(void)
{
    VT_CHECK(vt_ctx(0));
    (void)share(P_KERNEL, 0.2); /* exhaust the credit */
    uint64_t t0 = vt_now_ns();
    for (int i = 0; i < 2000; i++)
        VT_EQ(launch(P_KERNEL, FAKE_CAPTURE_STREAM), CUDA_SUCCESS);
    VT_CHECK(vt_now_ns() - t0 < 200000000ull);
}

static lvgpu_region_t *region_rw(void)
{
    int fd = open(vt_region_path(), O_RDWR);
    VT_CHECK(fd >= 0);
    lvgpu_region_t *r = mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    VT_CHECK(r != MAP_FAILED);
    return r;
}

/* default policy obeys the monitor's switch */
static void default_policy_switch_off(void)
{
    VT_CHECK(vt_ctx(0));
    VT_EQ(launch(P_KERNEL, NULL), CUDA_SUCCESS); /* creates the region */
    region_rw()->utilization_switch = 0;
    expect_share(P_KERNEL, 95, 1e9);
}

static void *unblock(void *arg)
{
    usleep(300000);
    ((lvgpu_region_t *)arg)->recent_kernel = 0;
    return NULL;
}

/* a negative recent_kernel (monitor: higher priority busy) holds launches */
static void priority_block(void)
{
    pthread_t th;
    VT_CHECK(vt_ctx(0));
    VT_EQ(launch(P_KERNEL, NULL), CUDA_SUCCESS);
    lvgpu_region_t *r = region_rw();
    VT_EQ(r->recent_kernel, 2);
    r->recent_kernel = -1;
    pthread_create(&th, NULL, unblock, r);
    uint64_t t0 = vt_now_ns();
    VT_EQ(launch(P_KERNEL, NULL), CUDA_SUCCESS);
    VT_CHECK(vt_now_ns() - t0 > 250000000ull);
    VT_EQ(r->recent_kernel, 2);
    pthread_join(th, NULL);
}

/* the limiter reports its share estimate to the monitor */
static void sm_util_reported(void)
{
    (void)share(P_KERNEL, 2.2);
    lvgpu_region_t *r = region_rw();
    uint64_t u = 0;
    for (int i = 0; i < r->proc_num; i++)
        if (r->procs[i].pid == getpid())
            u = r->procs[i].device_util[0].sm_util;
    fprintf(stderr, "  sm_util %llu\n", (unsigned long long)u);
    VT_CHECK(u >= 20 && u <= 40);
}

#define F "GPU_CORE_UTILIZATION_POLICY=force;LIBVGPU_CONTEXT_OVERHEAD=0;"
const struct vt_case vt_cases[] = {
    {"share30", share30, F "CUDA_DEVICE_SM_LIMIT=30", 0},
    {"share70", share70, F "CUDA_DEVICE_SM_LIMIT=70", 0},
    {"share30_launch_ex", share30_ex, F "CUDA_DEVICE_SM_LIMIT=30", 0},
    {"share30_cooperative", share30_coop, F "CUDA_DEVICE_SM_LIMIT=30", 0},
    {"share30_graph", share30_graph, F "CUDA_DEVICE_SM_LIMIT=30", 0},
    {"share30_per_device_env", share30, F "CUDA_DEVICE_SM_LIMIT_0=30", 0},
    {"unlimited", unlimited, F, 0},
    {"policy_disable", policy_disable, "GPU_CORE_UTILIZATION_POLICY=disable;CUDA_DEVICE_SM_LIMIT=30", 0},
    {"capture_not_throttled", capture_not_throttled, F "CUDA_DEVICE_SM_LIMIT=10", 0},
    {"default_policy_switch_off", default_policy_switch_off, "CUDA_DEVICE_SM_LIMIT=30", 0},
    {"priority_block", priority_block, F "CUDA_DEVICE_SM_LIMIT=50", 0},
    {"sm_util_reported", sm_util_reported, F "CUDA_DEVICE_SM_LIMIT=30", 0},
    {0},
};
