"""Every Bambi, PyMC, PyTensor and nutpie internal that bambi_meta relies on is still there.

``bambi_meta._upstream`` is the only module that touches them; these tests pin each one's
presence and signature, so that an upstream release that changes one fails here, by name,
instead of deep inside a user's fit.
"""

import inspect

import bambi as bmb
import numpy as np
import pytest

import bambi_meta as bmm
from bambi_meta import _upstream


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_bambi_clean_results_and_fit_flag(konstantopoulos):
    from bambi.backend.pymc import PyMCModel

    assert parameters(PyMCModel._clean_results)[:4] == [
        "self",
        "idata",
        "omit_offsets",
        "include_response_params",
    ]
    model = bmm.MetaModel("yi | se(vi) ~ 1", konstantopoulos, measure="SMD")
    model.build()
    assert hasattr(model.backend, "fit")  # Bambi's predict reads it


def test_bambi_public_methods_we_override_keep_their_arguments():
    assert parameters(bmb.Model.predict) == [
        "self",
        "idata",
        "kind",
        "data",
        "inplace",
        "include_group_specific",
        "sample_new_groups",
        "random_seed",
    ]
    assert parameters(bmb.Model.prior_predictive) == [
        "self",
        "draws",
        "var_names",
        "omit_offsets",
        "random_seed",
    ]
    assert parameters(bmb.Model.set_priors) == ["self", "priors", "common", "group_specific"]
    assert isinstance(inspect.getattr_static(bmb.Model, "response_term"), property)
    assert isinstance(inspect.getattr_static(bmb.Family, "auxiliary_parameters"), property)


def test_family_parameter_order_reaches_bambi(konstantopoulos):
    model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", konstantopoulos, measure="SMD")
    assert model.family.auxiliary_parameters == ["tau", "rho"]
    model.build()
    assert [rv.name for rv in model.backend.model.free_RVs][:2] == ["tau", "rho"]


def test_pymc_initial_point_and_default_names(konstantopoulos):
    from pymc.initial_point import make_initial_point_fn
    from pymc.util import get_default_varnames

    assert {"model", "jitter_rvs", "return_transformed"} <= set(parameters(make_initial_point_fn))
    assert {"include_transformed"} <= set(parameters(get_default_varnames))
    model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", konstantopoulos, measure="SMD")
    model.build()
    point = _upstream.initial_point_function(model.backend.model)(1)
    assert set(point) == {"tau_log__", "rho_logodds__", "Intercept"}
    names = _upstream.default_variable_names(model.backend.model.unobserved_value_vars)
    assert set(names) >= {"Intercept", "tau", "rho"}
    assert not any(name.endswith(("_log__", "_logodds__")) for name in names)


def test_nutpie_from_pyfunc_arguments():
    from nutpie.compiled_pyfunc import from_pyfunc

    assert {
        "ndim",
        "make_logp_fn",
        "make_expand_fn",
        "expanded_dtypes",
        "expanded_shapes",
        "expanded_names",
        "shared_data",
        "make_initial_point_fn",
    } <= set(parameters(from_pyfunc))


@pytest.mark.slow  # samples a tiny model with nutpie
def test_nutpie_raw_trace_has_arrow_batches_with_tuning_flags():
    import nutpie

    def make_logp():
        def logp(x, **_):
            return float(-0.5 * x @ x), -x

        return logp

    def make_expand(seed1, seed2, chain):
        return lambda x, **_: {"x": x.copy()}

    model = _upstream.nutpie_model_from_functions(
        ndim=2,
        make_logp_fn=make_logp,
        make_expand_fn=make_expand,
        expanded_dtypes=[np.dtype("float64")],
        expanded_shapes=[(2,)],
        expanded_names=["x"],
    )
    raw = nutpie.sample(model, draws=5, tune=5, chains=1, progress_bar=False, return_raw_trace=True)
    draws, statistics = _upstream.nutpie_trace_batches(raw)
    assert "tuning" in statistics[0].schema.names and "x" in draws[0].schema.names


def test_pytensor_numba_dispatch_and_cache():
    basic = _upstream.numba_dispatch()
    assert callable(basic.register_funcify_default_op_cache_key)
    assert "cache_version" in inspect.signature(basic.default_hash_key_from_props).parameters or (
        inspect.signature(basic.default_hash_key_from_props).parameters["extra_fields"].kind
        is inspect.Parameter.VAR_KEYWORD
    )
    from pytensor.configdefaults import config
    from pytensor.link.numba import cache

    assert hasattr(cache, "NUMBA_CACHE_PATH")
    assert hasattr(type(config).__dict__["base_compiledir"], "val")


def test_adapter_errors_name_the_upstream_versions():
    error = _upstream._changed("something", TypeError("gone"))
    for package in ("bambi", "pymc", "pytensor", "nutpie"):
        assert package in str(error)
