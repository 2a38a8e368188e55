/* harness.c - runs the cases of one test program (see harness.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#ifndef VT_BUILD_DIR
#define VT_BUILD_DIR "."
#endif
#ifndef VT_PRELOAD_FIRST
#define VT_PRELOAD_FIRST ""
#endif
#define CASE_TIMEOUT_S 120

extern char **environ;

void vt_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "  CHECK FAILED %s:%d: %s\n", file, line, what);
    fflush(stderr);
    _exit(1);
}

const char *vt_dir(void) { return getenv("VT_DIR"); }
const char *vt_region_path(void) { return getenv("CUDA_DEVICE_MEMORY_SHARED_CACHE"); }

uint64_t vt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const struct vt_case *lookup(const char *name)
{
    for (const struct vt_case *c = vt_cases; c->name; c++)
        if (!strcmp(c->name, name))
            return c;
    return NULL;
}

static void clean_env(void)
{
    static const char *const prefixes[] = {"CUDA_", "LIBCUDA_", "GPU_CORE_", "LIBVGPU_",
                                           "FAKEGPU_", "LD_PRELOAD", "VT_",
                                           "NVIDIA_VISIBLE_DEVICES"};
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; *e; e++) {
            for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
                if (!strncmp(*e, prefixes[i], strlen(prefixes[i]))) {
                    char name[256];
                    size_t n = strcspn(*e, "=");
                    snprintf(name, sizeof name, "%.*s", (int)n, *e);
                    unsetenv(name);
                    again = 1;
                    break;
                }
            }
            if (again)
                break;
        }
    }
}

static void child(const struct vt_case *c, const char *dir, const char *self)
{
    char buf[4096], path[512];
    int nopreload = 0;
    clean_env();
    snprintf(path, sizeof path, "%s/region.cache", dir);
    setenv("CUDA_DEVICE_MEMORY_SHARED_CACHE", path, 1);
    snprintf(buf, sizeof buf, "%s", c->env ? c->env : "");
    for (char *save = NULL, *kv = strtok_r(buf, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            continue;
        *eq = 0;
        if (!strcmp(kv, "VT_NOPRELOAD"))
            nopreload = 1;
        else
            setenv(kv, eq + 1, 1);
    }
    if (getenv("VT_DEFAULT_PATH"))
        unsetenv("CUDA_DEVICE_MEMORY_SHARED_CACHE");
    if (!nopreload) {
        snprintf(path, sizeof path, "%s%s%s/libvgpu.so", VT_PRELOAD_FIRST,
                 VT_PRELOAD_FIRST[0] ? ":" : "", VT_BUILD_DIR);
        setenv("LD_PRELOAD", path, 1);
    }
    snprintf(path, sizeof path, "%s/fake", VT_BUILD_DIR);
    setenv("LD_LIBRARY_PATH", path, 1);
    setenv("VT_CHILD", "1", 1);
    setenv("VT_DIR", dir, 1);
    setenv("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1", 1);
    snprintf(path, sizeof path, "%s/stderr", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        dup2(fd, 2);
        close(fd);
    }
    execl(self, self, c->name, (char *)NULL);
    _exit(127);
}

static void rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[600];
    while (d && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static int run_case(const struct vt_case *c, const char *self)
{
    char dir[] = "/tmp/vgpu-test.XXXXXX", path[600], line[1024];
    int status = 0, lines = 0, ok;
    pid_t pid;
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    pid = fork();
    if (pid == 0)
        child(c, dir, self);
    for (int waited = 0;; waited++) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (waited >= CASE_TIMEOUT_S * 20) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "  timed out after %d s\n", CASE_TIMEOUT_S);
            break;
        }
        usleep(50000);
    }
    snprintf(path, sizeof path, "%s/stderr", dir);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) {
        fputs(line, stderr);
        if (strstr(line, "[libvgpu "))
            lines++;
    }
    if (f)
        fclose(f);
    ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok && c->stderr_lines >= 0 && lines != c->stderr_lines) {
        fprintf(stderr, "  expected %d libvgpu log lines on stderr, saw %d\n", c->stderr_lines,
                lines);
        ok = 0;
    }
    if (!WIFEXITED(status))
        fprintf(stderr, "  killed by signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    rmtree(dir);
    printf("%s %s\n", ok ? "PASS" : "FAIL", c->name);
    fflush(stdout);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 2;
    self[n] = 0;
    if (getenv("VT_CHILD") && argc == 2) {
        const struct vt_case *c = lookup(argv[1]);
        if (!c)
            return 2;
        c->fn();
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "--list")) {
        for (const struct vt_case *c = vt_cases; c->name; c++)
            if (c->name[0] != '_') /* helpers run only from other cases */
                printf("%s\n", c->name);
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "--all")) {
        int rc = 0;
        for (const struct vt_case *c = vt_cases; c->name; c++)
            if (c->name[0] != '_')
                rc |= run_case(c, self);
        return rc;
    }
    if (argc == 2 && lookup(argv[1]))
        return run_case(lookup(argv[1]), self);
    fprintf(stderr, "usage: %s --list | --all | CASE\n", argv[0]);
    return 2;
}
