/* abi_print.c - prints the shared-region ABI as the compiler lays it out:
 * "const NAME VALUE", "size TYPE BYTES", "field TYPE.FIELD OFFSET SIZE", and
 * "export NAME" for every intended exported symbol. Compared with
 * hami.exporter.shm by the Python tests. */
#include <stdio.h>

#include "../include/libvgpu.h"

#define SIZE(t) printf("size %s %zu\n", #t, sizeof(t))
#define FIELD(t, f) printf("field %s.%s %zu %zu\n", #t, #f, offsetof(t, f), sizeof(((t *)0)->f))
#define CONST(n) printf("const %s %lld\n", #n, (long long)(n))

int main(void)
{
    CONST(LVGPU_MAGIC); CONST(LVGPU_MAJOR); CONST(LVGPU_MINOR); CONST(LVGPU_EXT_MAGIC);
    CONST(LVGPU_EXT_VERSION); CONST(LVGPU_MAX_DEVICES); CONST(LVGPU_MAX_PROCS);
    CONST(LVGPU_UUID_LEN); CONST(LVGPU_FILE_SIZE); CONST(LVGPU_LOCK_REGION_OFF);
    CONST(LVGPU_LOCK_SLOT_OFF(0));
    SIZE(lvgpu_devmem_t);
    FIELD(lvgpu_devmem_t, context_size); FIELD(lvgpu_devmem_t, module_size);
    FIELD(lvgpu_devmem_t, data_size); FIELD(lvgpu_devmem_t, offset);
    FIELD(lvgpu_devmem_t, total); FIELD(lvgpu_devmem_t, unused);
    SIZE(lvgpu_devutil_t);
    FIELD(lvgpu_devutil_t, dec_util); FIELD(lvgpu_devutil_t, enc_util);
    FIELD(lvgpu_devutil_t, sm_util); FIELD(lvgpu_devutil_t, unused);
    SIZE(lvgpu_slot_t);
    FIELD(lvgpu_slot_t, pid); FIELD(lvgpu_slot_t, hostpid); FIELD(lvgpu_slot_t, used);
    FIELD(lvgpu_slot_t, monitorused); FIELD(lvgpu_slot_t, device_util);
    FIELD(lvgpu_slot_t, status); FIELD(lvgpu_slot_t, seqlock); FIELD(lvgpu_slot_t, unused);
    SIZE(lvgpu_ext_t);
    FIELD(lvgpu_ext_t, magic); FIELD(lvgpu_ext_t, version); FIELD(lvgpu_ext_t, flags);
    FIELD(lvgpu_ext_t, reserved0); FIELD(lvgpu_ext_t, generation); FIELD(lvgpu_ext_t, reserved1);
    SIZE(lvgpu_region_t);
    FIELD(lvgpu_region_t, initialized_flag); FIELD(lvgpu_region_t, major_version);
    FIELD(lvgpu_region_t, minor_version); FIELD(lvgpu_region_t, sm_init_flag);
    FIELD(lvgpu_region_t, owner_pid); FIELD(lvgpu_region_t, ext);
    FIELD(lvgpu_region_t, device_num); FIELD(lvgpu_region_t, uuids);
    FIELD(lvgpu_region_t, limit); FIELD(lvgpu_region_t, sm_limit);
    FIELD(lvgpu_region_t, procs); FIELD(lvgpu_region_t, proc_num);
    FIELD(lvgpu_region_t, utilization_switch); FIELD(lvgpu_region_t, recent_kernel);
    FIELD(lvgpu_region_t, priority); FIELD(lvgpu_region_t, last_kernel_time);
    FIELD(lvgpu_region_t, sem_postinit);
#define X(n) printf("export %s\n", #n);
    LIBVGPU_CUDA_EXPORTS(X) LIBVGPU_NVML_EXPORTS(X)
#undef X
    printf("export dlsym\n");
    return 0;
}
