/*
 * fork.c - what fork(2) does to libvgpu's state. It sits above every other
 * unit: it takes their mutexes before a fork (so the child never inherits one
 * held by a thread that does not exist there), lets them go in the parent, and
 * in the child resets what belonged to the parent (its region slot and lock,
 * tracked allocations, contexts, pools, the limiter). No other unit calls it;
 * the handlers are registered when the library is loaded.
 *
 * Lock order everywhere: pools -> contexts -> region -> track.
 */
#include <pthread.h>

#include "vgpu.h"

static void prepare(void)
{
    vgpu__pools_fork_lock();
    vgpu__ctx_fork_lock();
    vgpu__region_fork_lock();
    vgpu__track_fork_lock();
}

static void parent(void)
{
    vgpu__track_fork_unlock();
    vgpu__region_fork_unlock();
    vgpu__ctx_fork_unlock();
    vgpu__pools_fork_unlock();
}

static void child(void)
{
    vgpu__track_fork_unlock();
    vgpu__region_fork_child(); /* releases the region mutex */
    vgpu__pools_reset();
    vgpu__ctx_reset();
    vgpu__ctx_fork_unlock();
    vgpu__pools_fork_unlock();
    vgpu__track_reset();
    vgpu__limiter_reset();
}

__attribute__((constructor)) static void install(void)
{
    pthread_atfork(prepare, parent, child);
}
