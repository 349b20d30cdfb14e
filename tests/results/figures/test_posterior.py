"""plot_posterior: every summary row, its prior (analytic or simulated) and the x range."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import stats

import bambi_meta as bmm
from bambi_meta.stats.heterogeneity import typical_sampling_variance

matplotlib.use("Agg")

# Silverman's rule (the kernel estimate's bandwidth) and the roughness of a Gaussian kernel,
# R(K) = 1 / (2 sqrt(pi)), for the Monte Carlo error of a kernel density estimate below.
KERNEL_ROUGHNESS = 1 / (2 * np.sqrt(np.pi))


def curves(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines()}


@pytest.mark.parametrize("parameter", ["tau", "rho"])
def test_posterior_and_prior_inside_the_support(konstantopoulos_fit, parameter):
    model, idata = konstantopoulos_fit
    ax = bmm.plot_posterior(model, idata, parameter)
    lines = curves(ax)
    assert set(lines) == {"posterior", "prior"}
    x = lines["posterior"].get_xdata()
    # the axis starts at the support's bound (0), so the HalfNormal's mode at 0 is in view
    assert x[0] == 0 and ax.get_xlim()[0] == 0
    assert parameter != "rho" or (x[-1] == 1 and ax.get_xlim()[1] == 1)
    assert ax.get_xlabel() == parameter and ax.get_ylabel() == "Density"
    if parameter == "tau":  # HalfNormal(UISD/4 = sqrt(2)/4) prior, analytic
        prior = lines["prior"]
        sigma = np.sqrt(2) / 4
        np.testing.assert_allclose(
            prior.get_ydata()[1:], stats.halfnorm(scale=sigma).pdf(prior.get_xdata()[1:])
        )
        # the posterior (tau about 0.2-0.5) is not squashed: it spans a third of the axis or more
        low, high = np.quantile(idata.posterior["tau"], [0.001, 0.999])
        assert (high - low) / (x[-1] - x[0]) > 1 / 3
    plt.close(ax.figure)


def test_every_summary_row_is_drawn_as_a_density(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    rows = [*bmm.summary(model, idata).index, *bmm.summary_heterogeneity(model, idata).index]
    assert {"mu", "tau2", "I2", "H2", "tau [between]", "I2 [within]"} <= set(rows)
    supports = {"rho": (0, 1), "H2": (1, np.inf)}
    for row in dict.fromkeys(rows):
        ax = bmm.plot_posterior(model, idata, row, prior_draws=20_000, random_seed=3)
        lines = curves(ax)
        x, y = lines["posterior"].get_data()
        # a density in the row's units (I2 per percentage point): the axis holds at least the
        # posterior's 0.1%-99.9% range, so it integrates to 0.998 plus kernel spill (< 1%)
        assert 0.98 < np.trapezoid(y, x) < 1.01, row
        low, high = supports.get(row, (0, 100) if row.startswith("I2") else (0, np.inf))
        if row != "mu":
            assert x[0] >= low and x[-1] <= high, row
        assert ax.get_xlabel() == (f"{row} (%)" if row.startswith("I2") else row)
        plt.close(ax.figure)


def relative_kde_tolerance(u, sigma, n):
    """Relative error bound of the kernel estimate of a HalfNormal(sigma) density on u = tau.

    Monte Carlo: the SD of a kernel estimate is sqrt(R(K) f / (n h)), i.e. relative
    sqrt(R(K) / (n h f)); 4 of them. Smoothing bias: h^2 f''/2, relative h^2 |u^2/sigma^2 - 1| /
    (2 sigma^2) for the HalfNormal (reflection at 0 keeps it so at the bound). The bandwidth
    (Silverman's robust rule, 0.9 min(SD, IQR/1.349) n^-1/5 of the draws) is bracketed by that
    of the exact SD and IQR (+-10% for their sampling error), the smaller in the Monte Carlo
    term and the larger in the bias. 0.3% for binning and interpolation.
    """
    half_normal = stats.halfnorm(scale=sigma)
    spread = min(half_normal.std(), np.subtract(*half_normal.ppf([0.75, 0.25])) / 1.349)
    h_small, h_large = 0.9 * spread * n**-0.2 * np.array([0.9, 1.1])
    monte_carlo = 4 * np.sqrt(KERNEL_ROUGHNESS / (n * h_small * half_normal.pdf(u)))
    bias = h_large**2 * np.abs(u**2 / sigma**2 - 1) / (2 * sigma**2)
    return monte_carlo + bias + 0.003


@pytest.mark.parametrize("quantity", ["tau2", "I2"])
def test_simulated_prior_of_tau2_and_I2_is_the_change_of_variables(konstantopoulos_fit, quantity):
    """The prior curve of tau2 / I2 (from 400,000 simulated draws) against its exact density.

    With tau ~ HalfNormal(sigma): p(tau2) = p_tau(sqrt(tau2)) / (2 sqrt(tau2)), and
    I2 = 100 tau2 / (tau2 + v~), so tau = sqrt(v~ I2 / (100 - I2)) and
    p(I2) = p_tau(tau) dtau/dI2 with dtau/dI2 = 100 v~ / (2 tau (100 - I2)^2).
    Both are estimated on a scale proportional to tau (sqrt(tau2); sqrt(I2 / (100 - I2)) =
    tau / sqrt(v~)), where the draws are HalfNormal: the tolerance is that estimate's error.
    """
    model, idata = konstantopoulos_fit
    sigma = float(model.parameters["tau"].prior.args["sigma"])
    assert sigma == pytest.approx(np.sqrt(2) / 4)  # SMD: UISD/4
    design = np.asarray(model.parameters["mu"].design.common.design_matrix)
    typical = typical_sampling_variance(model.meta_data().variances, design)
    ax = bmm.plot_posterior(model, idata, quantity, random_seed=11)
    x, y = curves(ax)["prior"].get_data()
    with np.errstate(divide="ignore"):  # I2 = 100 is tau = inf
        tau = np.sqrt(x) if quantity == "tau2" else np.sqrt(typical * x / (100 - x))
    # where the HalfNormal has density (tau up to 1.7 sigma) and away from a bound's first bin
    inside = (tau > 0.05) & (tau < 1.7 * sigma)
    assert inside.sum() > 20
    x, y, tau = x[inside], y[inside], tau[inside]
    jacobian = 1 / (2 * tau) if quantity == "tau2" else 100 * typical / (2 * tau * (100 - x) ** 2)
    exact = stats.halfnorm(scale=sigma).pdf(tau) * jacobian
    tolerance = relative_kde_tolerance(tau, sigma, 400_000)
    assert np.all(np.abs(y / exact - 1) < tolerance), np.max(np.abs(y / exact - 1) / tolerance)
    assert np.max(tolerance) < 0.1  # informative: a wrong scale or factor 2 would fail
    plt.close(ax.figure)


def test_prior_of_a_between_cluster_quantity_matches_monte_carlo(konstantopoulos_fit):
    """tau [between] = tau sqrt(rho), tau ~ HalfNormal(sqrt(2)/4), rho ~ Beta(1, 1).

    Independent draws (NumPy, another seed) give the prior probability of five intervals; the
    curve's integral over each must agree within 4 binomial SDs of the difference of the two
    simulations (200,000 draws here, 400,000 in the curve: bounded by 2 p (1 - p) / 200,000) plus
    0.002 for the kernel's smoothing across the interval edges.
    """
    model, _ = konstantopoulos_fit
    rng = np.random.default_rng(2024)
    n = 200_000
    between = np.abs(rng.normal(0, np.sqrt(2) / 4, n)) * np.sqrt(rng.uniform(size=n))
    edges = np.array([0.0, 0.05, 0.1, 0.2, 0.4, 0.8])
    fine = np.linspace(0, 0.8, 4001)
    density = bmm.prior_density(model, "tau [between]", fine, random_seed=5)
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (fine >= low) & (fine <= high)
        curve = np.trapezoid(density[inside], fine[inside])
        share = np.mean((between >= low) & (between < high))
        error = 4 * np.sqrt(2 * share * (1 - share) / n) + 0.002
        assert abs(curve - share) < error, (low, high, curve, share)


def test_raw_scale_intercept_prior_of_a_meta_regression(bcg_ablat_fit):
    """The prior is on the intercept at mean(ablat); the posterior's Intercept is at ablat = 0.

    Intercept_raw = Intercept_centred - mean(ablat) * slope, both Normal: N(0, sqrt(s0^2 +
    mean^2 s1^2)) with s0 = UISD/2 = 1 and s1 = UISD/4 / sd(ablat) for RR (UISD 2).
    """
    model, idata = bcg_ablat_fit
    ablat = model.data["ablat"].to_numpy(dtype=float)
    slope_sd = 0.5 / np.std(ablat, ddof=1)
    ax = bmm.plot_posterior(model, idata, "Intercept")
    x, y = curves(ax)["prior"].get_data()
    expected = stats.norm(0, np.sqrt(1 + (ablat.mean() * slope_sd) ** 2)).pdf(x)
    np.testing.assert_allclose(y, expected, rtol=1e-10)
    plt.close(ax.figure)
    ax = bmm.plot_posterior(model, idata, "ablat", prior=False)
    assert set(curves(ax)) == {"posterior"}
    np.testing.assert_allclose(
        bmm.prior_density(model, "ablat", [0.0, 0.01]), stats.norm(0, slope_sd).pdf([0.0, 0.01])
    )
    plt.close(ax.figure)


def test_unknown_and_fixed_parameters_are_refused(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    with pytest.raises(ValueError, match=r"'parameter' must be one of 'mu', 'tau', 'rho', .*'H2'"):
        bmm.plot_posterior(model, idata, "sigma")
    _, ax = plt.subplots()
    assert bmm.plot_posterior(model, idata, "Intercept", ax=ax) is ax  # the same as "mu"
    plt.close(ax.figure)
    common = bmm.MetaModel(
        "yi | se(vi) ~ 1", bmm.load_dataset("dat.bcg"), measure="RR", priors={"tau": 0}
    )
    fit = common.fit(random_seed=1)
    with pytest.raises(ValueError, match=r"'tau' is fixed at 0 in this model"):
        bmm.plot_posterior(common, fit, "tau")
    with pytest.raises(ValueError, match=r"'I2' is constant \(0\) in this model \(tau is fixed"):
        bmm.plot_posterior(common, fit, "I2")
    with pytest.raises(ValueError, match=r"'parameter' must be one of 'mu', 'tau', 'tau2', 'I2'"):
        bmm.plot_posterior(common, fit, "rho")  # no clusters: no rho


def test_location_scale_rows_and_their_simulated_priors(small_scale_fit):
    """'tau ~ z', 'rho ~ w': tau and rho vary by row, so every heterogeneity row is derived."""
    model, idata = small_scale_fit
    rows = [*bmm.summary(model, idata).index, *bmm.summary_heterogeneity(model, idata).index]
    assert {"tau_Intercept", "tau_z", "rho_Intercept", "rho_w", "tau", "rho"} <= set(rows)
    for row in dict.fromkeys(rows):
        ax = bmm.plot_posterior(model, idata, row, prior_draws=20_000, random_seed=1)
        lines = curves(ax)
        x, y = lines["posterior"].get_data()
        assert 0.98 < np.trapezoid(y, x) < 1.01, row
        prior_x, prior_y = lines["prior"].get_data()
        assert np.all(np.isfinite(prior_y[1:])) and np.all(prior_y >= 0), row
        plt.close(ax.figure)
    # tau_Intercept (raw scale, log tau at z = 0) = a - mean(z) b, with the centred intercept
    # a = log|N(0, UISD/4)| (log of the default HalfNormal) and the slope b ~ N(0, 0.5 / sd(z)):
    # independent draws give the prior probability of four intervals, compared as in
    # test_prior_of_a_between_cluster_quantity_matches_monte_carlo
    z = model.data["z"].to_numpy()
    rng = np.random.default_rng(99)
    n = 200_000
    centred = np.log(np.abs(rng.normal(0, np.sqrt(2) / 4, n)))
    raw = centred - z.mean() * rng.normal(0, 0.5 / np.std(z, ddof=1), n)
    fine = np.linspace(-6, 2, 4001)
    density = bmm.prior_density(model, "tau_Intercept", fine, random_seed=4)
    for low, high in [(-6, -3), (-3, -1.5), (-1.5, -0.5), (-0.5, 2)]:
        inside = (fine >= low) & (fine <= high)
        share = np.mean((raw >= low) & (raw < high))
        error = 4 * np.sqrt(2 * share * (1 - share) / n) + 0.002
        assert abs(np.trapezoid(density[inside], fine[inside]) - share) < error, (low, high)
