"""Random probes of every input a user gives: data columns, formulas, arguments, new data.

Each probe injects known defects (or none) into a valid case and runs it through the public
API. Its outcome is classified as

- ``ok``: no defect, and the model read the data exactly (rows, yi, vi, clusters);
- ``clear error``: a ValueError/TypeError raised by bambi_meta's own code;
- ``unclear error``: any other exception, or one raised deep inside formulae, pandas, numpy,
  Bambi, PyMC or PyTensor;
- ``error on valid input``: an exception although no defect was injected;
- ``silent wrong``: a defect was injected and the call succeeded (or the data were misread).

Run ``python tests/input_probes.py --cases 600`` for the table reported in the issue notes;
``tests/test_input_probes.py`` runs the same generator under hypothesis.
"""

import argparse
import random
import signal
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from helpers import fake_posterior

import bambi_meta as bmm

OUTCOMES = ("ok", "clear error", "unclear error", "error on valid input", "silent wrong")
PACKAGE = Path(bmm.__file__).parent


@dataclass
class Probe:
    """One call of the public API with the defects it was given."""

    kind: str
    call: object  # a function of no arguments
    defects: list[str] = field(default_factory=list)
    check: object = None  # called with the result when no defect was injected


class ProbeTimeout(Exception):
    """A probe ran longer than ``TIMEOUT`` seconds (e.g. a sampler that hangs)."""


TIMEOUT = 60


def _alarm(signum, frame):
    raise ProbeTimeout(f"no answer after {TIMEOUT} s")


