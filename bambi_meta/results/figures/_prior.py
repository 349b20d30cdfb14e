r"""Prior distributions of what ``plot_posterior`` shows: analytic where they are, else simulated.

A model parameter with a prior of its own (tau, rho, a coefficient that centring leaves alone)
has its density in closed form: SciPy's, for the PyMC distributions SciPy shares, else PyMC's
``logp`` compiled once per prior. Everything else is a function of several priors and is
simulated: draws of tau and rho (or of the scale-model coefficients, giving tau_i and rho_i per
row) through :func:`bambi_meta.stats.heterogeneity.heterogeneity_draws` with the typical sampling
variance the summary uses; a raw-scale intercept :math:`\beta_0 - \bar x \beta_1` (the model
puts its prior on the intercept at the moderator means) is Normal when its parts are Normal,
and simulated otherwise. SciPy draws cost milliseconds; PyMC draws (for distributions SciPy does
not share) compile a function, so they are kept per prior, size and seed.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bambi_meta.bambi_ext.centring import coefficient_variables, raw_scale_transform
from bambi_meta.bambi_ext.priors import log_half_normal
from bambi_meta.results.figures._kde import BoundedDensity
from bambi_meta.stats.heterogeneity import heterogeneity_draws, typical_sampling_variance

# Values per array in one block of simulated (draw, row) heterogeneity (as ``_datatree``).
BLOCK_VALUES = 2**20


# SciPy equivalents of PyMC distributions (PyMC's argument names); a prior whose arguments do
# not fit one of these signatures falls back on PyMC.
SCIPY: dict[str, Callable] = {
    "Normal": lambda mu=0.0, sigma=1.0: stats.norm(mu, sigma),
    "HalfNormal": lambda sigma=1.0: stats.halfnorm(scale=sigma),
    "Beta": lambda alpha, beta: stats.beta(alpha, beta),
    "Logistic": lambda mu=0.0, s=1.0: stats.logistic(mu, s),
    "StudentT": lambda nu, mu=0.0, sigma=1.0: stats.t(nu, mu, sigma),
    "Cauchy": lambda alpha=0.0, beta=1.0: stats.cauchy(alpha, beta),
    "HalfCauchy": lambda beta=1.0: stats.halfcauchy(scale=beta),
    "Uniform": lambda lower=0.0, upper=1.0: stats.uniform(lower, upper - lower),
    "Exponential": lambda lam=1.0: stats.expon(scale=1.0 / lam),
    "Gamma": lambda alpha, beta: stats.gamma(alpha, scale=1.0 / beta),
    "InverseGamma": lambda alpha, beta=1.0: stats.invgamma(alpha, scale=beta),
    "LogNormal": lambda mu=0.0, sigma=1.0: stats.lognorm(sigma, scale=np.exp(mu)),
}


class LogOf:
    """The distribution of log X for a positive SciPy distribution X (``LogHalfNormal``)."""

    def __init__(self, positive):
        self.positive = positive

    def pdf(self, a):
        a = np.asarray(a, dtype=float)
        return self.positive.pdf(np.exp(a)) * np.exp(a)

    def ppf(self, q):
        return np.log(self.positive.ppf(q))

    def rvs(self, size, random_state):
        return np.log(self.positive.rvs(size=size, random_state=random_state))


def scipy_distribution(prior, index: int | None = None):
    """The SciPy distribution of a Bambi prior, or None when SciPy has no match.

    ``index`` picks one element of array-valued arguments (one level of a categorical term).
    """
    args = {}
    for key, value in prior.args.items():
        value = np.asarray(value)
        if value.dtype == object:
            return None  # a hyperprior: not a fixed distribution
        if value.ndim and value.size > 1:
            if index is None:
                return None
            value = value.reshape(-1)[index]
        args[key] = float(value)
    if getattr(prior, "dist", None) is log_half_normal:
        return LogOf(stats.halfnorm(scale=args["sigma"]))
    if getattr(prior, "dist", None) is not None or prior.name not in SCIPY:
        return None
    try:
        return SCIPY[prior.name](**args)
    except TypeError:  # another parametrisation (e.g. Normal with tau=)
        return None


_PYMC_DRAWS: dict[tuple, np.ndarray] = {}
_PYMC_LOGP: dict[str, Callable] = {}


def _pymc_variable(prior, model_context):
    import pymc as pm

    def convert(value):
        if hasattr(value, "name") and hasattr(value, "args"):  # a nested bambi Prior
            return getattr(pm, value.name).dist(**{k: convert(v) for k, v in value.args.items()})
        return value

    args = {key: convert(value) for key, value in prior.args.items()}
    if getattr(prior, "dist", None) is not None:
        with model_context:
            return prior.dist("prior", **args)
    return getattr(pm, prior.name).dist(**args)


def prior_draws(prior, n: int, rng: np.random.Generator, index: int | None = None) -> np.ndarray:
    """``n`` draws from a Bambi prior (a fixed number gives ``n`` copies of it)."""
    if isinstance(prior, (int, float, np.number)):
        return np.full(n, float(prior))
    distribution = scipy_distribution(prior, index)
    if distribution is not None:
        return np.asarray(distribution.rvs(size=n, random_state=rng), dtype=float)
    seed = int(rng.integers(2**31))
    key = (repr(prior), n, seed)
    if key not in _PYMC_DRAWS:
        import pymc as pm

        variable = _pymc_variable(prior, pm.Model())
        _PYMC_DRAWS[key] = np.asarray(pm.draw(variable, draws=n, random_seed=seed), dtype=float)
    draws = _PYMC_DRAWS[key]
    if draws.ndim > 1:
        draws = draws.reshape(n, -1)[:, 0 if index is None else index]
    return draws


def prior_pdf(prior, values: np.ndarray, index: int | None = None) -> np.ndarray:
    """Density of a Bambi prior at ``values``: SciPy's, else PyMC's ``logp`` (compiled once)."""
    values = np.asarray(values, dtype=float)
    distribution = scipy_distribution(prior, index)
    if distribution is not None:
        return np.asarray(distribution.pdf(values), dtype=float)
    key = repr(prior)
    if key not in _PYMC_LOGP:
        import pymc as pm
        import pytensor
        import pytensor.tensor as pt

        points = pt.dvector("points")
        logp = pm.logp(_pymc_variable(prior, pm.Model()), points)
        _PYMC_LOGP[key] = pytensor.function([points], logp, mode="FAST_COMPILE")
    out = np.exp(np.asarray(_PYMC_LOGP[key](values.ravel()), dtype=float)).reshape(values.shape)
    return out if index is None or out.ndim == values.ndim else out[..., index]


@dataclass
class PriorCurve:
    """A prior to draw: its density and its quantiles."""

    density: Callable[[np.ndarray], np.ndarray]
    quantile: Callable[[np.ndarray], np.ndarray]


def analytic_curve(prior, index: int | None = None) -> PriorCurve:
    """The curve of a prior in closed form (quantiles from SciPy or from draws)."""
    distribution = scipy_distribution(prior, index)
    if distribution is not None:
        return PriorCurve(distribution.pdf, distribution.ppf)
    draws = prior_draws(prior, 20_000, np.random.default_rng(0), index)
    return PriorCurve(lambda x: prior_pdf(prior, x, index), lambda q: np.quantile(draws, q))


def simulated_curve(draws: np.ndarray, lower: float, upper: float, scale: str) -> PriorCurve:
    """The curve of a simulated prior: a bounded KDE of its draws."""
    density = BoundedDensity(draws, lower, upper, scale)
    return PriorCurve(density, lambda q: np.quantile(draws, q))


# ---------------------------------------------------------------------------------------------
# Coefficients
# ---------------------------------------------------------------------------------------------
def coefficient_columns(component) -> list[tuple[str, int, object, int]]:
    """(label, design column, Bambi term, index within the term) for each coefficient.

    Labels are as the posterior (and ``bmm.summary``) name them: the variable, or
    ``variable[level]`` for a term with several columns.
    """
    columns = []
    for variable, block, term in coefficient_variables(component):
        width = block.stop - block.start
        levels = _term_levels(term, width)
        for position in range(width):
            label = variable if width == 1 else f"{variable}[{levels[position]}]"
            columns.append((label, block.start + position, term, position))
    return columns


def _term_levels(term, width: int) -> list[str]:
    levels = getattr(term, "levels", None)
    if levels is None or len(levels) != width:
        return [str(position) for position in range(width)]
    return [str(level) for level in levels]


def coefficient_prior(
    model, parameter: str, label: str, n: int, rng: np.random.Generator
) -> PriorCurve:
    """Prior of a raw-scale coefficient of ``parameter``'s formula (``mu``, ``tau``, ``rho``).

    The model puts the priors on the coefficients of its centred design; on the raw scale
    (what the posterior stores) a coefficient is a linear combination ``A[j] @ beta_centred``.
    When that is the coefficient itself its own prior is returned; a combination of Normal
    priors is Normal; anything else is simulated.
    """
    component = model.parameters[parameter]
    columns = coefficient_columns(component)
    by_label = {entry[0]: entry for entry in columns}
    _, column, term, position = by_label[label]
    transform = raw_scale_transform(model, parameter)
    row = np.eye(len(columns))[column] if transform is None else np.asarray(transform[column])
    involved = [j for j in range(len(columns)) if abs(row[j]) > 1e-12]
    if involved == [column] and np.isclose(row[column], 1.0):
        return analytic_curve(term.prior, _index(term, position))
    parts = [(row[j], columns[j][2].prior, _index(columns[j][2], columns[j][3])) for j in involved]
    normals = [scipy_distribution(prior, index) for _, prior, index in parts]
    if all(isinstance(getattr(d, "dist", None), type(stats.norm)) for d in normals):
        mean = sum(weight * d.mean() for (weight, _, _), d in zip(parts, normals, strict=True))
        sd = np.sqrt(
            sum((weight * d.std()) ** 2 for (weight, _, _), d in zip(parts, normals, strict=True))
        )
        normal = stats.norm(mean, sd)
        return PriorCurve(normal.pdf, normal.ppf)
    draws = sum(weight * prior_draws(prior, n, rng, index) for weight, prior, index in parts)
    return simulated_curve(draws, -np.inf, np.inf, "identity")


def _index(term, position: int) -> int | None:
    return position if _term_width(term) > 1 else None


def _term_width(term) -> int:
    levels = getattr(term, "levels", None)
    return len(levels) if levels is not None else 1


# ---------------------------------------------------------------------------------------------
# Heterogeneity
# ---------------------------------------------------------------------------------------------
def heterogeneity_prior_draws(model, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` prior draws of every row of ``bmm.summary_heterogeneity``.

    tau and rho (or, with a scale formula, its coefficients on the centred design, giving
    tau_i = exp(z_i' gamma) and rho_i = expit(w_i' delta) per row) are drawn from their priors
    and summarised as the posterior draws are: by ``heterogeneity_draws`` with the typical
    sampling variance of the data and the location design.
    """
    design = np.asarray(model.parameters["mu"].design.common.design_matrix)
    typical = typical_sampling_variance(model.meta_data().variances, design)
    names = ["tau", "rho"] if model.family.has_clusters else ["tau"]
    linear = {name: _linear_predictor_draws(model, name, n, rng) for name in names}
    rows = max(1 if design is None else design.shape[0] for _, design in linear.values())
    per_block = max(1, BLOCK_VALUES // rows)
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, per_block):
        block = slice(start, min(n, start + per_block))
        tau = _on_rows(model, "tau", linear["tau"], block)
        rho = _on_rows(model, "rho", linear["rho"], block) if "rho" in linear else None
        for name, values in heterogeneity_draws(tau, rho, typical).items():
            out.setdefault(name, []).append(values)
    return {name: np.concatenate(values) for name, values in out.items()}


def _linear_predictor_draws(model, name: str, n: int, rng: np.random.Generator):
    """Prior draws of a parameter's coefficients (n, p) and its design (k, p).

    A parameter without a formula gives (n, 1) draws of itself and no design.
    """
    component = model.parameters[name]
    if name not in model.conditional_parameters:
        return prior_draws(component.prior, n, rng)[:, np.newaxis], None
    design = np.asarray(component.design.common.design_matrix, dtype=float)
    coefficients = np.column_stack(
        [
            prior_draws(term.prior, n, rng, _index(term, position))
            for _, _, term, position in coefficient_columns(component)
        ]
    )
    return coefficients, design


def _on_rows(model, name: str, linear, block: slice) -> np.ndarray:
    """The parameter per (draw, row) for the draws in ``block``."""
    coefficients, design = linear
    if design is None:
        return coefficients[block]
    return model.family.link[name].linkinv(coefficients[block] @ design.T)
