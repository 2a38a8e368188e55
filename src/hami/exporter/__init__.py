"""Readers of what runs on the node outside Python: the libvgpu shared region."""
