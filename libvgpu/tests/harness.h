/*
 * harness.h - a small test registry for the libvgpu C tests.
 *
 * A test program defines vt_cases[] (ended by {0}). `prog --list` prints the
 * case names, `prog NAME` runs one case, `prog --all` runs them all. Each case
 * runs in a fresh process with a clean environment: only its own `env`
 * ("K=V;K=V"), a private shared-region file, LD_PRELOAD=libvgpu.so (unless the
 * env has VT_NOPRELOAD=1) and the fake driver on LD_LIBRARY_PATH. Its stderr
 * is captured; when stderr_lines >= 0, exactly that many libvgpu log lines
 * must appear. Cases whose name starts with '_' are helpers that other cases
 * exec; --list and --all leave them out.
 */
#ifndef VT_HARNESS_H
#define VT_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct vt_case {
    const char *name;
    void (*fn)(void);
    const char *env;
    int stderr_lines; /* -1: any */
};
extern const struct vt_case vt_cases[];

__attribute__((noreturn)) void vt_fail(const char *file, int line, const char *what);
#define VT_CHECK(c) do { if (!(c)) vt_fail(__FILE__, __LINE__, #c); } while (0)
#define VT_EQ(a, b) do { unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b); \
    if (a_ != b_) { fprintf(stderr, "  %s = %llu, %s = %llu\n", #a, a_, #b, b_); \
        vt_fail(__FILE__, __LINE__, #a " == " #b); } } while (0)
#define MiB (1ull << 20)

const char *vt_dir(void);         /* the case's private directory */
const char *vt_region_path(void); /* its shared-region file */
uint64_t vt_now_ns(void);

#endif
