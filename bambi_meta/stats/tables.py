"""Posterior summary tables from arrays of draws: mean, SD, quantiles (NumPy / pandas)."""

import numpy as np
import pandas as pd

QUANTILES = (0.025, 0.5, 0.975)


def interval_probabilities(level: float) -> tuple[float, float, float]:
    """Lower tail, median and upper tail of a central ``level`` interval."""
    tail = (1.0 - level) / 2.0
    return (tail, 0.5, 1.0 - tail)


def describe(draws: dict[str, np.ndarray], probabilities=QUANTILES) -> pd.DataFrame:
    """Mean, SD, Median and quantiles of each quantity's draws (any shape, flattened).

    Parameters
    ----------
    draws : dict of str to numpy.ndarray
        Draws of each quantity (a table row each).
    probabilities : tuple of float
        Quantiles to report; columns are named ``f"{p:g}"`` (``0.025``, ``0.5``, ``0.975``).

    Returns
    -------
    pandas.DataFrame
        Columns ``Mean``, ``SD``, ``Median`` and one per probability.
    """
    rows = {}
    for name, values in draws.items():
        flat = np.asarray(values, dtype=float).ravel()
        quantiles = np.quantile(flat, (0.5, *probabilities))
        rows[name] = {"Mean": flat.mean(), "SD": flat.std(ddof=1), "Median": quantiles[0]}
        rows[name].update({f"{p:g}": q for p, q in zip(probabilities, quantiles[1:], strict=True)})
    return pd.DataFrame.from_dict(rows, orient="index")


class RaoBlackwellSummary:
    """Mean = E[E[x|theta]], SD^2 = E[Var(x|theta)] + Var(E[x|theta]), from running sums.

    Blocks of draws of the conditional means and SDs are added one at a time (O(columns)
    memory); quantiles come from the sampled draws.
    """

    def __init__(self, n_columns: int):
        self.count = 0
        self.sum_mean = np.zeros(n_columns)
        self.sum_mean_sq = np.zeros(n_columns)
        self.sum_var = np.zeros(n_columns)

    def add(self, mean: np.ndarray, sd: np.ndarray) -> None:
        """Add draws (..., columns) of the conditional mean and SD."""
        sd = np.broadcast_to(sd, mean.shape).reshape(-1, mean.shape[-1])
        mean = mean.reshape(-1, mean.shape[-1])
        self.count += len(mean)
        self.sum_mean += mean.sum(axis=0)
        self.sum_mean_sq += np.square(mean).sum(axis=0)
        self.sum_var += np.square(sd).sum(axis=0)

    def table(self, sampled: np.ndarray, index: pd.Index) -> pd.DataFrame:
        """Mean, SD and the quantiles of ``sampled`` (..., columns)."""
        mean = self.sum_mean / self.count
        variance_of_mean = (self.sum_mean_sq - self.count * mean**2) / (self.count - 1)
        total_sd = np.sqrt(self.sum_var / self.count + np.maximum(variance_of_mean, 0.0))
        quantiles = np.quantile(sampled.reshape(-1, sampled.shape[-1]), QUANTILES, axis=0)
        table = pd.DataFrame({"Mean": mean, "SD": total_sd}, index=index)
        for q, values in zip(QUANTILES, quantiles, strict=True):
            table[f"{q:g}"] = values
        return table
