/* fake.h - what the fake driver exposes to tests besides the CUDA API */
#ifndef FAKE_H
#define FAKE_H
#include <stdint.h>
struct fake_proc {
    const char *symbol; /* name passed to cuGetProcAddress */
    int version;        /* first CUDA version this export answers for */
    int flags;          /* 0 default, 2 per-thread default stream */
    const char *export_name;
    void *fn;
};
#define FAKE_CAPTURE_STREAM ((CUstream)(uintptr_t)0xCA97)
#endif
