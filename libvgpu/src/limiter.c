/*
 * limiter.c - the compute share (CUDA_DEVICE_SM_LIMIT), a time-based
 * controller instead of HAMi-core's block-count tokens.
 *
 * Each device has a credit of GPU time (ns). It refills at `pct`% of wall time
 * (capped at a small burst) and every launch spends the estimated GPU time of
 * what it launches. A launch that finds the credit negative sleeps until the
 * refill covers it - except while its stream is being captured, because a
 * captured launch does not run (the graph launch is charged instead).
 *
 * Estimated GPU time comes from measurement: one launch in SAMPLE_EVERY (and
 * the first of each kernel) is bracketed by two timing events; the elapsed
 * time updates a per-kernel estimate that follows decreases at once and
 * increases slowly, so time-slicing with other processes does not inflate it.
 *
 * Launch-path cost when no limit applies: one relaxed load and a branch.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "vgpu.h"

#define BURST_NS 4000000ll  /* credit cap: 4 ms of GPU time */
#define SAMPLE_EVERY 32
#define NCOST 256
#define TICK_NS 1000000000ull

struct cost {
    const void *key;
    int64_t ns;
};

struct devlim {
    pthread_mutex_t mu; /* sampling and the tick */
    int ready;
    _Atomic int pct;    /* 0 = no throttling */
    _Atomic int64_t credit;
    _Atomic uint64_t last_refill;
    _Atomic uint64_t launches;
    _Atomic int64_t spent; /* estimated GPU ns launched since the tick */
    uint64_t tick_at;
    int64_t avg; /* mean estimate over kernels */
    struct cost costs[NCOST];
    /* one measurement in flight */
    CUcontext ev_ctx;
    CUevent ev_start, ev_end;
    int pending, recording;
    const void *pending_key;
};

static struct devlim g_dev[VGPU_MAXDEV];
static _Atomic int g_enabled = -1; /* -1 unknown, 0 nothing to do, 1 some device may throttle */
static pthread_mutex_t g_init_mu = PTHREAD_MUTEX_INITIALIZER;
static lvgpu_region_t *_Atomic g_region; /* cached for the launch path */

void vgpu__limiter_reset(void)
{
    for (int d = 0; d < VGPU_MAXDEV; d++) {
        pthread_mutex_init(&g_dev[d].mu, NULL);
        g_dev[d].ready = 0;
        g_dev[d].pending = g_dev[d].recording = 0;
        g_dev[d].ev_ctx = NULL;
    }
}

static int64_t *cost_slot(struct devlim *d, const void *key, int create)
{
    size_t h = ((uintptr_t)key >> 4) * 0x9e3779b97f4a7c15ull >> 56;
    struct cost *c = &d->costs[h % NCOST];
    if (c->key == key)
        return &c->ns;
    if (!create)
        return NULL;
    c->key = key;
    c->ns = 0;
    return &c->ns;
}

/* effective percent for device dev: env first, then the shared region */
static int compute_pct(int dev)
{
    const struct vgpu_config *c = vgpu__config();
    lvgpu_region_t *r;
    int idx;
    if (c->disabled || c->policy == VGPU_POLICY_DISABLE)
        return 0;
    if (c->sm_state[dev] == VGPU_LIM_SET)
        return (int)c->sm_limit[dev];
    r = vgpu__region();
    idx = r ? vgpu__region_index(dev) : -1;
    if (idx >= 0) {
        uint64_t v = __atomic_load_n(&r->sm_limit[idx], __ATOMIC_RELAXED);
        if (v > 0 && v < 100)
            return (int)v;
    }
    return 0;
}

static int enabled(void)
{
    int e = atomic_load_explicit(&g_enabled, memory_order_relaxed);
    if (e >= 0)
        return e;
    pthread_mutex_lock(&g_init_mu);
    const struct vgpu_config *c = vgpu__config();
    e = 0;
    if (!c->disabled && c->policy != VGPU_POLICY_DISABLE) {
        lvgpu_region_t *r = vgpu__region();
        atomic_store(&g_region, r);
        for (int d = 0; d < VGPU_MAXDEV; d++)
            if (c->sm_state[d] == VGPU_LIM_SET || (r && r->sm_limit[d] > 0 && r->sm_limit[d] < 100))
                e = 1;
    }
    atomic_store(&g_enabled, e);
    pthread_mutex_unlock(&g_init_mu);
    return e;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000ll, .tv_nsec = ns % 1000000000ll};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void refill(struct devlim *d, int pct)
{
    uint64_t now = vgpu__now_ns(), last = atomic_load(&d->last_refill);
    if (now <= last || !atomic_compare_exchange_strong(&d->last_refill, &last, now))
        return;
    int64_t add = (int64_t)((now - last) * (uint64_t)pct / 100u);
    int64_t cur = atomic_fetch_add(&d->credit, add) + add;
    if (cur > BURST_NS) /* cap; a concurrent spend between the two steps only helps */
        atomic_fetch_sub(&d->credit, cur - BURST_NS);
}

