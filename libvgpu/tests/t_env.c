/* t_env.c - the environment: fail-safe handling of malformed values, log
 * silence, CUDA_DISABLE_CONTROL, unusable regions, env-less processes, and the
 * fake driver's UUIDs from NVIDIA_VISIBLE_DEVICES. */
#include <fcntl.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../include/libvgpu.h"
#include "cu.h"
#include "harness.h"

static void denied(void)
{
    CUdeviceptr p;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAlloc_v2(&p, MiB), CUDA_ERROR_OUT_OF_MEMORY);
    VT_EQ(cuMemAlloc_v2(&p, MiB), CUDA_ERROR_OUT_OF_MEMORY); /* reported once, not per call */
    size_t f, t;
    VT_EQ(cuMemGetInfo_v2(&f, &t), CUDA_SUCCESS);
    VT_CHECK(f <= 1024); /* nothing (or almost nothing) is shown as free */
}

static void allowed(void)
{
    CUdeviceptr p;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAlloc_v2(&p, 128 * MiB), CUDA_SUCCESS);
    VT_EQ(cuMemFree_v2(p), CUDA_SUCCESS);
}

/* device 1 is misconfigured; device 0 is fine */
static void per_device_denied(void)
{
    CUcontext c;
    CUdeviceptr p;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAlloc_v2(&p, MiB), CUDA_SUCCESS);
    VT_EQ(cuCtxCreate_v2(&c, 0, 1), CUDA_SUCCESS);
    VT_EQ(cuMemAlloc_v2(&p, MiB), CUDA_ERROR_OUT_OF_MEMORY);
}

/* a normal session, including refusals, prints nothing */
static void silent(void)
{
    CUdeviceptr p[80];
    int n = 0;
    size_t f, t;
    VT_CHECK(vt_ctx(0));
    while (n < 80 && cuMemAlloc_v2(&p[n], MiB) == CUDA_SUCCESS)
        n++;
    VT_EQ(n, 64);
    while (n > 0)
        cuMemFree_v2(p[--n]);
    cuMemGetInfo_v2(&f, &t);
}

static void suffix_binary(void)
{
    size_t f, t;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemGetInfo_v2(&f, &t), CUDA_SUCCESS);
    VT_EQ(t, 96 * MiB);
}

static void disable_control(void)
{
    size_t f, t;
    allowed();
    VT_EQ(cuMemGetInfo_v2(&f, &t), CUDA_SUCCESS);
    VT_EQ(t, 1024 * MiB);
}

