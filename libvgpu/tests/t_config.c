/* t_config.c - the environment parsers and the const config they produce
 * (config.c and log.c compiled in; no preload). */
#include <string.h>

#include "../src/vgpu.h"
#include "harness.h"

static void sizes(void)
{
    static const struct { const char *in; uint64_t out; } ok[] = {
        {"3000m", 3000 * MiB}, {"3000M", 3000 * MiB}, {"3000Mi", 3000 * MiB},
        {"3000MiB", 3000 * MiB}, {"2g", 2048 * MiB}, {"2Gi", 2048 * MiB}, {"64k", 65536},
        {"64Ki", 65536}, {"1t", 1ull << 40}, {"4096", 4096}, {"4096b", 4096}, {" 16m ", 16 * MiB},
        {"0", 0},
    };
    static const char *const bad[] = {"", "m", "1.5g", "0x10", "-1", "12x", "2Gib2", "1mm",
                                      "1 g", "18446744073709551616", "17179869184g", "1kb"};
    uint64_t v;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        VT_EQ(vgpu__parse_size(ok[i].in, &v), 0);
        VT_EQ(v, ok[i].out);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (vgpu__parse_size(bad[i], &v) != -1) {
            fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
            VT_CHECK(0);
        }
    }
}

static void bools(void)
{
    int b;
    VT_CHECK(vgpu__parse_bool("TRUE", &b) == 0 && b == 1);
    VT_CHECK(vgpu__parse_bool("off", &b) == 0 && b == 0);
    VT_CHECK(vgpu__parse_bool("perhaps", &b) == -1);
}

static void per_device(void)
{
    const struct vgpu_config *c = vgpu__config();
    VT_EQ(c->mem_state[0], VGPU_LIM_SET);
    VT_EQ(c->mem_limit[0], 1024 * MiB);
    VT_EQ(c->mem_limit[1], 512 * MiB);
    VT_EQ(c->mem_state[2], VGPU_LIM_NONE); /* _2=0 overrides with "no limit" */
    VT_EQ(c->mem_limit[15], 1024 * MiB);
    VT_EQ(c->sm_state[0], VGPU_LIM_SET);
    VT_EQ(c->sm_limit[0], 30);
    VT_EQ(c->sm_limit[3], 70);
    VT_EQ(c->policy, VGPU_POLICY_FORCE);
    VT_EQ(c->priority, 0);
    VT_EQ(c->oversubscribe, 1);
    VT_EQ(c->log_level, 1);
    VT_CHECK(!strcmp(c->shm_path, vt_region_path()));
    VT_EQ(c->config_error, 0);
    VT_CHECK(vgpu__config() == c); /* read once */
}

static void defaults(void)
{
    const struct vgpu_config *c = vgpu__config();
    for (int i = 0; i < 16; i++) {
        VT_EQ(c->mem_state[i], VGPU_LIM_NONE);
        VT_EQ(c->sm_state[i], VGPU_LIM_NONE);
    }
    VT_EQ(c->policy, VGPU_POLICY_DEFAULT);
    VT_EQ(c->priority, 1);
    VT_EQ(c->disabled, 0);
    VT_EQ(c->log_level, 1);
}

static void sm_100_is_none(void)
{
    VT_EQ(vgpu__config()->sm_state[0], VGPU_LIM_NONE);
}

static void default_path(void)
{
    VT_CHECK(!strcmp(vgpu__config()->shm_path, "/tmp/cudevshr.cache"));
}

static void malformed_reported_once(void)
{
    const struct vgpu_config *c = vgpu__config();
    VT_EQ(c->mem_state[0], VGPU_LIM_INVALID);
    VT_EQ(c->config_error, 1);
    vgpu__config();
}

const struct vt_case vt_cases[] = {
    {"sizes", sizes, "VT_NOPRELOAD=1", 0},
    {"bools", bools, "VT_NOPRELOAD=1", 0},
    {"per_device", per_device,
     "VT_NOPRELOAD=1;CUDA_DEVICE_MEMORY_LIMIT=1g;CUDA_DEVICE_MEMORY_LIMIT_1=512Mi;"
     "CUDA_DEVICE_MEMORY_LIMIT_2=0;CUDA_DEVICE_SM_LIMIT=30;CUDA_DEVICE_SM_LIMIT_3=70;"
     "GPU_CORE_UTILIZATION_POLICY=FORCE;CUDA_TASK_PRIORITY=0;CUDA_OVERSUBSCRIBE=true", 0},
    {"defaults", defaults, "VT_NOPRELOAD=1", 0},
    {"sm_100_is_none", sm_100_is_none, "VT_NOPRELOAD=1;CUDA_DEVICE_SM_LIMIT=100", 0},
    {"default_path", default_path, "VT_NOPRELOAD=1;VT_DEFAULT_PATH=1", 0},
    {"malformed_reported_once", malformed_reported_once,
     "VT_NOPRELOAD=1;CUDA_DEVICE_MEMORY_LIMIT=lots", 1},
    {0},
};
