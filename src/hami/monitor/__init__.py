"""`hami monitor`: the node-side vGPU monitor (per-container metrics from libvgpu's regions)."""
