/*
 * region.c - the per-container shared region: attach, slots, locks, and the
 * atomic check-and-charge. See include/libvgpu.h for the layout and protocol.
 *
 * Locks: an in-process mutex serialises threads; an open-file-description
 * record lock (F_OFD_SETLKW) on LVGPU_LOCK_REGION_OFF serialises processes.
 * The kernel drops it when the owner dies, so SIGKILL in any window leaves
 * nothing to recover. OFD locks (unlike classic POSIX ones) survive another
 * open/close of the same file in the process; a forked child closes the
 * inherited descriptor and opens its own, so it never shares its parent's.
 * Each process holds the lock byte of its own slot for its whole life; a slot
 * with no holder belongs to a dead process and is reaped.
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vgpu.h"

static struct {
    pthread_mutex_t mu;
    int state; /* 0 not tried, 1 attached, -1 unusable */
    int fd;
    lvgpu_region_t *r;
    int slot;
    int devidx[VGPU_MAXDEV]; /* CUDA ordinal -> region device index, -1 unknown */
    int devidx_ready;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .fd = -1, .slot = -1};

static int lock_byte(int fd, long off, int cmd, short type)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = off, .l_len = 1,
                       .l_pid = 0};
    int rc;
    do
        rc = fcntl(fd, cmd, &fl);
    while (rc != 0 && errno == EINTR);
    return rc;
}

static void xlock(void) { lock_byte(g.fd, LVGPU_LOCK_REGION_OFF, F_OFD_SETLKW, F_WRLCK); }
static void xunlock(void) { lock_byte(g.fd, LVGPU_LOCK_REGION_OFF, F_OFD_SETLK, F_UNLCK); }

/* someone (another process) holds slot i's life lock */
static int slot_alive(int i)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET,
                       .l_start = LVGPU_LOCK_SLOT_OFF(i), .l_len = 1};
    if (i == g.slot)
        return 1;
    if (fcntl(g.fd, F_OFD_GETLK, &fl) != 0)
        return 1; /* cannot tell: keep it */
    return fl.l_type != F_UNLCK;
}

static void store64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static uint64_t load64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

/* under the region lock: free the slots of dead processes */
static void reap_locked(void)
{
    lvgpu_region_t *r = g.r;
    for (int i = 0; i < r->proc_num && i < LVGPU_MAX_PROCS; i++) {
        lvgpu_slot_t *s = &r->procs[i];
        if (__atomic_load_n(&s->status, __ATOMIC_ACQUIRE) == LVGPU_SLOT_FREE || slot_alive(i))
            continue;
        __atomic_store_n(&s->status, LVGPU_SLOT_FREE, __ATOMIC_RELEASE);
        memset(s->used, 0, sizeof s->used);
        s->pid = 0;
        s->hostpid = 0;
    }
}

static int header_is_zero(const lvgpu_region_t *r)
{
    const unsigned char *p = (const unsigned char *)r;
    for (size_t i = 0; i < offsetof(lvgpu_region_t, uuids); i++)
        if (p[i])
            return 0;
    return 1;
}

static void init_header(lvgpu_region_t *r)
{
    const struct vgpu_config *c = vgpu__config();
    r->major_version = LVGPU_MAJOR;
    r->minor_version = LVGPU_MINOR;
    r->ext.magic = LVGPU_EXT_MAGIC;
    r->ext.version = LVGPU_EXT_VERSION;
    r->utilization_switch = 1;
    r->recent_kernel = 2;
    r->priority = c->priority;
    r->last_kernel_time = (uint64_t)time(NULL);
    __atomic_store_n(&r->initialized_flag, LVGPU_MAGIC, __ATOMIC_RELEASE);
}

/* fork.c holds this mutex across fork(); the parent lets it go */
void vgpu__region_fork_lock(void) { pthread_mutex_lock(&g.mu); }
void vgpu__region_fork_unlock(void) { pthread_mutex_unlock(&g.mu); }

/* in a forked child (g.mu held by the fork): the child owns no slot and no
 * fcntl lock; it registers lazily */
void vgpu__region_fork_child(void)
{
    g.slot = -1;
    if (g.fd >= 0) { /* drop the parent's open file description (and its locks) */
        close(g.fd);
        g.fd = -1;
    }
    if (g.state == 1)
        g.state = 0;
    pthread_mutex_unlock(&g.mu);
}

