"""Statistics on NumPy arrays.

No Bambi, PyMC or xarray here: cluster sums, conditional effects, heterogeneity, tables, the
marginal likelihood and REML.
"""
