"""What a ``MetaModel`` says about itself: its kind, its size and how its columns were read.

The printout exists to make the most common silent errors visible: sampling variances read as
standard errors (or the reverse), and an intercept that sits at the moderator means rather than
at zero.
"""

import re
import textwrap

import numpy as np
import pandas as pd

from bambi_meta.bambi_ext.formula import SCALE_PARAMETERS, uncentred_name

INDENT = "\n" + " " * 25


def description(model) -> str:
    """Which meta-analytic model this is, in the field's words."""
    kinds = []
    tau = model.parameters.get("tau")
    if tau is not None and isinstance(getattr(tau, "prior", None), (int, float)):
        kinds.append("common-effect")
    elif model.cluster is not None:
        kinds.append("multilevel random-effects (compound-symmetric tau, rho)")
    else:
        kinds.append("random-effects")
    if model.parameters["mu"].common_terms:
        kinds.append("meta-regression")
    if "tau" in model.conditional_parameters or "rho" in model.conditional_parameters:
        kinds.append("location-scale")
    return ", ".join(kinds)


def header(model) -> str:
    """One line naming the model and its size, e.g. for the head of a summary table."""
    size = f"k = {model.n_estimates} estimates"
    if model.cluster is not None:
        size += f" in {len(model.cluster_levels)} clusters ({model.cluster})"
    scale = "".join(f"; {name} ~ {rhs}" for name, rhs in model.scale_formulas.items())
    kind = description(model)
    return f"{kind[0].upper()}{kind[1:]}: {size}{scale}"


def meta_block(model) -> str:
    """The lines printed above Bambi's own description of the model."""
    form = model.meta_formula
    kind = "standard errors (squared to variances)" if form.uncertainty_is_sd else "VARIANCES"
    lines = [
        f"Meta-analytic model: {description(model)}",
        f"  effect sizes:          {form.response}  (k = {model.n_estimates})",
        f"  sampling uncertainty:  {form.uncertainty}  read as {kind}",
    ]
    if not form.uncertainty_is_sd:
        lines.append("                         (for standard errors write se(sei, sd=True))")
    if model.cluster is not None:
        sizes = np.bincount(model.meta_data().cluster_codes)
        lines.append(
            f"  clusters:              {model.cluster}  ({len(sizes)} clusters, "
            f"{sizes.min()}-{sizes.max()} estimates each)"
        )
    lines += intercept_notes(model)
    lines.append(f"  measure:               {model.measure} (unit-information SD {model.uisd:.4g})")
    engine = textwrap.fill(
        f"  fit() by default:      {default_engine(model)}", width=100, subsequent_indent=" " * 25
    )
    lines.append(engine)
    return "\n".join(lines)


def default_engine(model) -> str:
    """Which engine ``fit()`` uses by default, and why."""
    from bambi_meta.engine.exact_model import qualifies

    reason = qualifies(model)
    if reason is None:
        return "exact posterior (quadrature over tau and rho; independent draws)"
    return f"MCMC (nutpie's NUTS), because {reason}"


def intercept_notes(model) -> list[str]:
    """Printout lines saying where each sampled intercept sits and what summary() reports."""
    lines = []
    where = intercept_position(model, "mu", model.aliases.location)
    if where:
        note = f"  intercept:             sampled {where}"
        centred = centred_variables(model.aliases.location)
        if centred:
            note += (
                f";{INDENT}summary() reports coefficients on the raw scale (intercept at "
                f"{', '.join(centred)} = 0)"
            )
        lines.append(note)
    for name, rhs in model.scale_formulas.items():
        link = SCALE_PARAMETERS[name]
        where = intercept_position(model, name, model.aliases.scale[name])
        lines.append(
            f"  scale model:           {name} ~ {rhs}  ({link} link){INDENT}sampled intercept "
            f"= {link} {name}" + (f" {where}" if where else "")
        )
    return lines


def intercept_position(model, parameter: str, aliases: dict[str, str]) -> str:
    """Where an intercept sits: the means of centred moderators, the reference levels."""
    centred = centred_variables(aliases)
    categorical = [
        name
        for name in model.moderators[parameter]
        if not pd.api.types.is_numeric_dtype(model.data[name])
    ]
    parts = []
    if centred:
        parts.append(f"the means of the continuous moderators ({', '.join(centred)})")
    if categorical:
        parts.append(f"the reference levels of {', '.join(categorical)}")
    return ("at " + (INDENT + "and ").join(parts)) if parts else ""


def centred_variables(aliases: dict[str, str]) -> list[str]:
    """The variables that ``center()`` wraps in the centred term names of ``aliases``."""
    names = []
    for term in aliases:
        for factor in re.split(r"[:*]", term):
            if factor.startswith("center(") and uncentred_name(factor) not in names:
                names.append(uncentred_name(factor))
    return names
