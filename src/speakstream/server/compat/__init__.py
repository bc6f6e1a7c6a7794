"""Vendor protocols over the shared connection core: one module per vendor."""
