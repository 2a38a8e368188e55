/* t_multi.c - several processes against one shared region: over-commit races,
 * SIGKILL of a lock holder, dead-process reaping, fork, threads. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/libvgpu.h"
#include "cu.h"
#include "harness.h"

#define ENV "CUDA_DEVICE_MEMORY_LIMIT=64m;LIBVGPU_CONTEXT_OVERHEAD=0"
#define CHUNK (256 * 1024)

static lvgpu_region_t *map_region(void)
{
    int fd = open(vt_region_path(), O_RDONLY);
    VT_CHECK(fd >= 0);
    void *p = mmap(NULL, sizeof(lvgpu_region_t), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    VT_CHECK(p != MAP_FAILED);
    return p;
}

static uint64_t region_total(const lvgpu_region_t *r, int idx)
{
    uint64_t t = 0;
    for (int i = 0; i < r->proc_num; i++)
        if (r->procs[i].status != LVGPU_SLOT_FREE)
            t += r->procs[i].used[idx].total;
    return t;
}

/* n processes start together and allocate CHUNKs until refused */
static void race(unsigned n)
{
    int go[2], res[2];
    pid_t kids[8];
    uint64_t sum = 0;
    VT_CHECK(pipe(go) == 0 && pipe(res) == 0);
    for (unsigned i = 0; i < n; i++) {
        if ((kids[i] = fork()) == 0) {
            char c;
            uint64_t got = 0;
            CUdeviceptr p;
            VT_CHECK(vt_ctx(0));
            VT_CHECK(read(go[0], &c, 1) == 1);
            while (cuMemAlloc_v2(&p, CHUNK) == CUDA_SUCCESS)
                got += CHUNK;
            VT_CHECK(write(res[1], &got, sizeof got) == sizeof got);
            pause(); /* hold the memory until the parent has checked */
            _exit(0);
        }
    }
    VT_CHECK(write(go[1], "gggggggg", n) == (ssize_t)n);
    for (unsigned i = 0; i < n; i++) {
        uint64_t got;
        VT_CHECK(read(res[0], &got, sizeof got) == sizeof got);
        sum += got;
    }
    VT_EQ(sum, 64 * MiB); /* exactly full, never over */
    lvgpu_region_t *r = map_region();
    VT_EQ(region_total(r, 0), 64 * MiB);
    for (unsigned i = 0; i < n; i++) {
        kill(kids[i], SIGKILL);
        waitpid(kids[i], NULL, 0);
    }
}
static void race2(void) { race(2); }
static void race8(void) { race(8); }

/* a process killed while holding the region lock never wedges the others */
static void sigkill_lock_holder(void)
{
    int ready[2], done[2];
    CUdeviceptr p;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAlloc_v2(&p, MiB), CUDA_SUCCESS); /* the region exists */
    VT_CHECK(pipe(ready) == 0 && pipe(done) == 0);
    pid_t holder = fork();
    if (holder == 0) {
        int fd = open(vt_region_path(), O_RDWR);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET,
                           .l_start = LVGPU_LOCK_REGION_OFF, .l_len = 1};
        VT_CHECK(fd >= 0 && fcntl(fd, F_SETLKW, &fl) == 0);
        VT_CHECK(write(ready[1], "l", 1) == 1);
        for (;;)
            pause();
    }
    char c;
    VT_CHECK(read(ready[0], &c, 1) == 1);
    pid_t waiter = fork();
    if (waiter == 0) {
        CUdeviceptr q;
        VT_CHECK(vt_ctx(0));
        VT_EQ(cuMemAlloc_v2(&q, MiB), CUDA_SUCCESS);
        uint64_t t = vt_now_ns();
        VT_CHECK(write(done[1], &t, sizeof t) == sizeof t);
        _exit(0);
    }
    usleep(300000);
    int fl = fcntl(done[0], F_GETFL);
    fcntl(done[0], F_SETFL, fl | O_NONBLOCK);
    uint64_t t;
    VT_CHECK(read(done[0], &t, sizeof t) < 0); /* still blocked by the live holder */
    fcntl(done[0], F_SETFL, fl);
    uint64_t killed = vt_now_ns();
    kill(holder, SIGKILL);
    waitpid(holder, NULL, 0);
    VT_CHECK(read(done[0], &t, sizeof t) == sizeof t);
    VT_CHECK(t - killed < 1000000000ull);
    int st;
    waitpid(waiter, &st, 0);
    VT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* usage of a process that died without freeing is reclaimed when needed */
