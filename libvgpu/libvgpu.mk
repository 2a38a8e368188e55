# included by the top-level Makefile
.PHONY: libvgpu libvgpu-check
libvgpu:
	$(MAKE) -C libvgpu all

libvgpu-check:
	$(MAKE) -C libvgpu check

TEST_DEPS += libvgpu
