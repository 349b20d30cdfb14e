r"""The exact engine: the posterior of :math:`(\tau, \rho)` by quadrature, the rest in closed form.

Given :math:`(\tau, \rho)` the model is Gaussian in the coefficients, so the posterior is a 1-2
dimensional integral (``fit``) over a sinh-mapped grid (``quadrature``, ``mode``)
of a likelihood evaluated for many points per pass over the rows (``kernel``,
``gaussian``); independent draws come by inverse CDF (``inverse_cdf``,
``posterior``); priors on any support (``priors``); the marginal likelihood and Bayes
factors of models given as arrays (``evidence``). NumPy, SciPy and numba only.
"""

from bambi_meta.engine.exact.fit import fit_exact
from bambi_meta.engine.exact.posterior import ExactPosterior
from bambi_meta.engine.exact.priors import BetaPrior, HalfNormalPrior
from bambi_meta.engine.exact.quadrature import QuadratureError

__all__ = ["BetaPrior", "ExactPosterior", "HalfNormalPrior", "QuadratureError", "fit_exact"]