static void dead_process_reaped(void)
{
    CUdeviceptr p;
    pid_t kid = fork();
    if (kid == 0) {
        VT_CHECK(vt_ctx(0));
        VT_EQ(cuMemAlloc_v2(&p, 48 * MiB), CUDA_SUCCESS);
        raise(SIGKILL);
    }
    int st;
    waitpid(kid, &st, 0);
    VT_CHECK(WIFSIGNALED(st));
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAlloc_v2(&p, 32 * MiB), CUDA_SUCCESS);
    VT_EQ(cuMemAlloc_v2(&p, 32 * MiB), CUDA_SUCCESS);
    VT_EQ(cuMemAlloc_v2(&p, 1), CUDA_ERROR_OUT_OF_MEMORY);
}

static int my_slot(const lvgpu_region_t *r)
{
    for (int i = 0; i < r->proc_num; i++)
        if (r->procs[i].status != LVGPU_SLOT_FREE && r->procs[i].pid == getpid())
            return i;
    return -1;
}

/* the child of fork gets its own slot; parent's usage is untouched */
static void fork_child_slot(void)
{
    CUdeviceptr p;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAlloc_v2(&p, 16 * MiB), CUDA_SUCCESS);
    lvgpu_region_t *r = map_region();
    int ps = my_slot(r);
    VT_CHECK(ps >= 0);
    VT_EQ(r->procs[ps].used[0].total, 16 * MiB);
    pid_t kid = fork();
    if (kid == 0) {
        CUdeviceptr q;
        VT_EQ(cuMemFree_v2(p), CUDA_SUCCESS); /* the parent's pointer: not ours to uncharge */
        VT_EQ(r->procs[ps].used[0].total, 16 * MiB);
        VT_CHECK(vt_ctx(0));
        VT_EQ(cuMemAlloc_v2(&q, 8 * MiB), CUDA_SUCCESS);
        int cs = my_slot(r);
        VT_CHECK(cs >= 0 && cs != ps);
        VT_EQ(r->procs[cs].used[0].total, 8 * MiB);
        VT_EQ(r->procs[ps].used[0].total, 16 * MiB);
        _exit(0);
    }
    int st;
    waitpid(kid, &st, 0);
    VT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    VT_EQ(r->procs[ps].used[0].total, 16 * MiB);
    size_t f, t;
    VT_EQ(cuMemGetInfo_v2(&f, &t), CUDA_SUCCESS); /* the dead child is reaped */
    VT_EQ(t - f, 16 * MiB);
}

static void *churn(void *arg)
{
    (void)arg;
    CUcontext c;
    VT_EQ(cuDevicePrimaryCtxRetain(&c, 0), CUDA_SUCCESS);
    VT_EQ(cuCtxSetCurrent(c), CUDA_SUCCESS);
    for (int round = 0; round < 200; round++) {
        CUdeviceptr p[16];
        int n = 0;
        while (n < 16 && cuMemAlloc_v2(&p[n], MiB) == CUDA_SUCCESS)
            n++;
        while (n > 0)
            VT_EQ(cuMemFree_v2(p[--n]), CUDA_SUCCESS);
    }
    return NULL;
}

static void threads(void)
{
    pthread_t th[8];
    VT_EQ(cuInit(0), CUDA_SUCCESS);
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, churn, NULL);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    lvgpu_region_t *r = map_region();
    VT_EQ(r->procs[my_slot(r)].used[0].total, 0);
    VT_CHECK(fakegpu_used(0) <= 8 * MiB); /* only the context is left */
}

const struct vt_case vt_cases[] = {
    {"race2", race2, ENV, 0},
    {"race8", race8, ENV, 0},
    {"sigkill_lock_holder", sigkill_lock_holder, ENV, 0},
    {"dead_process_reaped", dead_process_reaped, ENV, 0},
    {"fork_child_slot", fork_child_slot, ENV, 0},
    {"threads", threads, ENV, 0},
    {0},
};