static int capturing(CUstream s, int ptsz)
{
    CUstreamCaptureStatus st = CU_STREAM_CAPTURE_STATUS_NONE;
    CUresult (*f)(CUstream, CUstreamCaptureStatus *) =
        ptsz && vgpu__real.cuStreamIsCapturing_ptsz ? vgpu__real.cuStreamIsCapturing_ptsz
                                                    : vgpu__real.cuStreamIsCapturing;
    return f && f(s, &st) == CUDA_SUCCESS && st != CU_STREAM_CAPTURE_STATUS_NONE;
}

static CUresult record(CUevent e, CUstream s, int ptsz)
{
    if (ptsz && vgpu__real.cuEventRecord_ptsz)
        return vgpu__real.cuEventRecord_ptsz(e, s);
    return vgpu__real.cuEventRecord ? vgpu__real.cuEventRecord(e, s) : CUDA_ERROR_NOT_FOUND;
}

/* a finished measurement updates the estimates; d->mu held */
static void harvest(struct devlim *d)
{
    float ms = 0;
    if (!d->pending || !vgpu__real.cuEventQuery || vgpu__real.cuEventQuery(d->ev_end) != CUDA_SUCCESS)
        return;
    d->pending = 0;
    if (vgpu__real.cuEventElapsedTime(&ms, d->ev_start, d->ev_end) != CUDA_SUCCESS || ms < 0)
        return;
    int64_t x = (int64_t)((double)ms * 1e6), *c = cost_slot(d, d->pending_key, 1);
    if (*c == 0 || x < *c)
        *c = x;
    else
        *c += (x - *c) / 8;
    d->avg = d->avg ? d->avg + (x - d->avg) / 8 : x;
}

/* once a second: utilisation note for the monitor, region-side limit changes */
static void tick(struct devlim *d, int dev)
{
    uint64_t now = vgpu__now_ns();
    if (now - d->tick_at < TICK_NS)
        return;
    int64_t spent = atomic_exchange(&d->spent, 0);
    uint64_t el = d->tick_at ? now - d->tick_at : TICK_NS;
    d->tick_at = now;
    vgpu__region_note_sm(dev, (unsigned)(spent > 0 ? (uint64_t)spent * 100u / el : 0));
    atomic_store(&d->pct, compute_pct(dev));
    lvgpu_region_t *r = vgpu__region();
    if (r) {
        uint64_t t = (uint64_t)time(NULL);
        if (__atomic_load_n(&r->last_kernel_time, __ATOMIC_RELAXED) != t)
            __atomic_store_n(&r->last_kernel_time, t, __ATOMIC_RELAXED);
    }
}

