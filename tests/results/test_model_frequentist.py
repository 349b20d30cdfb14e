"""MetaModel.fit_frequentist: the formula wrapper of the REML/ML companion vs metafor 3.8-1.

Tolerance 1e-4 relative: metafor's own optimiser precision (see test_frequentist.py); profile
bounds 1.22e-4 absolute, metafor's confint root-finder tolerance (.Machine$double.eps^0.25).
"""

import pytest
from helpers import metafor_reference

import bambi_meta as bmm


def test_reml_of_the_school_data_matches_metafor(konstantopoulos):
    reference = metafor_reference("dat.konstantopoulos2011")["nested_REML"]
    model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district/school)", konstantopoulos, measure="SMD")
    fit = model.fit_frequentist()
    assert fit.coefficients.loc["Intercept", "estimate"] == pytest.approx(
        reference["estimate"], rel=1e-4
    )
    assert fit.coefficients.loc["Intercept", "se"] == pytest.approx(reference["se"], rel=1e-4)
    assert fit.tau2 == pytest.approx(reference["tau2_total"], rel=1e-4)
    assert fit.rho == pytest.approx(reference["rho_implied"], rel=1e-4)
    assert fit.loglik == pytest.approx(reference["fitstats"]["logLik"], rel=1e-4)
    # profile interval of the total tau2 (metafor: [0.0528, 0.2398]) and of rho ([0.3282, 0.8855])
    assert fit.profile_ci("tau2") == pytest.approx((0.0528, 0.2398), abs=1.22e-4)
    assert fit.profile_ci("rho") == pytest.approx((0.3282, 0.8855), abs=1.22e-4)


def test_meta_regression_slope_is_on_the_raw_scale(konstantopoulos):
    reference = metafor_reference("dat.konstantopoulos2011")["metareg_nested_REML"]
    model = bmm.MetaModel("yi | se(vi) ~ 1 + year + (1|district)", konstantopoulos, measure="SMD")
    slope = model.fit_frequentist().coefficients.loc["year"]
    assert slope["estimate"] == pytest.approx(reference["coefficients"][1]["estimate"], rel=1e-4)
    assert slope["se"] == pytest.approx(reference["coefficients"][1]["se"], rel=1e-4)