/* a corrupt or foreign file is never used, and the process carries on */
static void foreign_region(void)
{
    int fd = open(vt_region_path(), O_CREAT | O_WRONLY, 0600);
    char junk[4096];
    memset(junk, 0x5a, sizeof junk);
    VT_CHECK(fd >= 0 && write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
    close(fd);
    denied();
}

static void foreign_region_big(void)
{
    int fd = open(vt_region_path(), O_CREAT | O_RDWR, 0600);
    VT_CHECK(fd >= 0 && ftruncate(fd, (off_t)LVGPU_FILE_SIZE) == 0);
    int32_t magic = LVGPU_MAGIC;
    uint32_t major = 7;
    VT_CHECK(pwrite(fd, &magic, 4, 0) == 4 && pwrite(fd, &major, 4, 4) == 4);
    close(fd);
    denied();
}

/* a link planted at the region's path: refused (limits denied), its target left alone */
static void planted_symlink(void)
{
    char target[600];
    snprintf(target, sizeof target, "%s.victim", vt_region_path());
    int fd = open(target, O_CREAT | O_WRONLY, 0600);
    VT_CHECK(fd >= 0 && write(fd, "keep", 4) == 4);
    close(fd);
    VT_CHECK(symlink(target, vt_region_path()) == 0);
    denied();
    struct stat st;
    VT_CHECK(stat(target, &st) == 0);
    VT_EQ((int)(st.st_mode & 0777), 0600); /* not made world-writable */
    VT_EQ((long long)st.st_size, 4LL);     /* not truncated or grown into a region */
}

/* a directory at the region's path: refused */
static void region_is_a_directory(void)
{
    VT_CHECK(mkdir(vt_region_path(), 0700) == 0);
    denied();
}

/* a process without the env (an SSH session) gets the container's limit */
static void envless_inherits(void)
{
    CUdeviceptr p;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAlloc_v2(&p, 40 * MiB), CUDA_SUCCESS);
    pid_t kid = fork();
    if (kid == 0) {
        char self[512];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        self[n > 0 ? n : 0] = 0;
        unsetenv("CUDA_DEVICE_MEMORY_LIMIT");
        execl(self, self, "_envless_helper", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(kid, &st, 0);
    VT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void envless_helper(void)
{
    CUdeviceptr p;
    VT_CHECK(getenv("CUDA_DEVICE_MEMORY_LIMIT") == NULL);
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAlloc_v2(&p, 32 * MiB), CUDA_ERROR_OUT_OF_MEMORY);
    VT_EQ(cuMemAlloc_v2(&p, 24 * MiB), CUDA_SUCCESS);
}

static void priority_recorded(void)
{
    CUdeviceptr p;
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAlloc_v2(&p, MiB), CUDA_SUCCESS);
    int fd = open(vt_region_path(), O_RDONLY);
    lvgpu_region_t *r = mmap(NULL, sizeof *r, PROT_READ, MAP_SHARED, fd, 0);
    VT_CHECK(r != MAP_FAILED);
    VT_EQ(r->initialized_flag, LVGPU_MAGIC);
    VT_EQ(r->major_version, 1);
    VT_EQ(r->minor_version, 2);
    VT_EQ(r->priority, 3);
    VT_EQ(r->limit[0], 64 * MiB);
    VT_EQ(r->device_num, 1);
    VT_CHECK(!strcmp(r->uuids[0], "GPU-00010203-0405-0607-0809-0a0b0c0d0e0f"));
    VT_CHECK(r->ext.flags & LVGPU_EXT_CONFIG_ERROR); /* the bad policy value */
}

#define UUID_A "GPU-9e41c0d2-6b7f-4a3e-b5d8-2c1f0e9a7b11"
#define UUID_B "GPU-9e41c0d2-6b7f-4a3e-b5d8-2c1f0e9a7b12"

static void nvml_uuid_is(unsigned i, const char *want)
{
    nvmlDevice_t d;
    char buf[96];
    VT_EQ(nvmlDeviceGetHandleByIndex_v2(i, &d), NVML_SUCCESS);
    VT_EQ(nvmlDeviceGetUUID(d, buf, sizeof buf), NVML_SUCCESS);
    if (strcmp(buf, want))
        fprintf(stderr, "  NVML device %u: %s, want %s\n", i, buf, want);
    VT_CHECK(!strcmp(buf, want));
}

/* NVIDIA_VISIBLE_DEVICES=<uuid>,<uuid>: the fake has exactly those devices, in that order,
 * everywhere (driver, NVML, the region libvgpu writes), FAKEGPU_DEVICES notwithstanding */
static void visible_uuids(void)
{
    int n = 0;
    CUuuid u;
    CUcontext c;
    CUdeviceptr p;
    VT_EQ(cuInit(0), CUDA_SUCCESS);
    VT_EQ(cuDeviceGetCount(&n), CUDA_SUCCESS);
    VT_EQ(n, 2);
    VT_EQ(cuDeviceGetUuid_v2(&u, 1), CUDA_SUCCESS);
    VT_EQ((unsigned char)u.bytes[0], 0x9e);
    VT_EQ((unsigned char)u.bytes[15], 0x12);
    VT_EQ(nvmlInit_v2(), NVML_SUCCESS);
    nvml_uuid_is(0, UUID_A);
    nvml_uuid_is(1, UUID_B);
    VT_CHECK(vt_ctx(0));
    VT_EQ(cuMemAlloc_v2(&p, MiB), CUDA_SUCCESS);
    VT_EQ(cuCtxCreate_v2(&c, 0, 1), CUDA_SUCCESS);
    VT_EQ(cuMemAlloc_v2(&p, MiB), CUDA_SUCCESS);
    int fd = open(vt_region_path(), O_RDONLY);
    lvgpu_region_t *r = mmap(NULL, sizeof *r, PROT_READ, MAP_SHARED, fd, 0);
    VT_CHECK(r != MAP_FAILED);
    VT_CHECK(!strcmp(r->uuids[0], UUID_A));
    VT_CHECK(!strcmp(r->uuids[1], UUID_B));
}

/* anything but a list of GPU UUIDs: the fake's own two devices */
static void fake_uuids(void)
{
    int n = 0;
    VT_EQ(cuInit(0), CUDA_SUCCESS);
    VT_EQ(cuDeviceGetCount(&n), CUDA_SUCCESS);
    VT_EQ(n, 2);
    VT_EQ(nvmlInit_v2(), NVML_SUCCESS);
    nvml_uuid_is(0, "GPU-00010203-0405-0607-0809-0a0b0c0d0e0f");
    nvml_uuid_is(1, "GPU-10111213-1415-1617-1819-1a1b1c1d1e1f");
}

#define OK "LIBVGPU_CONTEXT_OVERHEAD=0"
const struct vt_case vt_cases[] = {
    {"malformed_limit_denies", denied, "CUDA_DEVICE_MEMORY_LIMIT=12x", 1},
    {"malformed_hex_denies", denied, "CUDA_DEVICE_MEMORY_LIMIT=0x100000", 1},
    {"malformed_fraction_denies", denied, "CUDA_DEVICE_MEMORY_LIMIT=1.5g", 1},
    {"malformed_overflow_denies", denied, "CUDA_DEVICE_MEMORY_LIMIT=99999999999999999999", 1},
    {"malformed_per_device", per_device_denied,
     "CUDA_DEVICE_MEMORY_LIMIT=64m;CUDA_DEVICE_MEMORY_LIMIT_1=lots;" OK, 1},
    {"malformed_sm_limit_denies", denied, "CUDA_DEVICE_SM_LIMIT=150", 1},
    {"malformed_silenced_by_level_0", denied, "CUDA_DEVICE_MEMORY_LIMIT=12x;LIBCUDA_LOG_LEVEL=0", 0},
    {"malformed_log_level", allowed, "LIBCUDA_LOG_LEVEL=loud", 1},
    {"silent_by_default", silent, "CUDA_DEVICE_MEMORY_LIMIT=64m;" OK, 0},
    {"oom_logged_at_level_2", silent, "CUDA_DEVICE_MEMORY_LIMIT=64m;LIBCUDA_LOG_LEVEL=2;" OK, 1},
    {"suffix_mi", suffix_binary, "CUDA_DEVICE_MEMORY_LIMIT=96Mi;" OK, 0},
    {"suffix_k", suffix_binary, "CUDA_DEVICE_MEMORY_LIMIT=98304k;" OK, 0},
    {"suffix_gib", suffix_binary, "CUDA_DEVICE_MEMORY_LIMIT_0=96MiB;" OK, 0},
    {"zero_means_unlimited", allowed, "CUDA_DEVICE_MEMORY_LIMIT=0", 0},
    {"disable_control", disable_control, "CUDA_DEVICE_MEMORY_LIMIT=64m;CUDA_DISABLE_CONTROL=true", 0},
    {"malformed_disable_control_keeps_control", denied,
     "CUDA_DEVICE_MEMORY_LIMIT=1k;CUDA_DISABLE_CONTROL=perhaps;" OK, 1},
    {"oversubscribe_accepted", allowed, "CUDA_OVERSUBSCRIBE=true", 0},
    {"unusable_region_denies", denied,
     "CUDA_DEVICE_MEMORY_LIMIT=64m;CUDA_DEVICE_MEMORY_SHARED_CACHE=/proc/none/x.cache", 1},
    {"unusable_region_unlimited_allows", allowed,
     "CUDA_DEVICE_MEMORY_SHARED_CACHE=/proc/none/x.cache", 1},
    {"foreign_region", foreign_region, "CUDA_DEVICE_MEMORY_LIMIT=64m", 1},
    {"foreign_region_version", foreign_region_big, "CUDA_DEVICE_MEMORY_LIMIT=64m", 1},
    {"planted_symlink", planted_symlink, "CUDA_DEVICE_MEMORY_LIMIT=64m", 1},
    {"region_is_a_directory", region_is_a_directory, "CUDA_DEVICE_MEMORY_LIMIT=64m", 1},
    {"envless_inherits", envless_inherits, "CUDA_DEVICE_MEMORY_LIMIT=64m;" OK, 0},
    {"_envless_helper", envless_helper, "CUDA_DEVICE_MEMORY_LIMIT=64m;" OK, -1},
    {"priority_recorded", priority_recorded,
     "CUDA_DEVICE_MEMORY_LIMIT=64m;CUDA_TASK_PRIORITY=3;GPU_CORE_UTILIZATION_POLICY=sometimes;"
     "FAKEGPU_DEVICES=1", 1},
    {"visible_uuids", visible_uuids,
     "NVIDIA_VISIBLE_DEVICES=" UUID_A "," UUID_B ";FAKEGPU_DEVICES=4;CUDA_DEVICE_MEMORY_LIMIT=64m;" OK, 0},
    {"visible_unset", fake_uuids, "", 0},
    {"visible_all", fake_uuids, "NVIDIA_VISIBLE_DEVICES=all", 0},
    {"visible_none", fake_uuids, "NVIDIA_VISIBLE_DEVICES=none", 0},
    {"visible_indexes", fake_uuids, "NVIDIA_VISIBLE_DEVICES=0,1", 0},
    {"visible_list_dir", fake_uuids, "NVIDIA_VISIBLE_DEVICES=/var/run/nvidia-container-devices", 0},
    {"visible_mixed", fake_uuids, "NVIDIA_VISIBLE_DEVICES=" UUID_A ",1", 0},
    {"visible_mig", fake_uuids, "NVIDIA_VISIBLE_DEVICES=MIG-9e41c0d2-6b7f-4a3e-b5d8-2c1f0e9a7b11", 0},
    {"visible_not_hex", fake_uuids, "NVIDIA_VISIBLE_DEVICES=GPU-9e41c0d2-6b7f-4a3e-b5d8-2c1f0e9a7bzz", 0},
    {0},
};