static struct devlim *setup(int dev)
{
    struct devlim *d = &g_dev[dev];
    if (!__atomic_load_n(&d->ready, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&d->mu);
        if (!d->ready) {
            atomic_store(&d->pct, compute_pct(dev));
            atomic_store(&d->credit, BURST_NS);
            atomic_store(&d->last_refill, vgpu__now_ns());
            d->tick_at = vgpu__now_ns();
            __atomic_store_n(&d->ready, 1, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&d->mu);
    }
    return d;
}

/*
 * The HAMi monitor protocol: every launch marks the container active
 * (recent_kernel = 2); a negative value asks a lower-priority container to
 * wait. Never waits while the stream is being captured.
 */
static void activity(CUstream s, int ptsz)
{
    lvgpu_region_t *r = atomic_load_explicit(&g_region, memory_order_relaxed);
    int rk;
    if (!r)
        return;
    rk = __atomic_load_n(&r->recent_kernel, __ATOMIC_RELAXED);
    if (rk == 2)
        return;
    while (rk < 0 && !capturing(s, ptsz)) {
        sleep_ns(50000000ll);
        rk = __atomic_load_n(&r->recent_kernel, __ATOMIC_RELAXED);
    }
    if (rk >= 0)
        __atomic_store_n(&r->recent_kernel, 2, __ATOMIC_RELAXED);
}

/* default policy: throttle only while the monitor's switch is on */
static int switched_off(void)
{
    lvgpu_region_t *r = atomic_load_explicit(&g_region, memory_order_relaxed);
    return r && vgpu__config()->policy == VGPU_POLICY_DEFAULT &&
           __atomic_load_n(&r->utilization_switch, __ATOMIC_RELAXED) == 0;
}

static _Thread_local int t_dev = -1; /* device of the launch in progress */
static _Thread_local int t_sampling;

void vgpu__limit_launch(CUstream s, int ptsz, const void *key)
{
    int dev, pct;
    struct devlim *d;
    int64_t cost, c;
    t_dev = -1;
    if (atomic_load_explicit(&g_enabled, memory_order_relaxed) == 0)
        return;
    if (!enabled())
        return;
    activity(s, ptsz);
    if (!vgpu__real.cuCtxGetDevice || vgpu__real.cuCtxGetDevice(&dev) != CUDA_SUCCESS ||
        dev < 0 || dev >= VGPU_MAXDEV)
        return;
    d = setup(dev);
    pct = atomic_load_explicit(&d->pct, memory_order_relaxed);
    if (pct <= 0 || pct >= 100 || switched_off())
        return;
    t_dev = dev;
    t_sampling = 0;
    {
        int64_t *k = cost_slot(d, key, 0);
        cost = (k && *k) ? *k : d->avg;
    }
    atomic_fetch_add_explicit(&d->spent, cost, memory_order_relaxed);
    c = atomic_fetch_sub(&d->credit, cost) - cost;
    if (c < 0) {
        refill(d, pct);
        if (atomic_load(&d->credit) < 0) {
            if (capturing(s, ptsz)) { /* a captured launch does not run now */
                atomic_fetch_add(&d->credit, cost);
                return;
            }
            while ((c = atomic_load(&d->credit)) < 0) {
                int64_t wait = -c * 100 / pct;
                sleep_ns(wait > 50000000ll ? 50000000ll : (wait < 20000 ? 20000 : wait));
                refill(d, pct);
            }
        }
    }
    /* measurement: a start event right before the launch (after any wait) */
    if (pthread_mutex_trylock(&d->mu) != 0)
        return;
    harvest(d);
    tick(d, dev);
    uint64_t n = atomic_fetch_add(&d->launches, 1);
    int64_t *known = cost_slot(d, key, 0);
    if (!d->pending && !d->recording && (n % SAMPLE_EVERY == 0 || !known || !*known) &&
        !capturing(s, ptsz)) {
        CUcontext ctx = NULL;
        vgpu__real.cuCtxGetCurrent(&ctx);
        if (d->ev_ctx != ctx && ctx) {
            d->ev_ctx = ctx;
            if (vgpu__real.cuEventCreate(&d->ev_start, 0) != CUDA_SUCCESS ||
                vgpu__real.cuEventCreate(&d->ev_end, 0) != CUDA_SUCCESS)
                d->ev_ctx = NULL;
        }
        if (d->ev_ctx == ctx && ctx && record(d->ev_start, s, ptsz) == CUDA_SUCCESS) {
            d->recording = 1;
            d->pending_key = key;
            t_sampling = 1;
        }
    }
    pthread_mutex_unlock(&d->mu);
}

void vgpu__limit_after_launch(CUstream s, int ptsz, const void *key)
{
    (void)key;
    if (t_dev < 0 || !t_sampling)
        return;
    struct devlim *d = &g_dev[t_dev];
    pthread_mutex_lock(&d->mu);
    if (d->recording) {
        d->recording = 0;
        d->pending = record(d->ev_end, s, ptsz) == CUDA_SUCCESS;
        /* nothing measured on this device yet: wait for this one, so that
         * launches are never free while the estimate is unknown */
        for (int i = 0; d->pending && d->avg == 0 && i < 20000; i++) {
            harvest(d);
            if (d->pending)
                sleep_ns(50000);
        }
    }
    pthread_mutex_unlock(&d->mu);
    t_sampling = 0;
}
