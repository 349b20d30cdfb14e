"""escalc against metafor 3.8-1, its input checks, its record in attrs, and the back-transforms.

The reference values are metafor's own (tests/data/escalc_reference.R -> escalc_reference.json,
see tests/data/README.md). NumPy only: no sampling, no compilation.
"""

import doctest
import importlib
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bambi_meta as bmm
from bambi_meta.bambi_ext.priors import MEASURES
from bambi_meta.effect_sizes.escalc import (
    ESCALC_MEASURES,
    UndefinedEffectSizeWarning,
    measure_from_attrs,
    model_arguments,
    prior_measure,
)
from bambi_meta.effect_sizes.measures import olkin_pratt_factor

REFERENCE = json.loads((Path(__file__).parents[1] / "data" / "escalc_reference.json").read_text())
CASES = REFERENCE["cases"]

# metafor and escalc evaluate the same closed forms in double precision, in the same order of
# operations, so most values agree bit for bit. The exceptions: Hedges' correction
# c(m) = exp(lgamma(m/2) - log(sqrt(m/2)) - lgamma((m-1)/2)) in SMD, SMDH, SMCC and SMCR, where
# R's lgammafn and scipy's gammaln differ in the last bits (largest relative difference measured:
# 1.5e-14, vi of SMDH on dat.curtis1998), and UCOR, whose hypergeometric function is GSL's in
# metafor and scipy's or the Gauss series here (largest measured: 6.4e-15). 1e-12 leaves a margin
# of two orders of magnitude and would still catch any formula or order-of-operation slip.
RTOL = 1e-12


def numbers(values: list) -> np.ndarray:
    """A JSON array (null = NA) as float64."""
    return np.array([np.nan if value is None else value for value in values], dtype=float)


DATASETS = {
    block["name"]: pd.DataFrame({name: numbers(col) for name, col in block["columns"].items()})
    for block in REFERENCE["datasets"]
}


