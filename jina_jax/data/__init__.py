"""Data: readers, cleaning filters, samplers and the offline starter corpus."""
