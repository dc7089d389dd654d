"""Designs people usually build instead, measured on the same workload as the panel."""
