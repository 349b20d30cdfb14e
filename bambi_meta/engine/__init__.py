"""How posteriors are computed.

The PyTensor likelihood, its fused numba kernel, the compiled model and nutpie, refits, and the
exact engine (:mod:`bambi_meta.engine.exact`: quadrature over tau and rho and exact independent
draws; numpy, numba and scipy only, no Bambi, PyMC or PyTensor).
"""