/* take a slot for this process; region lock held */
static int take_slot_locked(void)
{
    lvgpu_region_t *r = g.r;
    int i;
    reap_locked();
    for (i = 0; i < r->proc_num && i < LVGPU_MAX_PROCS; i++)
        if (r->procs[i].status == LVGPU_SLOT_FREE)
            break;
    if (i >= LVGPU_MAX_PROCS)
        return -1;
    if (lock_byte(g.fd, LVGPU_LOCK_SLOT_OFF(i), F_OFD_SETLK, F_WRLCK) != 0)
        return -1;
    lvgpu_slot_t *s = &r->procs[i];
    memset(s, 0, sizeof *s);
    s->pid = (int32_t)getpid();
    s->unused[0] = ++r->ext.generation;
    __atomic_store_n(&s->status, LVGPU_SLOT_RUNNING, __ATOMIC_RELEASE);
    if (i >= r->proc_num)
        __atomic_store_n(&r->proc_num, i + 1, __ATOMIC_RELEASE);
    return i;
}

static int map_file(const struct vgpu_config *c)
{
    struct stat st;
    int created = 0;
    if (g.fd < 0) {
        /* The directory is writable by every user of the container: never follow a link
         * planted there, and change the mode only of a file this process created. */
        int made = 1;
        g.fd = open(c->shm_path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (g.fd < 0 && errno == EEXIST) {
            made = 0;
            g.fd = open(c->shm_path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        }
        if (g.fd < 0) {
            vgpu__log(VGPU_LOG_ERROR, "cannot open shared region %s: %s", c->shm_path,
                      errno == ELOOP ? "it is a symbolic link" : strerror(errno));
            return -1;
        }
        if (fstat(g.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            vgpu__log(VGPU_LOG_ERROR, "shared region %s is not a regular file", c->shm_path);
            close(g.fd);
            g.fd = -1;
            return -1;
        }
        if (made)
            (void)!fchmod(g.fd, 0666); /* group/other may be other container users */
    }
    xlock();
    if (fstat(g.fd, &st) != 0)
        goto bad_unlock;
    if (st.st_size == 0) {
        if (ftruncate(g.fd, (off_t)LVGPU_FILE_SIZE) != 0)
            goto bad_unlock;
        created = 1;
    } else if ((size_t)st.st_size < LVGPU_FILE_SIZE) {
        vgpu__log(VGPU_LOG_ERROR, "shared region %s: size %lld is not a libvgpu region",
                  c->shm_path, (long long)st.st_size);
        goto bad_unlock;
    }
    if (!g.r) {
        void *p = mmap(NULL, LVGPU_REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g.fd, 0);
        if (p == MAP_FAILED)
            goto bad_unlock;
        g.r = p;
    }
    if (g.r->initialized_flag != LVGPU_MAGIC) {
        if (!created && !header_is_zero(g.r)) {
            vgpu__log(VGPU_LOG_ERROR, "shared region %s: bad magic", c->shm_path);
            goto bad_unlock;
        }
        init_header(g.r);
    } else if (g.r->major_version != LVGPU_MAJOR || g.r->ext.magic != LVGPU_EXT_MAGIC ||
               g.r->ext.version != LVGPU_EXT_VERSION) {
        vgpu__log(VGPU_LOG_ERROR, "shared region %s: version %u.%u ext %#x/%u not supported",
                  c->shm_path, g.r->major_version, g.r->minor_version, g.r->ext.magic,
                  g.r->ext.version);
        goto bad_unlock;
    }
    if (c->config_error)
        __atomic_or_fetch(&g.r->ext.flags, LVGPU_EXT_CONFIG_ERROR, __ATOMIC_RELAXED);
    g.slot = take_slot_locked();
    xunlock();
    if (g.slot < 0) {
        vgpu__log(VGPU_LOG_ERROR, "shared region %s: no free process slot", c->shm_path);
        return -1;
    }
    return 0;
bad_unlock:
    xunlock();
    return -1;
}

/* attach once per process (again in a forked child); g.mu held */
static int ensure_locked(void)
{
    if (g.state == 1)
        return 0;
    if (g.state == -1)
        return -1;
    if (!g.devidx_ready) {
        g.devidx_ready = 1;
        for (int i = 0; i < VGPU_MAXDEV; i++)
            g.devidx[i] = -1;
    }
    g.state = map_file(vgpu__config()) == 0 ? 1 : -1;
    return g.state == 1 ? 0 : -1;
}

lvgpu_region_t *vgpu__region(void)
{
    lvgpu_region_t *r;
    pthread_mutex_lock(&g.mu);
    r = ensure_locked() == 0 ? g.r : NULL;
    pthread_mutex_unlock(&g.mu);
    return r;
}

static void format_uuid(const CUuuid *u, char *out, size_t n)
{
    const unsigned char *b = (const unsigned char *)u->bytes;
    snprintf(out, n,
             "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

/* region index of CUDA ordinal dev; g.mu held and attached; takes the region lock */
static int devidx_locked(int dev)
{
    char uuid[LVGPU_UUID_LEN];
    CUuuid u;
    CUresult rc = CUDA_ERROR_NOT_FOUND;
    lvgpu_region_t *r = g.r;
    const struct vgpu_config *c = vgpu__config();
    int idx = -1;
    if (dev < 0 || dev >= VGPU_MAXDEV)
        return -1;
    if (g.devidx[dev] >= 0)
        return g.devidx[dev];
    vgpu__init_cuda();
    if (vgpu__real.cuDeviceGetUuid_v2)
        rc = vgpu__real.cuDeviceGetUuid_v2(&u, dev);
    if (rc != CUDA_SUCCESS && vgpu__real.cuDeviceGetUuid)
        rc = vgpu__real.cuDeviceGetUuid(&u, dev);
    if (rc == CUDA_SUCCESS)
        format_uuid(&u, uuid, sizeof uuid);
    else
        snprintf(uuid, sizeof uuid, "CUDA-ORDINAL-%d", dev);
    xlock();
    for (int i = 0; i < (int)r->device_num && i < VGPU_MAXDEV; i++)
        if (!strncmp(r->uuids[i], uuid, LVGPU_UUID_LEN))
            idx = i;
    if (idx < 0 && r->device_num < VGPU_MAXDEV) {
        idx = (int)r->device_num;
        memcpy(r->uuids[idx], uuid, sizeof uuid);
        __atomic_store_n(&r->device_num, (uint64_t)idx + 1, __ATOMIC_RELEASE);
    }
    if (idx >= 0) {
        if (c->mem_state[dev] == VGPU_LIM_SET && r->limit[idx] == 0)
            store64(&r->limit[idx], c->mem_limit[dev]);
        if (c->sm_state[dev] == VGPU_LIM_SET && r->sm_limit[idx] == 0)
            store64(&r->sm_limit[idx], c->sm_limit[dev]);
    }
    xunlock();
    g.devidx[dev] = idx;
    return idx;
}

int vgpu__region_index(int dev)
{
    int idx = -1;
    pthread_mutex_lock(&g.mu);
    if (ensure_locked() == 0)
        idx = devidx_locked(dev);
    pthread_mutex_unlock(&g.mu);
    return idx;
}

int vgpu__region_index_by_uuid(const char *uuid)
{
    lvgpu_region_t *r = vgpu__region();
    if (!r)
        return -1;
    for (int i = 0; i < (int)r->device_num && i < VGPU_MAXDEV; i++)
        if (!strncmp(r->uuids[i], uuid, LVGPU_UUID_LEN))
            return i;
    return -1;
}

static uint64_t sum_locked(int idx)
{
    uint64_t t = 0;
    for (int i = 0; i < g.r->proc_num && i < LVGPU_MAX_PROCS; i++)
        if (g.r->procs[i].status != LVGPU_SLOT_FREE)
            t += load64(&g.r->procs[i].used[idx].total);
    return t;
}

/* effective limit of CUDA ordinal dev given region index idx */
static int limit_of(int dev, int idx, uint64_t *out)
{
    const struct vgpu_config *c = vgpu__config();
    uint64_t shared = idx >= 0 ? load64(&g.r->limit[idx]) : 0, lim = 0;
    if (dev >= 0 && dev < VGPU_MAXDEV) {
        if (c->mem_state[dev] == VGPU_LIM_INVALID || c->sm_state[dev] == VGPU_LIM_INVALID)
            return -1;
        if (c->mem_state[dev] == VGPU_LIM_SET)
            lim = c->mem_limit[dev];
    }
    if (shared && (!lim || shared < lim))
        lim = shared;
    *out = lim;
    return lim ? 1 : 0;
}

static void slot_add(int idx, int kind, uint64_t bytes, int sub)
{
    lvgpu_slot_t *s = &g.r->procs[g.slot];
    lvgpu_devmem_t *m = &s->used[idx];
    uint64_t *part = kind == VGPU_KIND_CTX ? &m->context_size : &m->data_size;
    __atomic_add_fetch(&s->seqlock, 1, __ATOMIC_ACQ_REL);
    if (sub) {
        store64(&m->total, load64(&m->total) >= bytes ? load64(&m->total) - bytes : 0);
        store64(part, load64(part) >= bytes ? load64(part) - bytes : 0);
    } else {
        store64(&m->total, load64(&m->total) + bytes);
        store64(part, load64(part) + bytes);
    }
    __atomic_add_fetch(&s->seqlock, 1, __ATOMIC_ACQ_REL);
}

/*
 * Check and charge in one step: under the region lock, sum every live slot's
 * usage of the device, compare with the limit, and add to this process's slot.
 * force: charge even above the limit (memory the driver already handed out).
 */
int vgpu__charge(int dev, uint64_t bytes, int kind, int force)
{
    uint64_t lim = 0;
    int rc = 0, idx, lk;
    pthread_mutex_lock(&g.mu);
    if (ensure_locked() != 0) {
        /* no region: nothing can be shared; fail safe where a limit was asked for */
        lk = limit_of(dev, -1, &lim);
        pthread_mutex_unlock(&g.mu);
        return (lk != 0 && !force) ? -1 : 0;
    }
    idx = devidx_locked(dev);
    lk = limit_of(dev, idx, &lim);
    if (idx < 0) {
        pthread_mutex_unlock(&g.mu);
        return (lk != 0 && !force) ? -1 : 0;
    }
    xlock();
    if (!force && lk < 0) {
        rc = -1;
    } else if (!force && lk > 0) {
        uint64_t used = sum_locked(idx);
        if (used + bytes > lim || used + bytes < used) {
            reap_locked();
            used = sum_locked(idx);
            if (used + bytes > lim || used + bytes < used)
                rc = -1;
        }
    }
    if (rc == 0)
        slot_add(idx, kind, bytes, 0);
    xunlock();
    pthread_mutex_unlock(&g.mu);
    if (rc)
        vgpu__log(VGPU_LOG_WARN, "device %d: %llu bytes refused (limit %llu)", dev,
                  (unsigned long long)bytes, (unsigned long long)lim);
    return rc;
}

void vgpu__uncharge(int dev, uint64_t bytes, int kind)
{
    pthread_mutex_lock(&g.mu);
    if (g.state == 1 && g.slot >= 0) {
        int idx = devidx_locked(dev);
        if (idx >= 0)
            slot_add(idx, kind, bytes, 1); /* own slot: no region lock needed */
    }
    pthread_mutex_unlock(&g.mu);
}

uint64_t vgpu__usage_by_index(int idx)
{
    uint64_t t = 0;
    pthread_mutex_lock(&g.mu);
    if (ensure_locked() == 0 && idx >= 0 && idx < VGPU_MAXDEV) {
        xlock();
        reap_locked();
        t = sum_locked(idx);
        xunlock();
    }
    pthread_mutex_unlock(&g.mu);
    return t;
}

uint64_t vgpu__usage(int dev)
{
    return vgpu__usage_by_index(vgpu__region_index(dev));
}

int vgpu__limit(int dev, uint64_t *limit)
{
    int rc, idx;
    pthread_mutex_lock(&g.mu);
    idx = ensure_locked() == 0 ? devidx_locked(dev) : -1;
    rc = limit_of(dev, idx, limit); /* idx -1: only this process's environment */
    pthread_mutex_unlock(&g.mu);
    return rc;
}

uint64_t vgpu__limit_by_index(int idx)
{
    lvgpu_region_t *r = vgpu__region();
    return (r && idx >= 0 && idx < VGPU_MAXDEV) ? load64(&r->limit[idx]) : 0;
}

/* is NVML's pid one of this container's processes? gives back its local pid */
int vgpu__pid_in_container(unsigned pid, int *local_pid)
{
    int found = 0;
    pthread_mutex_lock(&g.mu);
    if (ensure_locked() == 0) {
        xlock();
        reap_locked();
        for (int i = 0; i < g.r->proc_num && !found; i++) {
            lvgpu_slot_t *s = &g.r->procs[i];
            if (s->status == LVGPU_SLOT_FREE)
                continue;
            if ((s->hostpid && (unsigned)s->hostpid == pid) || (unsigned)s->pid == pid) {
                *local_pid = s->pid;
                found = 1;
            }
        }
        xunlock();
    }
    pthread_mutex_unlock(&g.mu);
    return found;
}

void vgpu__region_note_sm(int dev, unsigned util_pct)
{
    pthread_mutex_lock(&g.mu);
    if (g.state == 1 && g.slot >= 0) {
        int idx = devidx_locked(dev);
        if (idx >= 0)
            store64(&g.r->procs[g.slot].device_util[idx].sm_util, util_pct);
    }
    pthread_mutex_unlock(&g.mu);
}
