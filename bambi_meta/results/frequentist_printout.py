"""The printout of a frequentist fit, as metafor prints ``rma.mv`` and ``rma.uni`` results.

Variance components are named by factor (``sigma^2.1 ... district``, ``sigma^2.2 ...
district/school``) beside this package's tau^2 and rho; p-values below 1e-4 print as ``<.0001``.
"""

import numpy as np
import pandas as pd

from bambi_meta.results.printing import render_text

_DESCRIPTION = {
    "uni": "random-effects model",
    "nested": "multilevel model, nested variance components",
    "CS": "multilevel model, compound symmetry",
}


def printout(fit) -> str:
    """The text of a ``FrequentistFit``, laid out as metafor prints it (4 decimals)."""
    cluster, estimate = fit.factors
    intercept = np.all(fit.data.X == 1.0, axis=0)
    names = fit.coefficients.index
    moderators = [name for name, i in zip(names, intercept, strict=True) if not i]
    mods = f", mods = ~ {' + '.join(moderators)}" if moderators else ""
    mods += " - 1" if moderators and not intercept.any() else ""
    call = {
        "uni": f"rma.uni(yi, vi{mods})",
        "nested": f"rma.mv(yi, vi{mods}, random = ~ 1 | {cluster}/{estimate})",
        "CS": f'rma.mv(yi, vi{mods}, random = ~ {estimate} | {cluster}, struct = "CS")',
    }[fit.struct]
    clusters = ""
    if fit.n_clusters is not None:
        named = "" if cluster == "cluster" else f" ({cluster})"
        clusters = f" in {fit.n_clusters} clusters{named}"
    lines = [
        f"Frequentist {_DESCRIPTION[fit.struct]}; method: {fit.method}",
        f"metafor: {call}",
        f"k = {fit.k} estimates{clusters}",
        f"logLik = {fit.loglik:.4f}, deviance = {fit.deviance:.4f}, AIC = {fit.AIC:.4f}, "
        f"BIC = {fit.BIC:.4f}, AICc = {fit.AICc:.4f}",
        "",
        *_heterogeneity_lines(fit),
        "",
        "Test for (residual) heterogeneity:",
        f"QE(df = {fit.QE_df}) = {fit.QE:.4f}, p-val {_p_value(fit.QEp, equals=True)}",
    ]
    if fit.QM is not None:
        lines += [
            "",
            "Test of moderators:",
            f"QM(df = {fit.QM_df}) = {fit.QM:.4f}, p-val {_p_value(fit.QMp, equals=True)}",
        ]
    lines += ["", "Model results:", render_text(_coefficient_cells(fit.coefficients))]
    return "\n".join(lines)


def _heterogeneity_lines(fit) -> list[str]:
    """Variance components named by factor (metafor's table), with I2 and our tau, rho."""
    cluster, estimate = fit.factors
    h2 = f"H^2 = {fit.H2:.4f} (typical sampling variance {fit.typical_v:.4g})"
    if fit.struct == "uni":
        return [
            f"tau^2 (estimated amount of total heterogeneity): {fit.tau2:.4f}",
            f"tau (square root of estimated tau^2 value):      {fit.tau:.4f}",
            f"I^2 (total heterogeneity / total variability):   {fit.I2:.2f}%",
            f"H^2 (total variability / sampling variability):  {fit.H2:.4f}",
        ]
    rho_note = (
        "not identified (tau^2 = 0)"
        if fit.tau2 == 0.0
        else "not identified (one estimate per cluster)"
        if fit._rho_unidentified
        else f"share of tau^2 at the {cluster} level"
    )
    rows = {}
    if fit.struct == "nested":
        components = (
            ("sigma^2.1", fit.sigma2_cluster, fit.n_clusters, "sigma2_cluster", cluster),
            ("sigma^2.2", fit.sigma2_estimate, fit.k, "sigma2_estimate",
             f"{cluster}/{estimate}"),
        )  # fmt: skip
        for name, value, levels, key, factor in components:
            rows[name] = [value, np.sqrt(value), str(levels), fit.I2_components[key], factor]
        rows["tau^2"] = [fit.tau2, fit.tau, "", fit.I2, "sigma^2.1 + sigma^2.2"]
        rows["rho"] = [fit.rho, np.nan, "", np.nan, f"sigma^2.1 / tau^2: {rho_note}"]
        title = "Variance components (metafor's sigma^2.1, sigma^2.2; our tau^2, rho):"
    else:
        rows["tau^2"] = [fit.tau2, fit.tau, "", fit.I2, ""]
        rows["rho"] = [fit.rho, np.nan, "", np.nan, rho_note]
        title = (
            f"Variance components (compound symmetry; outer factor: {cluster}, "
            f"nlvls = {fit.n_clusters}; inner factor: {estimate}):"
        )
    table = pd.DataFrame.from_dict(
        rows, orient="index", columns=["estim", "sqrt", "nlvls", "I^2 (%)", "factor"]
    )
    cells = pd.DataFrame(
        {
            "estim": [_number(v, 4) for v in table["estim"]],
            "sqrt": [_number(v, 4) for v in table["sqrt"]],
            "nlvls": table["nlvls"],
            "I^2 (%)": [_number(v, 2) for v in table["I^2 (%)"]],
            "factor": table["factor"],
        },
        index=table.index,
    )
    if fit.struct == "CS":
        cells = cells.drop(columns="nlvls")
    text = render_text(cells)
    # left-align the factor names, as metafor's labels read
    return [title, *(_left_align_last(text, cells["factor"]).splitlines()), h2]


def _number(value: float, decimals: int) -> str:
    """A fixed-decimals number, blank for NaN (a cell that does not apply)."""
    return "" if value is None or not np.isfinite(value) else f"{value:.{decimals}f}"


def _left_align_last(text: str, last: pd.Series) -> str:
    """Left-align the last column of ``render_text`` output (free text, not numbers)."""
    width = max((len(str(value)) for value in last), default=0)
    width = max(width, len(str(last.name)))
    out = []
    for line in text.splitlines():
        head, tail = line[: len(line) - width], line[len(line) - width :]
        out.append((head + tail.strip().ljust(width)).rstrip())
    return "\n".join(out)


def _p_value(p: float, equals: bool = False) -> str:
    """P-values as metafor prints them: 4 decimals, ``< .0001`` below."""
    if p < 1e-4:
        return "< .0001" if equals else "<.0001"
    return f"= {p:.4f}" if equals else f"{p:.4f}"


def _coefficient_cells(coefficients: pd.DataFrame) -> pd.DataFrame:
    """The coefficient table as metafor prints it (its column names, 4 decimals)."""
    return pd.DataFrame(
        {
            "estimate": [f"{v:.4f}" for v in coefficients["estimate"]],
            "se": [f"{v:.4f}" for v in coefficients["se"]],
            "zval": [f"{v:.4f}" for v in coefficients["z"]],
            "pval": [_p_value(v) for v in coefficients["p"]],
            "ci.lb": [f"{v:.4f}" for v in coefficients["ci_lower"]],
            "ci.ub": [f"{v:.4f}" for v in coefficients["ci_upper"]],
        },
        index=coefficients.index,
    )
