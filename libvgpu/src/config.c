/*
 * config.c - every environment variable libvgpu reads, read once under
 * pthread_once into a const struct. Malformed values are reported once (per
 * process, at ERROR level) and fail safe: a memory or SM limit that cannot be
 * read denies allocation on that device; nothing calls exit().
 */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vgpu.h"

static struct vgpu_config g_cfg;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* errors are collected while parsing and printed once the log level is known */
static char g_errs[8][200];
static int g_nerr;

static void note_error(const char *name, const char *value, const char *effect)
{
    g_cfg.config_error = 1;
    if (g_nerr < 8)
        snprintf(g_errs[g_nerr++], sizeof g_errs[0], "malformed %s=\"%.60s\": %s", name, value,
                 effect);
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

/*
 * Parse "<digits>[suffix]" where suffix is one of (case-insensitive) b, k, m, g,
 * t, ki, mi, gi, ti, kib, mib, gib, tib; k/m/g/t are binary as in HAMi-core.
 * Leading/trailing blanks are allowed. Returns -1 on anything else or overflow.
 */
int vgpu__parse_size(const char *s, uint64_t *out)
{
    uint64_t v = 0, mul = 1;
    const char *p = s;
    char suf[4] = {0};
    size_t n = 0;
    while (isspace((unsigned char)*p))
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    while (isalpha((unsigned char)*p)) {
        if (n >= 3)
            return -1;
        suf[n++] = (char)tolower((unsigned char)*p++);
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p)
        return -1;
    if (n > 0) {
        int shift;
        switch (suf[0]) {
        case 'b': shift = 0; break;
        case 'k': shift = 10; break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        case 't': shift = 40; break;
        default: return -1;
        }
        if (suf[0] == 'b' ? n != 1
                          : !(n == 1 || (n == 2 && suf[1] == 'i') ||
                              (n == 3 && suf[1] == 'i' && suf[2] == 'b')))
            return -1;
        mul = (uint64_t)1 << shift;
    }
    if (v > UINT64_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

int vgpu__parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) { *out = 1; return 0; }
        if (!strcasecmp(s, no[i])) { *out = 0; return 0; }
    }
    return -1;
}

/* integer in [lo, hi]; -1 when malformed or out of range */
static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return -1;
    v = strtol(s, &end, 10);
    while (isspace((unsigned char)*end))
        end++;
    if (*end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static void read_mem_limit(const char *name, int *state, uint64_t *limit)
{
    const char *v = env(name);
    uint64_t b;
    if (!v)
        return;
    if (vgpu__parse_size(v, &b) != 0) {
        *state = VGPU_LIM_INVALID;
        note_error(name, v, "allocation on the device is denied");
    } else if (b == 0) {
        *state = VGPU_LIM_NONE; /* HAMi: 0 means no limit */
    } else {
        *state = VGPU_LIM_SET;
        *limit = b;
    }
}

static void read_sm_limit(const char *name, int *state, unsigned *limit)
{
    const char *v = env(name);
    long pct;
    if (!v)
        return;
    if (parse_int(v, 0, 100, &pct) != 0) {
        *state = VGPU_LIM_INVALID;
        note_error(name, v, "allocation on the device is denied");
    } else if (pct == 0 || pct == 100) {
        *state = VGPU_LIM_NONE;
    } else {
        *state = VGPU_LIM_SET;
        *limit = (unsigned)pct;
    }
}

static void read_bool(const char *name, int *out, int fallback)
{
    const char *v = env(name);
    if (v && vgpu__parse_bool(v, out) != 0) {
        *out = fallback;
        note_error(name, v, fallback ? "taken as true" : "taken as false");
    }
}

static void load(void)
{
    struct vgpu_config *c = &g_cfg;
    const char *v;
    int gstate = VGPU_LIM_NONE, gsm = VGPU_LIM_NONE;
    uint64_t glimit = 0;
    unsigned gsmv = 0;
    long n;
    char name[64];

    c->log_level = VGPU_LOG_ERROR;
    v = env("LIBCUDA_LOG_LEVEL");
    if (v) {
        if (parse_int(v, 0, 4, &n) == 0)
            c->log_level = (int)n;
        else
            note_error("LIBCUDA_LOG_LEVEL", v, "using 1 (errors only)");
    }
    read_bool("CUDA_DISABLE_CONTROL", &c->disabled, 0);
    read_bool("CUDA_OVERSUBSCRIBE", &c->oversubscribe, 0);

    read_mem_limit("CUDA_DEVICE_MEMORY_LIMIT", &gstate, &glimit);
    read_sm_limit("CUDA_DEVICE_SM_LIMIT", &gsm, &gsmv);
    for (int i = 0; i < VGPU_MAXDEV; i++) {
        c->mem_state[i] = gstate;
        c->mem_limit[i] = glimit;
        c->sm_state[i] = gsm;
        c->sm_limit[i] = gsmv;
        snprintf(name, sizeof name, "CUDA_DEVICE_MEMORY_LIMIT_%d", i);
        if (env(name)) {
            c->mem_state[i] = VGPU_LIM_NONE;
            read_mem_limit(name, &c->mem_state[i], &c->mem_limit[i]);
        }
        snprintf(name, sizeof name, "CUDA_DEVICE_SM_LIMIT_%d", i);
        if (env(name)) {
            c->sm_state[i] = VGPU_LIM_NONE;
            read_sm_limit(name, &c->sm_state[i], &c->sm_limit[i]);
        }
    }

    v = env("GPU_CORE_UTILIZATION_POLICY");
    if (!v || !strcasecmp(v, "default"))
        c->policy = VGPU_POLICY_DEFAULT;
    else if (!strcasecmp(v, "force"))
        c->policy = VGPU_POLICY_FORCE;
    else if (!strcasecmp(v, "disable"))
        c->policy = VGPU_POLICY_DISABLE;
    else
        note_error("GPU_CORE_UTILIZATION_POLICY", v, "using default");

    c->priority = 1;
    v = env("CUDA_TASK_PRIORITY");
    if (v) {
        if (parse_int(v, -1000000, 1000000, &n) == 0)
            c->priority = (int)n;
        else
            note_error("CUDA_TASK_PRIORITY", v, "using 1");
    }

    v = env("LIBVGPU_CONTEXT_OVERHEAD");
    if (v) {
        if (vgpu__parse_size(v, &c->ctx_overhead) == 0)
            c->ctx_overhead_set = 1;
        else
            note_error("LIBVGPU_CONTEXT_OVERHEAD", v, "measuring instead");
    }

    v = env("CUDA_DEVICE_MEMORY_SHARED_CACHE");
    snprintf(c->shm_path, sizeof c->shm_path, "%s", v ? v : "/tmp/cudevshr.cache");

    for (int i = 0; i < g_nerr; i++)
        vgpu__log_raw(VGPU_LOG_ERROR, c->log_level, g_errs[i]);
}

const struct vgpu_config *vgpu__config(void)
{
    pthread_once(&g_once, load);
    return &g_cfg;
}

/* one line at `level` when LIBCUDA_LOG_LEVEL lets it through (log.c writes it) */
void vgpu__log(int level, const char *fmt, ...)
{
    const struct vgpu_config *c = vgpu__config();
    char msg[640];
    va_list ap;
    if (level > c->log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    vgpu__log_raw(level, c->log_level, msg);
}
