"""Formula semantics: what is read as what, and structures (tau, rho) cannot express."""

import numpy as np
import pytest

import bambi_meta as bmm
from bambi_meta.bambi_ext.formula import center_continuous_moderators, parse_meta_formula


def test_parse_variances_sds_cluster_and_moderators():
    form = parse_meta_formula("yi | se(vi) ~ 1 + year + (1|district)")
    assert (form.response, form.uncertainty, form.uncertainty_is_sd) == ("yi", "vi", False)
    assert (form.fixed, form.cluster, form.estimate_id) == ("1 + year", "district", None)
    form = parse_meta_formula("yi | se(sqrt(vi), sd=True) ~ (1 | district/school)")
    assert (form.uncertainty, form.uncertainty_is_sd) == ("sqrt(vi)", True)
    assert (form.fixed, form.cluster, form.estimate_id) == ("1", "district", "school")
    assert parse_meta_formula("yi | se(vi) ~ 1").cluster is None


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("yi ~ 1 + (1|district)", "must give the effect sizes and their known sampling variances"),
        ("yi | se(vi, sd=yes) ~ 1", "se\\(\\) takes one option"),
        ("yi | se(vi) ~ 1 + (year|district)", "Random slopes"),
        ("yi | se(vi) ~ 1 + (1|district) + (1|year)", "exactly one cluster factor"),
        ("yi | se(vi) ~ 1 + (1|a/b/c)", "Only the three-level nesting"),
        ("yi | se(vi) ~ 1 + (1|a:b)", "exactly one cluster factor"),
    ],
)
def test_structures_that_cannot_be_expressed_raise(formula, message):
    with pytest.raises(ValueError, match=message):
        parse_meta_formula(formula)


def test_centring_only_bare_continuous_moderators():
    formula, aliases = center_continuous_moderators(
        "1 + year + deltype + year:deltype", lambda factor: factor == "year"
    )
    assert formula == "1 + center(year) + deltype + center(year):deltype"
    assert aliases == {"center(year)": "year", "center(year):deltype": "year:deltype"}


def test_nested_notation_is_the_same_model(konstantopoulos):
    point = {"Intercept": 0.1, "tau_log__": np.log(0.3), "rho_logodds__": 0.4}
    logps = []
    for formula in ["yi | se(vi) ~ 1 + (1|district)", "yi | se(vi) ~ 1 + (1|district/school)"]:
        model = bmm.MetaModel(formula, konstantopoulos, measure="SMD")
        model.build()
        logps.append(model.backend.model.compile_logp()(point))
    assert logps[0] == pytest.approx(logps[1], rel=1e-12)


def test_nested_notation_requires_unique_estimates(konstantopoulos):
    with pytest.raises(ValueError, match="each row has its own district:year"):
        bmm.MetaModel("yi | se(vi) ~ 1 + (1|district/year)", konstantopoulos, measure="SMD")


def test_observed_variable_keeps_the_users_name(konstantopoulos):
    model = bmm.MetaModel("yi | se(vi) ~ 1 + year + (1|district)", konstantopoulos, measure="SMD")
    model.build()
    names = set(model.backend.model.named_vars)
    assert {"yi", "year", "Intercept", "tau", "rho"} <= names