def compute(measure: str, data: pd.DataFrame, **arguments) -> pd.DataFrame:
    """escalc with every warning turned into an error (the tests that expect one catch it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return bmm.escalc(measure, data, **arguments)


# ---- equality with metafor ----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_equals_metafor(case):
    data = DATASETS[case["dataset"]]
    expected_yi, expected_vi = numbers(case["yi"]), numbers(case["vi"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = bmm.escalc(case["measure"], data, **case["args"], **case["options"])

    # NaN exactly where metafor returns NA (assert_allclose compares NaN positions too)
    np.testing.assert_allclose(out["yi"], expected_yi, rtol=RTOL, atol=0)
    np.testing.assert_allclose(out["vi"], expected_vi, rtol=RTOL, atol=0)

    # one warning exactly when some row is NA, counting those rows; nothing else is emitted
    undefined = int((np.isnan(expected_yi) | np.isnan(expected_vi)).sum())
    messages = [str(warning.message) for warning in caught]
    assert all(warning.category is UndefinedEffectSizeWarning for warning in caught), messages
    assert len(caught) == (undefined > 0)
    if undefined:
        assert f"NaN in {undefined} of {len(data)} rows" in messages[0]

    # the total sample size is metafor's "ni" attribute (where metafor knows it: a given ni
    # column is kept as it is on rows with a missing count)
    expected_ni = numbers(case["ni"])
    if case["measure"] in ("IR", "IRLN", "IRR", "IRD"):  # metafor's ni is person-time there
        assert out.attrs["escalc"]["ni"] is None
    else:
        known = ~np.isnan(expected_ni)
        np.testing.assert_array_equal(out["ni"].to_numpy(dtype=float)[known], expected_ni[known])


def test_every_measure_is_checked_on_two_published_data_sets_and_edge_cases():
    for measure in ESCALC_MEASURES:
        datasets = {case["dataset"] for case in CASES if case["measure"] == measure}
        published = {name for name in datasets if not name.startswith("edge.")}
        assert len(published) >= 2, (measure, published)
        assert datasets - published, f"{measure} has no constructed edge cases"


@pytest.mark.parametrize("measure", [m for m, spec in ESCALC_MEASURES.items() if spec.counts])
def test_every_continuity_correction_is_checked_on_zero_cells(measure):
    options = [case["options"] for case in CASES if case["measure"] == measure]
    assert {option.get("to", "only0") for option in options} == {"all", "only0", "if0all", "none"}
    assert any("add" in option for option in options)
    if ESCALC_MEASURES[measure].drop00:
        assert any(option.get("drop00") for option in options)


def test_olkin_pratt_factor_is_accurate_where_gsl_is_not():
    # 2F1(1/2, 1/2; (n-2)/2; 1 - r^2) from mpmath 1.4.1 at 40 digits. GSL's hyperg_2F1 (metafor's
    # UCOR) gives 1.1324955719053247, 1.0865249087975046 and 1.0317227720209796 for the first
    # three (relative errors 1e-3, 4e-5, 3e-7), so UCOR is compared with metafor only where GSL is
    # accurate (every UCOR reference row agrees to 1e-12, so none falls in that region).
    n = np.array([8, 10, 20, 5, 1832, 100000], dtype=float)
    r = np.array([0.05, 0.01, 0.001, 0.3, 0.15, 0.001])
    exact = [1.1310709951032336, 1.0864841651443027, 1.0317224772429794, 1.3272372818926783,
             1.0002673978510657, 1.0000050002075087]  # fmt: skip
    np.testing.assert_allclose(olkin_pratt_factor(n, r), exact, rtol=1e-13, atol=0)


def test_shipped_normand1999_is_the_reference_data():
    shipped = bmm.load_dataset("dat.normand1999")
    reference = DATASETS["dat.normand1999"]
    pd.testing.assert_frame_equal(shipped[reference.columns].astype(float), reference)
    assert "dat.normand1999" in bmm.DATASETS


def test_docstring_examples_run():
    for name in ("bambi_meta.effect_sizes.escalc", "bambi_meta.effect_sizes.transf"):
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, name


# ---- undefined rows: NaN with a warning, never dropped ------------------------------------------


def test_drop00_rows_are_nan_with_a_warning_naming_them():
    data = DATASETS["dat.nielweise2007"]
    with pytest.warns(UndefinedEffectSizeWarning, match=r"row 15: no events .*drop00=True"):
        out = bmm.escalc("OR", data, ai="ai", n1i="n1i", ci="ci", n2i="n2i", drop00=True)
    assert len(out) == len(data)
    assert np.isnan(out.loc[14, ["yi", "vi"]].to_numpy(dtype=float)).all()
    assert np.isfinite(out.drop(index=14)[["yi", "vi"]].to_numpy()).all()
    assert out.loc[14, "ni"] == 118 + 105  # the sample size is still known


def test_missing_inputs_are_named_as_such():
    data = DATASETS["dat.gibson2002"]
    with pytest.warns(UndefinedEffectSizeWarning, match=r"rows 14, 15: a missing value"):
        out = bmm.escalc("SMD", data, m1i="m1i", sd1i="sd1i", n1i="n1i", m2i="m2i", sd2i="sd2i",
                         n2i="n2i")  # fmt: skip
    assert out["yi"].isna().sum() == 2


def test_correlation_with_three_observations_keeps_yi_and_names_the_reason():
    data = pd.DataFrame({"r": [0.3, 0.5], "n": [40, 3]})
    with pytest.warns(UndefinedEffectSizeWarning, match=r"row 2: ni <= 3"):
        out = bmm.escalc("ZCOR", data, ri="r", ni="n")
    assert out["yi"].notna().all() and np.isnan(out.loc[1, "vi"])


def test_undefined_formula_is_reported():
    data = pd.DataFrame({"m1": [10.0, -2.0], "s1": [2.0, 1.0], "n1": [20, 20],
                         "m2": [8.0, 3.0], "s2": [2.0, 1.0], "n2": [20, 20]})  # fmt: skip
    with pytest.warns(UndefinedEffectSizeWarning, match=r"row 2: the ratio of the means is <= 0"):
        bmm.escalc("ROM", data, m1i="m1", sd1i="s1", n1i="n1", m2i="m2", sd2i="s2", n2i="n2")


# ---- bad input: errors naming the measure, the argument, the column and the rows ---------------

BCG = bmm.load_dataset("dat.bcg")
BCG_CELLS = {"ai": "tpos", "bi": "tneg", "ci": "cpos", "di": "cneg"}
NORMAND = bmm.load_dataset("dat.normand1999")
NORMAND_ARGS = {"m1i": "m1i", "sd1i": "sd1i", "n1i": "n1i", "m2i": "m2i", "sd2i": "sd2i",
                "n2i": "n2i"}  # fmt: skip


def with_value(data: pd.DataFrame, column: str, row: int, value) -> pd.DataFrame:
    changed = data.copy()
    changed[column] = changed[column].astype(object if isinstance(value, str) else float)
    changed.loc[row, column] = value
    return changed


@pytest.mark.parametrize(
    ("measure", "data", "arguments", "message"),
    [
        ("OR", with_value(BCG, "tpos", 2, -1), BCG_CELLS,
         r"escalc\(measure='OR'\): 'ai' \(column 'tpos'\) must be a count >= 0; row 3 \(-1.0\)"),
        ("RR", with_value(DATASETS["dat.nielweise2007"], "ci", 4, 200.0),
         {"ai": "ai", "n1i": "n1i", "ci": "ci", "n2i": "n2i"},
         r"escalc\(measure='RR'\): 'ci' \(column 'ci'\) must be <= the group size 'n2i' "
         r"\(column 'n2i'\); it is larger in row 5 \(200.0\)"),
        ("RD", with_value(BCG.assign(n1=BCG.tpos + BCG.tneg), "n1", 0, 3.0),
         {**BCG_CELLS, "n1i": "n1"}, r"'ai' \(column 'tpos'\) must be <= the group size 'n1i'"),
        ("PETO", BCG.assign(n1=BCG.tpos + BCG.tneg + 1), {**BCG_CELLS, "n1i": "n1"},
         r"escalc\(measure='PETO'\): 'n1i' \(column 'n1'\) must equal 'ai' \+ 'bi'; it does "
         r"not in rows 1 \(124.0\), 2"),
        ("SMD", with_value(NORMAND, "sd1i", 3, 0.0), NORMAND_ARGS,
         r"escalc\(measure='SMD'\): 'sd1i' \(column 'sd1i'\) must be an SD > 0; row 4 \(0.0\)"),
        ("MD", with_value(NORMAND, "n2i", 4, 1.0), NORMAND_ARGS,
         r"escalc\(measure='MD'\): 'n2i' \(column 'n2i'\) must be >= 2 .*; row 5 \(1.0\)"),
        ("COR", with_value(DATASETS["dat.molloy2014"], "ri", 1, 1.2), {"ri": "ri", "ni": "ni"},
         r"escalc\(measure='COR'\): 'ri' \(column 'ri'\) must be a correlation in \[-1, 1\]; "
         r"row 2 \(1.2\)"),
        ("SMCR", DATASETS["morris2008.treatment"],
         {"m1i": "m_post", "m2i": "m_pre", "sd1i": "sd_pre", "ni": "ni", "ri": 1.5},
         r"escalc\(measure='SMCR'\): the assumed correlation 'ri' must be in \[-1, 1\]; got 1.5"),
        ("IRR", with_value(DATASETS["dat.hart1999"], "t2i", 5, 0.0),
         {"x1i": "x1i", "t1i": "t1i", "x2i": "x2i", "t2i": "t2i"},
         r"escalc\(measure='IRR'\): 't2i' \(column 't2i'\) must be > 0; row 6 \(0.0\)"),
        ("MNLN", with_value(NORMAND, "m1i", 0, -3.0), {"mi": "m1i", "sdi": "sd1i", "ni": "n1i"},
         r"escalc\(measure='MNLN'\): 'mi' \(column 'm1i'\) must be >= 0 \(its log is taken\)"),
        ("PR", with_value(DATASETS["dat.pritz1997"], "xi", 6, np.inf), {"xi": "xi", "ni": "ni"},
         r"escalc\(measure='PR'\): 'xi' \(column 'xi'\) must be a count >= 0; row 7 \(inf\)"),
        ("OR", BCG, {**BCG_CELLS, "ai": "tpos_typo"},
         r"escalc\(measure='OR'\): 'ai' names column 'tpos_typo', which is not in 'data'"),
        ("OR", BCG, {"ai": "tpos", "bi": "tneg", "di": "cneg"},
         r"escalc\(measure='OR'\) needs 'ci' \(a column of 'data'\); it reads ai, bi \(or n1i\)"),
        ("SMD", NORMAND, {**NORMAND_ARGS, "ai": "n1i"},
         r"escalc\(measure='SMD'\) does not use 'ai'"),
    ],
)  # fmt: skip
def test_bad_values_raise_value_errors_naming_measure_argument_and_rows(
    measure, data, arguments, message
):
    with pytest.raises(ValueError, match=message):
        compute(measure, data, **arguments)


def test_columns_of_the_wrong_kind_raise_type_errors():
    text = with_value(BCG, "tpos", 1, "six")
    with pytest.raises(TypeError, match=r"'ai' reads column 'tpos' must be numeric; row 2 \('six'"):
        compute("OR", text, **BCG_CELLS)
    flags = BCG.assign(flag=BCG.tpos > 10)
    with pytest.raises(TypeError, match=r"'ai' reads column 'flag' must be numeric; .* bool"):
        compute("OR", flags, **{**BCG_CELLS, "ai": "flag"})
    with pytest.raises(TypeError, match=r"'ai' must be a column name of 'data' \(a string\)"):
        compute("OR", BCG, **{**BCG_CELLS, "ai": BCG.tpos.to_numpy()})
    with pytest.raises(TypeError, match="'data' must be a pandas DataFrame"):
        compute("OR", BCG.to_dict(), **BCG_CELLS)


def test_options_that_do_not_apply_or_are_not_implemented_raise():
    with pytest.raises(ValueError, match=r"measure='SMD'\) does not use 'add'"):
        compute("SMD", NORMAND, **NORMAND_ARGS, add=0.5)
    with pytest.raises(ValueError, match=r"measure='PR'\) does not use 'drop00'"):
        compute("PR", DATASETS["dat.pritz1997"], xi="xi", ni="ni", drop00=True)
    with pytest.raises(ValueError, match=r"vtype='UB' is not implemented \(metafor offers UB, "
                                         r"LS, LS2, AV for SMD\)"):  # fmt: skip
        compute("SMD", NORMAND, **NORMAND_ARGS, vtype="UB")
    with pytest.raises(ValueError, match="'to' must be one of all, only0, if0all, none"):
        compute("OR", BCG, **BCG_CELLS, to="zeros")
    with pytest.raises(ValueError, match="'add' must be finite and >= 0"):
        compute("OR", BCG, **BCG_CELLS, add=-0.5)
    with pytest.raises(ValueError, match="'measure' must be one of MD, SMD"):
        compute("HEDGES", NORMAND, **NORMAND_ARGS)
    with pytest.raises(ValueError, match="'var_names' .* and 'ni_name' .* must differ"):
        compute("OR", BCG, **BCG_CELLS, var_names=("yi", "ni"))


# ---- the result and its record ------------------------------------------------------------------


def test_result_is_a_copy_with_named_columns_and_the_record():
    before = BCG.copy()
    out = compute("RR", BCG, **BCG_CELLS, var_names=("logrr", "v"), ni_name="n")
    pd.testing.assert_frame_equal(BCG, before)  # the input is not modified
    assert out.attrs["escalc"] == {"measure": "RR", "yi": "logrr", "vi": "v", "ni": "n"}
    assert not BCG.attrs
    # dat.bcg ships metafor's RR (yi, vi); the same numbers under the new names
    np.testing.assert_allclose(out["logrr"], BCG["yi"], rtol=1e-14)
    np.testing.assert_allclose(out["v"], BCG["vi"], rtol=1e-14)
    assert out["n"].tolist() == (BCG.tpos + BCG.tneg + BCG.cpos + BCG.cneg).tolist()
    assert out[["logrr", "v"]].notna().all().all()
    without = compute("RR", BCG, **BCG_CELLS, ni_name=None)
    assert "ni" not in without and without.attrs["escalc"]["ni"] is None


def test_existing_ni_column_is_kept_when_equal_and_an_error_when_different():
    molloy = DATASETS["dat.molloy2014"]
    out = compute("ZCOR", molloy, ri="ri", ni="ni")  # the input column is the sample size
    assert out["ni"].equals(molloy["ni"]) and out.attrs["escalc"]["ni"] == "ni"
    with pytest.raises(ValueError, match="already has a column 'ni' that differs"):
        compute("OR", BCG.assign(ni=1), **BCG_CELLS)


def test_person_time_measures_record_no_sample_sizes():
    out = compute("IRR", DATASETS["dat.hart1999"], x1i="x1i", t1i="t1i", x2i="x2i", t2i="t2i")
    assert out.attrs["escalc"]["ni"] is None and "ni" not in out


def test_model_arguments_from_the_record():
    bcg = compute("OR", BCG, **BCG_CELLS)
    assert measure_from_attrs(bcg) == {"measure": "OR", "yi": "yi", "vi": "vi", "ni": "ni"}
    assert model_arguments(bcg) == {"measure": "OR"}
    assert model_arguments(bcg, measure="or", effect_sizes="yi") == {"measure": "OR"}
    rd = compute("RD", BCG, **BCG_CELLS)
    assert model_arguments(rd) == {"measure": "RD", "sample_sizes": "ni"}
    smcr = compute("SMCR", DATASETS["morris2008.treatment"], m1i="m_post", m2i="m_pre",
                   sd1i="sd_pre", ni="ni", ri=0.7)  # fmt: skip
    assert model_arguments(smcr, measure="SMCR") == model_arguments(smcr, measure="SMD")
    assert model_arguments(smcr) == {"measure": "SMD"}
    rates = compute("IRD", DATASETS["dat.hart1999"], x1i="x1i", t1i="t1i", x2i="x2i", t2i="t2i")
    assert model_arguments(rates) == {"measure": "GEN"}  # MetaModel then asks for uisd=


def test_a_measure_that_disagrees_with_the_record_shows_both():
    peto = compute("PETO", BCG, **BCG_CELLS)
    with pytest.raises(ValueError, match=r"measure='RR' disagrees .* measure='PETO', whose "
                                         r"default priors are those of 'OR'"):  # fmt: skip
        model_arguments(peto, measure="RR")


def test_a_record_applies_only_to_the_column_it_describes():
    bcg = compute("OR", BCG, **BCG_CELLS, var_names=("logor", "var"))
    assert model_arguments(bcg, measure="RR", effect_sizes="yi") == {"measure": "RR"}
    assert model_arguments(BCG) == {} and model_arguments(BCG, "RR") == {"measure": "RR"}
    assert measure_from_attrs(BCG) is None
    broken = BCG.copy()
    broken.attrs["escalc"] = {"measure": "XYZ"}
    with pytest.raises(ValueError, match="must be the record escalc writes"):
        measure_from_attrs(broken)


def test_every_measure_maps_to_a_prior_family_with_a_reason():
    for measure, spec in ESCALC_MEASURES.items():
        assert spec.prior in MEASURES and spec.prior_rationale, measure
    assert [prior_measure(m) for m in ("SMDH", "SMCC", "SMCR", "PETO", "PLO", "ZCOR")] == [
        "SMD", "SMD", "SMD", "OR", "OR", "ZCOR"
    ]  # fmt: skip
    assert {prior_measure(m) for m in ("MD", "COR", "PR", "MN", "MC", "IRD")} == {"GEN"}


# ---- back-transformations -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["exp", "ztor", "ilogit", "iarcsin"])
def test_transforms_equal_metafor(name):
    grid = numbers(REFERENCE["transf"]["x"])
    expected = numbers(REFERENCE["transf"][name])
    # same functions (exp, tanh, plogis, sin^2) in double precision: equal to a few ulp
    np.testing.assert_allclose(getattr(bmm.transf, name)(grid), expected, rtol=1e-14, atol=0)


def test_default_transform_reports_each_measure_on_its_natural_scale():
    expected = {"OR": "exp", "PETO": "exp", "RR": "exp", "IRR": "exp", "HR": "exp", "ROM": "exp",
                "PLN": "exp", "IRLN": "exp", "MNLN": "exp", "ZCOR": "ztor", "PLO": "ilogit",
                "PAS": "iarcsin", "SMD": "identity", "RD": "identity", "COR": "identity",
                "GEN": "identity"}  # fmt: skip
    for measure, name in expected.items():
        assert bmm.transf.default_transform(measure) is getattr(bmm.transf, name), measure
    for measure in ESCALC_MEASURES:
        bmm.transf.default_transform(measure)  # every escalc measure has one
    with pytest.raises(ValueError, match=re.escape("'measure' must be one of OR")):
        bmm.transf.default_transform("LOGOR")


def test_transforms_keep_pandas_labels_like_ufuncs():
    bounds = pd.Series([-1.0, 0.5, 2.0], index=["0.025", "0.5", "0.975"])
    for name in ("exp", "ztor", "ilogit", "iarcsin", "identity"):
        result = getattr(bmm.transf, name)(bounds)
        assert isinstance(result, pd.Series) and list(result.index) == list(bounds.index), name
    assert bmm.transf.iarcsin(bounds).tolist() == [0.0, np.sin(0.5) ** 2, 1.0]  # clipped


# ---------------------------------------------------------------------------------------------
# MetaModel reads the escalc record (build only: no sampling)
# ---------------------------------------------------------------------------------------------
def test_metamodel_takes_the_measure_and_sample_sizes_from_the_record():
    bcg = bmm.load_dataset("dat.bcg")
    ratios = bmm.escalc("RR", bcg, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    assert bmm.MetaModel("yi | se(vi) ~ 1", ratios).measure == "RR"
    differences = bmm.escalc("RD", bcg, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    model = bmm.MetaModel("yi | se(vi) ~ 1", differences)
    # RD has no fixed unit-information SD: sqrt(sum n / sum 1/v) from escalc's 'ni' column
    expected = np.sqrt(differences["ni"].sum() / np.sum(1 / differences["vi"]))
    assert (model.measure, model.uisd) == ("RD", pytest.approx(expected, rel=1e-12))
    with pytest.raises(ValueError, match="measure='SMD' disagrees with the data.*'RD'"):
        bmm.MetaModel("yi | se(vi) ~ 1", differences, measure="SMD")
    # an escalc measure name given explicitly gets its prior family
    assert bmm.MetaModel("yi | se(vi) ~ 1", bcg, measure="peto").measure == "OR"
