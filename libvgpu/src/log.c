/* log.c - the stderr line writer, below everything (config.c's vgpu__log gates it by
 * LIBCUDA_LOG_LEVEL); silent in normal operation. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vgpu.h"

static const char *const level_name[] = {"", "ERROR", "WARN", "INFO", "DEBUG"};

/* Write one line at `level` if `log_level` lets it through. Uses write(2) only. */
void vgpu__log_raw(int level, int log_level, const char *msg)
{
    char line[768];
    int n;
    if (level > log_level || level < VGPU_LOG_ERROR || level > VGPU_LOG_DEBUG)
        return;
    n = snprintf(line, sizeof line, "[libvgpu %d] %s: %s\n", (int)getpid(), level_name[level],
                 msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = (int)sizeof line - 1;
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
