"""Every input check: clear errors that name the argument, the rows and what is allowed."""

import bambi as bmb
import numpy as np
import pytest

import bambi_meta as bmm

FORMULA = "yi | se(vi) ~ 1 + (1|district)"


def make(data, formula=FORMULA, **kwargs):
    kwargs.setdefault("measure", "SMD")
    return bmm.MetaModel(formula, data, **kwargs)


def test_measure_is_required_and_checked(konstantopoulos):
    with pytest.raises(
        ValueError, match="'measure' is required.*SMD, ZCOR, OR, RR, HR, IRR, RD, GEN"
    ):
        bmm.MetaModel(FORMULA, konstantopoulos)
    with pytest.raises(ValueError, match="'measure' must be one of SMD.*got 'd'"):
        make(konstantopoulos, measure="d")
    assert make(konstantopoulos, measure="smd").measure == "SMD"


def test_rd_needs_sample_sizes_or_uisd(konstantopoulos):
    with pytest.raises(ValueError, match="sample_sizes"):
        make(konstantopoulos, measure="RD")
    data = konstantopoulos.assign(n=100.0)
    model = make(data, measure="RD", sample_sizes="n")
    expected = np.sqrt(100.0 * len(data) / np.sum(1 / data["vi"]))
    assert model.uisd == pytest.approx(expected)
    assert make(konstantopoulos, measure="GEN", uisd=0.5).uisd == 0.5


def test_missing_columns_are_named(konstantopoulos):
    with pytest.raises(ValueError, match="'variance'.*not in 'data'"):
        make(konstantopoulos, "yi | se(variance) ~ 1 + (1|district)")
    with pytest.raises(ValueError, match="'region'.*not in 'data'"):
        make(konstantopoulos, "yi | se(vi) ~ 1 + (1|region)")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-0.02, r"'vi' \(sampling variances\) must be finite and > 0; row 7 \(-0.02\)"),
        (0.0, r"row 7 \(0.0\)"),
        (np.inf, r"row 7 \(inf\)"),
    ],
)
def test_bad_variances(konstantopoulos, value, message):
    data = konstantopoulos.copy()
    data.loc[6, "vi"] = value
    with pytest.raises(ValueError, match=message):
        make(data)


def test_nan_is_an_error_naming_rows_unless_dropna(konstantopoulos):
    data = konstantopoulos.copy()
    data.loc[[2, 9], "yi"] = np.nan
    with pytest.raises(
        ValueError, match=r"Missing values \(NaN\) in 'yi': rows 3, 10.*dropna=True"
    ):
        make(data)
    with pytest.warns(UserWarning, match=r"dropped 2 of 56 rows.*'yi': rows 3, 10"):
        model = make(data, dropna=True)
    assert model.n_estimates == 54


def test_nan_in_cluster_or_moderator(konstantopoulos):
    data = konstantopoulos.astype({"district": float})
    data.loc[4, "district"] = np.nan
    with pytest.raises(ValueError, match=r"'district': row 5"):
        make(data)
    data = konstantopoulos.astype({"year": float})
    data.loc[0, "year"] = np.nan
    with pytest.raises(ValueError, match=r"'year': row 1"):
        make(data, "yi | se(vi) ~ 1 + year + (1|district)")


def test_strings_where_numbers_belong(konstantopoulos):
    data = konstantopoulos.astype({"vi": object})
    data.loc[3, "vi"] = "0.1 (approx)"
    with pytest.raises(TypeError, match=r"'vi' must be numeric; row 4 \('0.1 \(approx\)'\)"):
        make(data)
    data = konstantopoulos.assign(yi=konstantopoulos["yi"].astype(str))
    data.loc[0, "yi"] = "n/a"
    with pytest.raises(TypeError, match=r"'yi' must be numeric; row 1"):
        make(data)


def test_single_cluster_and_too_few_rows(konstantopoulos):
    with pytest.raises(ValueError, match="single cluster.*Drop '\\(1\\|district\\)'"):
        make(konstantopoulos.assign(district=1))
    with pytest.raises(ValueError, match="at least 2 estimates"):
        make(konstantopoulos.iloc[:1], "yi | se(vi) ~ 1")


def test_constant_moderator(konstantopoulos):
    with pytest.raises(ValueError, match="Moderator 'flat' is constant"):
        make(konstantopoulos.assign(flat=3.0), "yi | se(vi) ~ 1 + flat + (1|district)")


def test_data_must_be_a_dataframe(konstantopoulos):
    with pytest.raises(TypeError, match="'data' must be a pandas DataFrame"):
        make(konstantopoulos.to_dict())


def test_common_effect_model_is_expressible(konstantopoulos):
    model = make(konstantopoulos, "yi | se(vi) ~ 1", priors={"tau": 0})
    assert model.description.startswith("common-effect")
    model.build()
    logp = model.backend.model.compile_logp(vars=[model.backend.model["yi"]])
    y, v = konstantopoulos["yi"].to_numpy(), konstantopoulos["vi"].to_numpy()
    expected = -0.5 * np.sum(np.log(2 * np.pi * v) + (y - 0.1) ** 2 / v)
    assert logp({"Intercept": 0.1}) == pytest.approx(expected, rel=1e-12)


def test_user_priors_override_defaults_by_the_names_users_write(konstantopoulos):
    model = make(
        konstantopoulos,
        "yi | se(vi) ~ 1 + year + (1|district)",
        priors={
            "tau": bmb.Prior("HalfCauchy", beta=0.5),
            "year": bmb.Prior("Normal", mu=0, sigma=1),
        },
    )
    assert model.parameters["tau"].prior.name == "HalfCauchy"
    assert model.parameters["mu"].terms["center(year)"].prior.args["sigma"] == 1
    assert model.parameters["rho"].prior.name == "Beta"
