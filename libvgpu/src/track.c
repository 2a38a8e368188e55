/*
 * track.c - what this process holds: device pointers, VMM handles, arrays,
 * pools, contexts. A chained hash table keyed by (namespace, key) under one
 * mutex. Frees of keys not found here are forwarded untouched by the hooks.
 */
#include <pthread.h>
#include <stdlib.h>

#include "vgpu.h"

#define NBUCKETS 4096

struct node {
    struct vgpu_track t;
    struct node *next;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct node *g_tab[NBUCKETS];

static size_t bucket(int ns, uint64_t key)
{
    uint64_t h = (key ^ ((uint64_t)ns << 56)) * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 52) & (NBUCKETS - 1);
}

static struct node **find(int ns, uint64_t key)
{
    struct node **pp = &g_tab[bucket(ns, key)];
    while (*pp && !((*pp)->t.ns == ns && (*pp)->t.key == key))
        pp = &(*pp)->next;
    return pp;
}

void vgpu__track_put(const struct vgpu_track *t)
{
    struct node *n = malloc(sizeof *n), **pp;
    if (!n)
        return; /* untracked: the free is forwarded, the charge stays (safe side) */
    n->t = *t;
    pthread_mutex_lock(&g_mu);
    pp = find(t->ns, t->key);
    if (*pp) { /* a stale key (driver reused it): replace */
        n->next = (*pp)->next;
        free(*pp);
        *pp = n;
    } else {
        n->next = NULL;
        *pp = n;
    }
    pthread_mutex_unlock(&g_mu);
}

int vgpu__track_take(int ns, uint64_t key, struct vgpu_track *out)
{
    struct node **pp, *n = NULL;
    pthread_mutex_lock(&g_mu);
    pp = find(ns, key);
    if (*pp) {
        n = *pp;
        *pp = n->next;
        *out = n->t;
    }
    pthread_mutex_unlock(&g_mu);
    free(n);
    return n ? 0 : -1;
}

int vgpu__track_get(int ns, uint64_t key, struct vgpu_track *out)
{
    struct node **pp;
    int rc = -1;
    pthread_mutex_lock(&g_mu);
    pp = find(ns, key);
    if (*pp) {
        *out = (*pp)->t;
        rc = 0;
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

void vgpu__track_update(int ns, uint64_t key, uint64_t bytes)
{
    struct node **pp;
    pthread_mutex_lock(&g_mu);
    pp = find(ns, key);
    if (*pp)
        (*pp)->t.bytes = bytes;
    pthread_mutex_unlock(&g_mu);
}

int vgpu__track_drop_ctx(CUcontext ctx)
{
    struct node *gone = NULL, *n;
    int count = 0;
    pthread_mutex_lock(&g_mu);
    for (size_t b = 0; b < NBUCKETS; b++) {
        struct node **pp = &g_tab[b];
        while (*pp) {
            if ((*pp)->t.ctx == ctx && ctx) {
                n = *pp;
                *pp = n->next;
                n->next = gone;
                gone = n;
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    pthread_mutex_unlock(&g_mu);
    while (gone) {
        n = gone;
        gone = n->next;
        vgpu__uncharge(n->t.dev, n->t.bytes, n->t.kind);
        free(n);
        count++;
    }
    return count;
}

void vgpu__track_fork_lock(void) { pthread_mutex_lock(&g_mu); }
void vgpu__track_fork_unlock(void) { pthread_mutex_unlock(&g_mu); }

void vgpu__track_reset(void)
{
    pthread_mutex_lock(&g_mu);
    for (size_t b = 0; b < NBUCKETS; b++) {
        while (g_tab[b]) {
            struct node *n = g_tab[b];
            g_tab[b] = n->next;
            free(n);
        }
    }
    pthread_mutex_unlock(&g_mu);
}