def classify(probe: Probe) -> tuple[str, str]:
    """Run a probe; return its outcome and a one-line description."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = probe.call()
    except (ValueError, TypeError) as error:
        where = _raised_in(error)
        if not probe.defects:
            return "error on valid input", f"{type(error).__name__}: {error}"[:200]
        if where == "bambi_meta":
            return "clear error", str(error)[:200]
        return "unclear error", f"{type(error).__name__} in {where}: {error}"[:200]
    except (Exception, BaseException) as error:  # noqa: BLE001 - e.g. a Rust panic from nutpie
        if isinstance(error, KeyboardInterrupt):
            raise
        if not probe.defects:
            return "error on valid input", f"{type(error).__name__}: {error}"[:200]
        return "unclear error", f"{type(error).__name__} in {_raised_in(error)}: {error}"[:200]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    if probe.defects:
        return "silent wrong", "accepted: " + ", ".join(probe.defects)
    problem = probe.check(result) if probe.check else None
    return ("silent wrong", problem) if problem else ("ok", "")


def _raised_in(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "?"
    last = Path(frames[-1].filename)
    if PACKAGE in last.parents:
        return "bambi_meta"
    parts = last.parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    return last.name


# ---------------------------------------------------------------------------------------------
# Constructor probes: columns of random types, random formulas, random arguments
# ---------------------------------------------------------------------------------------------
BASE = bmm.load_dataset("dat.konstantopoulos2011")

FORMULA_PIECES = {
    "valid_rhs": ["1", "1 + year", "1 + year + (1|district)", "1 + (1|district/school)",
                  "1 + log(year) + (1|district)", "1 + I(year - 1990)", "0 + year",
                  "1 + C(year > 1990) + (1|district)"],
    "bad_rhs": [("1 + (1|district", "unbalanced"), ("1 + year district", "missing operator"),
                ("1 + region", "unknown column"), ("1 + (year|district)", "random slope"),
                ("0", "nothing to estimate"), ("", "empty"), ("1 + year +", "dangling"),
                ("1 + (1|district) + (1|school)", "two clusters"), ("1 + _x", "underscore"),
                ("1 + tau", "reserved name")],
    "valid_lhs": ["yi | se(vi)", "yi | se(sei, sd=True)", "yi | se(vi, sd=False)",
                  "yi | se(sqrt(vi), sd=True)", "yi | se(vi + 0.0)"],
    "bad_lhs": [("yi | se(sei)", "sd column read as variance"), ("yi", "no se()"),
                ("yi | se(sqrt(vi))", "sqrt without sd="), ("yi | se(vi, sd=maybe)", "bad sd"),
                ("yi | se(vi)) ", "unbalanced"), ("yi | sd(vi)", "not se()"),
                ("yi | se(variance)", "unknown column")],
}  # fmt: skip


def _some(rng: np.random.Generator, n: int, share: float = 0.1) -> np.ndarray:
    """A random row mask with about ``share`` of the rows, and at least one."""
    mask = rng.random(n) < share
    mask[rng.integers(n)] = True
    return mask


COLUMN_DEFECTS = {
    "yi": [
        ("nan", lambda c, r: c.mask(_some(r, len(c)))),
        ("inf", lambda c, r: c.where(~_some(r, len(c)), np.inf)),
        ("strings", lambda c, r: c.astype(object).where(~_some(r, len(c)), "n/a")),
        ("datetime", lambda c, r: pd.to_datetime(c * 1e9)),
        ("complex", lambda c, r: c + 1j),
        ("bool", lambda c, r: c > 0),
        ("None", lambda c, r: c.astype(object).where(~_some(r, len(c)), None)),
    ],
    "vi": [
        ("negative", lambda c, r: c.where(~_some(r, len(c)), -c)),
        ("zero", lambda c, r: c.where(~_some(r, len(c)), 0.0)),
        ("nan", lambda c, r: c.mask(_some(r, len(c)))),
        ("strings", lambda c, r: c.astype(object).where(~_some(r, len(c)), "?")),
        ("timedelta", lambda c, r: pd.to_timedelta(c, unit="s")),
    ],
    "district": [
        ("nan", lambda c, r: c.astype(float).mask(_some(r, len(c)))),
        ("mixed types", lambda c, r: c.astype(object).where(~_some(r, len(c), 0.3), "x")),
        ("single cluster", lambda c, r: c * 0),
    ],
    "year": [
        ("nan", lambda c, r: c.mask(_some(r, len(c)))),
        ("constant", lambda c, r: c * 0 + 1990),
        ("strings", lambda c, r: c.astype(object).where(~_some(r, len(c)), "?")),
        ("negative for log", lambda c, r: -c),
    ],
}

# Type changes that keep a column valid (the model must read the same numbers).
VALID_RETYPES = {
    "yi": [
        ("float32", lambda c: c.astype("float32").astype(float)),
        ("object floats", lambda c: c.astype(object)),
    ],
    "vi": [
        ("object floats", lambda c: c.astype(object)),
        ("numeric text", lambda c: c.astype(str)),
    ],
    "district": [
        ("strings", lambda c: c.astype(str)),
        ("categorical", lambda c: c.astype("category")),
        ("float", lambda c: c.astype(float)),
    ],
    "year": [("int", lambda c: c.astype(int)), ("float", lambda c: c.astype(float))],
}

ARGUMENT_DEFECTS = [
    ("measure", "d", "unknown measure"),
    ("measure", None, "no measure"),
    ("measure", 3, "measure not a string"),
    ("priors", {"tau": -1}, "negative tau"),
    ("priors", {"rho": 2}, "rho above 1"),
    ("priors", ["tau"], "priors not a dict"),
    ("priors", {"year": 5}, "coefficient fixed"),
    ("uisd", -1.0, "negative uisd"),
    ("uisd", "big", "uisd not a number"),
    ("sample_sizes", "n_missing", "unknown sample-size column"),
]


def constructor_probe(rng: random.Random) -> Probe:
    """A MetaModel call with 0-2 injected defects in the formula, the columns or the arguments."""
    nrng = np.random.default_rng(rng.randrange(2**32))
    data = BASE.assign(sei=np.sqrt(BASE["vi"]))
    defects = []
    lhs = rng.choice(FORMULA_PIECES["valid_lhs"])
    rhs = rng.choice(FORMULA_PIECES["valid_rhs"])
    if rng.random() < 0.25:
        lhs, why = rng.choice(FORMULA_PIECES["bad_lhs"])
        defects.append(f"lhs: {why}")
    if rng.random() < 0.25:
        rhs, why = rng.choice(FORMULA_PIECES["bad_rhs"])
        defects.append(f"rhs: {why}")
    formula = f"{lhs} ~ {rhs}"
    used = {"yi", "vi" if "se(vi" in lhs or "sqrt(vi" in lhs else "sei"}
    used |= {name for name in ("district", "year", "school") if name in rhs}
    for column in sorted(used & set(COLUMN_DEFECTS)):
        roll = rng.random()
        if roll < 0.15:
            why, change = rng.choice(COLUMN_DEFECTS[column])
            if column == "year" and why == "negative for log" and "log(" not in rhs:
                continue
            if column == "district" and "(1|district" not in rhs:
                continue
            data[column] = change(data[column], nrng)
            defects.append(f"{column}: {why}")
        elif roll < 0.3 and column in VALID_RETYPES:
            _, change = rng.choice(VALID_RETYPES[column])
            data[column] = change(data[column])
    kwargs = {"measure": "SMD"}
    if rng.random() < 0.15:
        name, value, why = rng.choice(ARGUMENT_DEFECTS)
        kwargs[name] = value
        defects.append(f"argument: {why}")
    if rng.random() < 0.1:
        data = pd.concat([data, data[["year"]]], axis=1)
        if "year" in rhs:
            defects.append("duplicate column 'year'")

    def check(model):
        return _check_read(model, data, formula)

    return Probe("constructor", lambda: bmm.MetaModel(formula, data, **kwargs), defects, check)


def _check_read(model, data: pd.DataFrame, formula: str) -> str | None:
    """None if the model holds exactly the input rows; else what it got wrong."""
    rows = model.meta_data()
    if model.n_estimates != len(data):
        return f"{formula}: {model.n_estimates} rows read from {len(data)}"
    if not np.allclose(rows.effect_sizes, pd.to_numeric(data["yi"]).to_numpy(float)):
        return f"{formula}: effect sizes misread"
    expected = data["vi"] if "se(vi" in formula else data["sei"] ** 2
    if not np.allclose(rows.variances, pd.to_numeric(expected).to_numpy(float)):
        return f"{formula}: variances misread"
    if model.cluster is not None:
        if len(model.cluster_levels) != data[model.cluster].nunique():
            return f"{formula}: {len(model.cluster_levels)} clusters read"
    return None


# ---------------------------------------------------------------------------------------------
# Sampler-argument probes (checked before any sampling: no fit is run for valid arguments)
# ---------------------------------------------------------------------------------------------
FIT_DEFECTS = {
    "draws": [0, -5, 2.5, "100", None],
    "tune": [-1, 1.5],
    "chains": [0, -2, 1.0],
    "cores": [0, -1, 0.5],
    "random_seed": [-1, 2**64, "1", 1.5, [1, 2]],
    "target_accept": [0.0, 1.0, 1.5, -0.2, "high"],
    "inference_method": ["laplace", "numpyro", "mcmc", 3],
}
_FIT_MODEL = None


def fit_probe(rng: random.Random) -> Probe:
    """``model.fit`` with one invalid argument (valid ones are not sampled)."""
    global _FIT_MODEL
    if _FIT_MODEL is None:
        _FIT_MODEL = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", BASE, measure="SMD")
    name = rng.choice(sorted(FIT_DEFECTS))
    value = rng.choice(FIT_DEFECTS[name])
    refit = rng.random() < 0.3 and name != "inference_method"

    def call():
        if refit:
            return _FIT_MODEL.refitter().fit(**{name: value})
        return _FIT_MODEL.fit(**{name: value}, progressbar=False)

    return Probe("fit arguments", call, [f"{name}={value!r}"])


# ---------------------------------------------------------------------------------------------
# New-data probes (prediction on a synthetic posterior: no sampling)
# ---------------------------------------------------------------------------------------------
_NEW_DATA_MODELS = {}


def _new_data_model(formula: str):
    if formula not in _NEW_DATA_MODELS:
        model = bmm.MetaModel(formula, BASE, measure="SMD")
        posterior = fake_posterior(model, draws=20)
        try:  # the posterior of a fit holds raw-scale coefficients
            from bambi_meta.bambi_ext.centring import to_raw_scale

            posterior = to_raw_scale(model, posterior)
        except ImportError:  # bambi_meta before the raw-scale posterior (for "before" counts)
            pass
        idata = xr.DataTree.from_dict({"posterior": posterior})
        _NEW_DATA_MODELS[formula] = (model, idata)
    return _NEW_DATA_MODELS[formula]


NEW_DATA_DEFECTS = [
    ("missing moderator", lambda d: d.drop(columns="year")),
    ("NaN moderator", lambda d: d.assign(year=[np.nan, 1990.0])),
    ("text moderator", lambda d: d.assign(year=["a", "b"])),
    ("out of domain", lambda d: d.assign(year=[-1.0, 1990.0])),
    ("not a DataFrame", lambda d: d.to_dict()),
    ("no rows", lambda d: d.iloc[:0]),
    ("NaN cluster", lambda d: d.assign(district=[np.nan, 11.0])),
]
NEW_DATA_VALID = [
    ("cluster as text", lambda d: d.assign(district=["11", "71"])),
    ("unknown cluster", lambda d: d.assign(district=[11, 99999])),
    ("no cluster column", lambda d: d.drop(columns="district")),
    ("as given", lambda d: d),
]


def new_data_probe(rng: random.Random) -> Probe:
    """``predict`` / ``prediction_intervals`` on new rows with 0 or 1 defects."""
    model, idata = _new_data_model("yi | se(vi) ~ 1 + log(year) + (1|district)")
    new = pd.DataFrame({"year": [1980.0, 1995.0], "district": [11, 71], "vi": [0.01, 0.02]})
    defects = []
    if rng.random() < 0.6:
        why, change = rng.choice(NEW_DATA_DEFECTS)
        defects.append(why)
    else:
        _, change = rng.choice(NEW_DATA_VALID)
    new = change(new)
    target = rng.choice(["predict", "predict response", "prediction_intervals"])

    def call():
        if target == "prediction_intervals":
            return bmm.prediction_intervals(model, idata, new, random_seed=1)
        kind = "response" if target == "predict response" else "response_params"
        return model.predict(idata, kind=kind, data=new, inplace=False, random_seed=1)

    def check(result):
        frame = result if isinstance(result, pd.DataFrame) else None
        if frame is not None:
            values = frame.to_numpy(float)
        else:
            group = "posterior_predictive" if target == "predict response" else "posterior"
            values = result[group]["yi" if group == "posterior_predictive" else "mu"].to_numpy()
        if not np.isfinite(values).all():
            return f"{target}: non-finite predictions"
        return None

    return Probe(f"new data ({target})", call, defects, check)


PROBES = {"constructor": constructor_probe, "fit arguments": fit_probe, "new data": new_data_probe}


def run(cases: dict[str, int], seed: int = 20261206) -> pd.DataFrame:
    """Run the probes; return a table of outcome counts per kind, and print the failures."""
    rng = random.Random(seed)
    counts = Counter()
    for kind, n in cases.items():
        for _ in range(n):
            outcome, detail = classify(PROBES[kind](rng))
            counts[kind, outcome] += 1
            if outcome not in ("ok", "clear error"):
                print(f"[{kind}] {outcome}: {detail}")
    table = pd.DataFrame(
        [[counts[kind, outcome] for outcome in OUTCOMES] for kind in cases],
        index=list(cases),
        columns=list(OUTCOMES),
    )
    table.insert(0, "cases", table.sum(axis=1))
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300, help="constructor probes")
    arguments = parser.parse_args()
    n = arguments.cases
    table = run({"constructor": n, "fit arguments": n // 3, "new data": n // 3})
    print(pd.concat([table, table.sum().to_frame("total").T]).to_string())
