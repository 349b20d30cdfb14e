"""Effect sizes from raw data (``bmm.escalc``, metafor's measures) and their back-transforms."""
