"""The published data sets users learn with, shipped with the package (from R's metadat 1.2-0).

Citations and column descriptions are in ``bambi_meta/data/README.md`` and in
:data:`DATASETS`. Cite the original source when you use a data set.
"""

from importlib import resources

import pandas as pd

DATASETS = {
    "dat.konstantopoulos2011": (
        "Modified school calendars and achievement: 56 SMDs (schools) in 11 districts. "
        "Konstantopoulos, S. (2011). Fixed effects and variance components estimation in "
        "three-level meta-analysis. Research Synthesis Methods, 2(1), 61-76. "
        "https://doi.org/10.1002/jrsm.35"
    ),
    "dat.bcg": (
        "BCG vaccine against tuberculosis: 13 trials, yi = log risk ratio. Colditz, G. A., et al. "
        "(1994). JAMA, 271(9), 698-702. https://doi.org/10.1001/jama.1994.03510330076038"
    ),
    "dat.assink2016": (
        "Recidivism and mental health in delinquent juveniles: 100 SMDs in 17 studies. Assink, "
        "M., & Wibbelink, C. J. M. (2016). The Quantitative Methods for Psychology, 12(3), "
        "154-174. https://doi.org/10.20982/tqmp.12.3.p154"
    ),
    "dat.normand1999": (
        "Length of hospital stay of stroke patients, specialist vs routine care: means, SDs and "
        "group sizes of 9 studies (raw data for escalc's MD, SMD, ROM). Normand, S.-L. T. (1999). "
        "Meta-analysis: Formulating, evaluating, combining, and reporting. Statistics in "
        "Medicine, 18(3), 321-359. "
        "https://doi.org/10.1002/(sici)1097-0258(19990215)18:3<321::aid-sim28>3.0.co;2-p"
    ),
    "dat.bornmann2007": (
        "Gender differences in grant and fellowship awards: 66 log odds ratios in 21 studies. "
        "Bornmann, L., Mutz, R., & Daniel, H. (2007). Journal of Informetrics, 1(3), 226-238. "
        "https://doi.org/10.1016/j.joi.2007.03.001"
    ),
}


def load_dataset(name: str) -> pd.DataFrame:
    """Load a shipped data set as a pandas DataFrame.

    Parameters
    ----------
    name : str
        One of the keys of :data:`DATASETS`, e.g. ``"dat.konstantopoulos2011"``.

    Returns
    -------
    pandas.DataFrame
        The data as exported from metadat: columns ``yi``, ``vi`` and the study variables, or
        the raw summary data (dat.normand1999: means and SDs, for :func:`bambi_meta.escalc`).

    Examples
    --------
    >>> import bambi_meta as bmm
    >>> bmm.load_dataset("dat.konstantopoulos2011").shape
    (56, 6)
    """
    if name not in DATASETS:
        raise ValueError(f"'name' must be one of {', '.join(DATASETS)}; got {name!r}.")
    with resources.files("bambi_meta").joinpath("data", f"{name}.csv").open() as handle:
        return pd.read_csv(handle)
