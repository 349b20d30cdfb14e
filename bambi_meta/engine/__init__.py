"""How posteriors are computed.

The PyTensor likelihood, its fused numba kernel, the compiled model and nutpie, refits, and the
exact engine (quadrature over tau and rho).
"""
