r"""Inference engines that need no MCMC: numpy, numba and scipy only (no PyMC, PyTensor or Bambi).

:mod:`bambi_meta.engine.exact` is the public entry point: the exact posterior of the three-level
meta-analytic model by quadrature over :math:`(\tau, \rho)`, with :math:`\beta` integrated
analytically, and exact independent draws from it.
"""
