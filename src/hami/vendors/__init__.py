"""Accelerator vendors: one module each, behind `hami.core.vendor.Vendor`."""
