"""Meta-analytic formulas: ``yi | se(vi) ~ 1 + x + (1|cluster)`` -> what Bambi can parse.

formulae cannot parse ``yi | se(vi)`` on the left-hand side, and Bambi has no hook to replace a
group-specific term by a marginalised one. So the formula is taken apart here:

* the left-hand side becomes a response call, ``meta_response(yi, vi, sd=False, cluster=g)``,
  whose columns (effect size, sampling variance, cluster code) travel with the response, as
  Bambi's own ``p(y, n)`` does for the binomial family;
* the cluster term ``(1|g)`` (or the nested ``(1|g/id)``) is removed from the right-hand side: the
  likelihood integrates the cluster and estimate effects out analytically;
* continuous moderators are centred with formulae's stateful ``center()`` so that the intercept
  prior acts at the moderator means (see ``priors.py``); categorical moderators keep uncentred
  treatment contrasts.

A ``bmb.Formula`` may add scale formulas, ``"tau ~ z"`` (log link: per-row tau_i) and ``"rho ~ z"``
(logit link: per-row rho_i, only with a cluster level); :func:`parse_scale_formulas` reads and
checks them, and their continuous moderators are centred the same way.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

import formulae as fm

RESPONSE_FUNCTION = "meta_response"
# Parameters a scale formula may model, with their links (see family.py).
SCALE_PARAMETERS = {"tau": "log", "rho": "logit"}

_LHS_PATTERN = re.compile(r"^(?P<response>.+?)\|\s*se\s*\((?P<arguments>.*)\)\s*$", re.DOTALL)
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*$")
# Column names that usually hold standard errors (se, sei, se_g, yi_se, sd, sdi, stderr, ...):
# read as variances only when the user says so with an explicit ``sd=False``.
_STANDARD_ERROR_NAME = re.compile(
    r"^(?:se|sei|sd|sdi|std|stderr|std_?err(?:or)?)(?:$|[_.\d])|[_.](?:se|sei|sd|stderr)$",
    re.IGNORECASE,
)
# Two operands side by side with no operator between them (formulae ignores the second).
_MISSING_OPERATOR = re.compile(r"([A-Za-z0-9_.]+|\))\s+([A-Za-z0-9_.]+|\()")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


def formula_error(formula: str, problem: str) -> ValueError:
    """A ValueError that quotes the user's formula and says what is wrong with it."""
    return ValueError(f"Cannot read the formula {formula!r}: {problem}")


def check_formula_text(formula: str) -> None:
    """Errors formulae would report obscurely (or not at all), caught before it parses.

    Parameters
    ----------
    formula : str
        A main or scale formula as the user wrote it.

    Raises
    ------
    ValueError
        For unbalanced parentheses, names starting with ``_`` (formulae cannot read them) and
        two terms with no operator between them (formulae would silently drop the second).
    """
    depth = 0
    for position, char in enumerate(formula):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            raise formula_error(
                formula, f"the ')' at character {position + 1} closes no open parenthesis."
            )
    if depth > 0:
        raise formula_error(formula, f"{depth} parenthesis(es) '(' are not closed.")
    underscored = re.findall(r"(?<![A-Za-z0-9_.])_[A-Za-z0-9_.]*", _QUOTED.sub("", formula))
    if underscored:
        raise formula_error(
            formula,
            f"names starting with '_' ({', '.join(map(repr, underscored))}) cannot be read by "
            "formulae; rename the column(s), e.g. data.rename(columns={'_x': 'x'}).",
        )
    for side in _QUOTED.sub("''", formula).replace("**", "^").split("~"):
        dangling = re.search(r"(^\s*[+*:/^]|[+*:/^-]\s*$|[+*:/]\s*[+*:/)])", side)
        if dangling and side.strip():
            raise formula_error(
                formula, f"the operator in {dangling[0].strip()!r} has a term missing on one side."
            )
        match = _MISSING_OPERATOR.search(side.replace(" = ", "=").replace("= ", "="))
        if match:
            raise formula_error(
                formula,
                f"no operator between {match[1]!r} and {match[2]!r}; join terms with '+' "
                "(or ':' / '*' for interactions).",
            )


def formula_variables(rhs: str) -> set[str]:
    """Names of the data columns a right-hand side uses (``I(year - 1990)`` gives ``year``)."""
    return _description(f"y ~ {rhs}", rhs).var_names - {"y", ""}


def expression_variables(expression: str) -> set[str]:
    """Names of the data columns an expression such as ``sqrt(vi)`` or ``vi + 0.01`` uses."""
    return _description(f"{single_term(expression)} ~ 1", expression).response.var_names - {""}


def single_term(expression: str) -> str:
    """A column name as it is, any other expression as formulae's ``I(<expression>)``."""
    return expression if is_identifier(expression) else f"I({expression})"


def _description(formula: str, shown: str):
    """``formulae.model_description``, with its parse errors reported against ``shown``."""
    try:
        return fm.model_description(formula)
    except Exception as error:  # formulae's ParseError, ScanError, ... are not exported
        raise formula_error(shown, f"{type(error).__name__}: {error}") from None


@dataclass(frozen=True)
class MetaFormula:
    """The parts of a meta-analytic formula.

    Attributes
    ----------
    response : str
        Expression of the observed effect sizes (``yi``).
    uncertainty : str
        Expression of the known sampling uncertainty (``vi`` or ``sei``).
    uncertainty_is_sd : bool
        ``False``: ``uncertainty`` holds sampling VARIANCES (metafor's ``vi``, the default);
        ``True``: it holds standard errors (``se(sei, sd=True)``, brms's convention).
    fixed : str
        Right-hand side without the cluster term: the moderators (meta-regression).
    cluster : str or None
        Column whose levels are the clusters (``(1|cluster)``); ``None`` for the ordinary
        random-effects model.
    estimate_id : str or None
        Column of the estimate level in the nested notation ``(1|cluster/estimate_id)``.
    """

    response: str
    uncertainty: str
    uncertainty_is_sd: bool
    fixed: str
    cluster: str | None = None
    estimate_id: str | None = None

    @property
    def has_intercept(self) -> bool:
        """Whether the location model has an intercept."""
        return formula_has_intercept(self.fixed)

    def response_call(self) -> str:
        """The response call that replaces ``yi | se(vi)`` for Bambi."""
        cluster = f", cluster={self.cluster}" if self.cluster else ""
        return (
            f"{RESPONSE_FUNCTION}({single_term(self.response)}, {single_term(self.uncertainty)}, "
            f"sd={self.uncertainty_is_sd}{cluster})"
        )


def parse_meta_formula(formula: str) -> MetaFormula:
    """Take a meta-analytic formula apart.

    Parameters
    ----------
    formula : str
        ``"yi | se(vi) ~ <moderators> + (1|cluster)"``; ``se(sei, sd=True)`` reads standard
        errors instead of variances; ``(1|cluster/estimate)`` is accepted as the same
        three-level model; without a group term the model is the ordinary random-effects model.

    Returns
    -------
    MetaFormula

    Raises
    ------
    ValueError
        If the left-hand side does not give the sampling uncertainty, or the group terms ask for a
        structure the compound-symmetric model cannot express (random slopes, crossed or several
        cluster factors, more than three levels).
    """
    if not isinstance(formula, str):
        raise TypeError(f"'formula' must be a string; got {type(formula).__name__}.")
    if formula.count("~") != 1:
        raise ValueError(f"'formula' must have exactly one '~'; got {formula!r}.")
    check_formula_text(formula)
    lhs, rhs = (part.strip() for part in formula.split("~"))
    if not rhs:
        raise formula_error(
            formula,
            "the right-hand side is empty; write '~ 1' for the pooled effect, '~ 1 + x' for a "
            "meta-regression.",
        )
    response, uncertainty, is_sd = _parse_lhs(lhs, formula)

    pieces = _split_top_level(rhs, "+")
    group_pieces = [piece for piece in pieces if _is_group_term(piece)]
    fixed_pieces = [piece for piece in pieces if not _is_group_term(piece)]
    cluster, estimate_id = _parse_group_terms(group_pieces, formula)
    fixed = " + ".join(fixed_pieces) if fixed_pieces else "1"
    terms = _description(f"y ~ {fixed}", formula).terms
    if not terms:
        raise formula_error(
            formula,
            f"'~ {rhs}' leaves nothing to estimate (no intercept and no moderators). Write "
            "'~ 1' for the pooled effect; a model with the pooled effect fixed at 0 is not "
            "supported.",
        )
    return MetaFormula(response, uncertainty, is_sd, fixed, cluster, estimate_id)


def center_continuous_moderators(
    rhs: str, is_continuous: Callable[[str], bool]
) -> tuple[str, dict[str, str]]:
    """Wrap the continuous factors of a right-hand side in ``center()``.

    Parameters
    ----------
    rhs : str
        The moderator part of a formula, e.g. ``"1 + year * pubstatus + deltype + log(n)"``.
    is_continuous : callable
        ``is_continuous(factor)`` says whether a factor (a column name or a call such as
        ``log(n)`` or ``I(year - 1990)``) is a continuous moderator on the data.

    Returns
    -------
    formula : str
        ``"1 + center(year) * center(pubstatus) + deltype + center(log(n))"``.
    aliases : dict
        Maps each resulting term (after formulae expands ``*``) that contains a centred factor
        back to what the user wrote, e.g. ``{"center(year)": "year",
        "center(year):center(pubstatus)": "year:pubstatus", "center(log(n))": "log(n)"}``.
    """
    new_terms = []
    for term in _split_top_level(rhs, "+"):
        pieces = []
        for piece in _split_factors(term):
            factor = piece.strip()
            centre = factor not in (":", "*") and _is_operand(factor) and is_continuous(factor)
            pieces.append(f"center({factor})" if centre else piece)
        new_terms.append("".join(pieces))
    formula = " + ".join(new_terms)
    aliases = {}
    for term in _description(f"y ~ {formula}", rhs).terms:
        name = getattr(term, "name", None)
        if isinstance(term, fm.terms.Term) and name and "center(" in name:
            aliases[name] = uncentred_name(name)
    return formula, aliases


def uncentred_name(name: str) -> str:
    """A term or column name with its ``center(...)`` wrappers removed, as the user wrote it."""
    while (start := name.find("center(")) >= 0:
        depth, inner = 0, start + len("center(")
        for position in range(inner - 1, len(name)):
            depth += {"(": 1, ")": -1}.get(name[position], 0)
            if depth == 0:
                name = name[:start] + name[inner:position] + name[position + 1 :]
                break
        else:
            break
    return name


def _split_factors(term: str) -> list[str]:
    """Split a term at top-level ``:`` and ``*``, keeping the separators as pieces."""
    pieces, depth, current = [], 0, []
    for char in term:
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if char in ":*" and depth == 0:
            pieces += ["".join(current), char]
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return [piece for piece in pieces if piece.strip()]


def _is_operand(factor: str) -> bool:
    """A column name or one call ``f(...)`` spanning the whole factor (not ``x - 1``)."""
    if is_identifier(factor):
        return True
    match = re.match(r"^[A-Za-z][A-Za-z0-9_.]*\(", factor)
    if match is None or not factor.endswith(")"):
        return False
    depth = 0
    for position in range(match.end() - 1, len(factor)):
        depth += {"(": 1, ")": -1}.get(factor[position], 0)
        if depth == 0:
            return position == len(factor) - 1
    return False


def parse_scale_formulas(formulas: tuple[str, ...], has_cluster: bool) -> dict[str, str]:
    """Read the scale formulas of a location-scale model.

    Parameters
    ----------
    formulas : tuple of str
        The additional formulas of a ``bmb.Formula``, e.g. ``("tau ~ z", "rho ~ w")``.
    has_cluster : bool
        Whether the main formula has a cluster term ``(1|g)`` (and so a ``rho`` parameter).

    Returns
    -------
    dict of str to str
        Modelled parameter -> right-hand side, e.g. ``{"tau": "z"}``.

    Raises
    ------
    ValueError
        If a formula models something other than ``tau`` or ``rho``, models ``rho`` without a
        cluster level, models a parameter twice, or has group-specific terms.
    """
    scale: dict[str, str] = {}
    for formula in formulas:
        if not isinstance(formula, str) or formula.count("~") != 1:
            raise ValueError(f"A scale formula must read 'tau ~ z' or 'rho ~ z'; got {formula!r}.")
        check_formula_text(formula)
        parameter, rhs = (part.strip() for part in formula.split("~"))
        if not rhs:
            raise formula_error(formula, "the right-hand side is empty; write e.g. 'tau ~ z'.")
        if parameter not in SCALE_PARAMETERS:
            raise ValueError(
                f"Scale formula {formula!r}: the left-hand side must be 'tau' (heterogeneity SD, "
                "log link) or 'rho' (cluster share of tau^2, logit link); got "
                f"{parameter!r}. Moderators of the effect size itself go on the right-hand side of "
                "the main formula, 'yi | se(vi) ~ 1 + x'."
            )
        if parameter == "rho" and not has_cluster:
            raise ValueError(
                f"Scale formula {formula!r}: rho, the share of tau^2 at the cluster level, exists "
                "only in a multilevel model. Add the cluster term to the main formula, e.g. "
                "'yi | se(vi) ~ 1 + (1|cluster)', or drop the rho formula."
            )
        if parameter in scale:
            raise ValueError(f"'{parameter}' has two scale formulas; give one, e.g. '{formula}'.")
        if any(_is_group_term(piece) for piece in _split_top_level(rhs, "+")):
            raise ValueError(
                f"Scale formula {formula!r}: group-specific terms are not supported in a scale "
                "formula (the cluster level is set by (1|cluster) in the main formula); use "
                "moderators only."
            )
        scale[parameter] = rhs
    return scale


def formula_has_intercept(rhs: str) -> bool:
    """Whether the right-hand side ``rhs`` of a formula has an intercept."""
    description = _description(f"y ~ {rhs}", rhs)
    return any(isinstance(term, fm.terms.Intercept) for term in description.terms)


def _parse_lhs(lhs: str, formula: str) -> tuple[str, str, bool]:
    match = _LHS_PATTERN.match(lhs)
    if match is None:
        raise ValueError(
            "The left-hand side must give the effect sizes and their known sampling variances, "
            "e.g. 'yi | se(vi) ~ 1' (vi = VARIANCES, as in metafor) or "
            "'yi | se(sei, sd=True) ~ 1' "
            f"(standard errors, as in brms); got {lhs!r}."
        )
    response = match["response"].strip()
    arguments = _split_top_level(match["arguments"], ",")
    uncertainty, options = arguments[0].strip(), [arg.strip() for arg in arguments[1:]]
    is_sd, explicit = False, False
    for option in options:
        key, _, value = (part.strip() for part in option.partition("="))
        if key != "sd" or value not in {"True", "False", "TRUE", "FALSE"} or explicit:
            raise ValueError(
                f"se() takes one option, sd=True (standard errors) or sd=False (variances, the "
                f"default); got {option!r}."
            )
        is_sd, explicit = value.upper() == "TRUE", True
    if not response or not uncertainty:
        raise ValueError(f"Could not read the response and se() argument from {lhs!r}.")
    if not explicit:
        _refuse_likely_standard_errors(uncertainty, formula)
    return response, uncertainty, is_sd


def _refuse_likely_standard_errors(uncertainty: str, formula: str) -> None:
    """``se(sqrt(vi))`` or ``se(sei)`` without ``sd=``: almost surely standard errors."""
    if re.match(r"^\s*(np\.)?sqrt\s*\(", uncertainty):
        reason = f"'{uncertainty}' is a square root, i.e. a standard error"
    elif is_identifier(uncertainty) and _STANDARD_ERROR_NAME.search(uncertainty.strip()):
        reason = f"the column name '{uncertainty}' says it holds standard errors"
    else:
        return
    raise formula_error(
        formula,
        f"se() reads VARIANCES (metafor's vi) unless told otherwise, and {reason}. brms's se() "
        f"takes standard errors: write se({uncertainty}, sd=True) for standard errors, or "
        f"se({uncertainty}, sd=False) if the column really holds sampling variances.",
    )


def _is_group_term(piece: str) -> bool:
    piece = piece.strip()
    return piece.startswith("(") and piece.endswith(")") and "|" in piece


def _parse_group_terms(pieces: list[str], formula: str) -> tuple[str | None, str | None]:
    """Return (cluster, estimate_id) or raise for structures CS cannot express."""
    if not pieces:
        return None, None
    description = _description("y ~ " + " + ".join(pieces), formula)
    singles, nested = [], []
    for term in description.terms:
        if not isinstance(term, fm.terms.GroupSpecificTerm):
            continue
        if not isinstance(term.expr, fm.terms.Intercept):
            raise ValueError(
                f"Random slopes such as '{term}' are not part of the compound-symmetric "
                "(tau, rho) model, which has one random intercept per cluster and one per "
                "estimate. Use moderators (fixed effects) or a scale formula 'tau ~ z' instead."
            )
        names = [component.name for component in term.factor.components]
        (singles if len(names) == 1 else nested).append(names)
    cluster_names = {names[0] for names in singles}
    if len(cluster_names) != 1:
        found = ", ".join(f"(1|{name})" for name in sorted(cluster_names)) or "none"
        raise ValueError(
            "The compound-symmetric model has exactly one cluster factor, written (1|cluster) or "
            f"(1|cluster/estimate); found {found} among {' + '.join(pieces)}. Crossed or several "
            "cluster factors cannot be expressed by (tau, rho)."
        )
    cluster = cluster_names.pop()
    if not nested:
        return cluster, None
    if len(nested) > 1 or len(nested[0]) != 2 or nested[0][0] != cluster:
        raise ValueError(
            f"Only the three-level nesting (1|{cluster}/estimate) is supported; got "
            f"{' + '.join(pieces)}."
        )
    return cluster, nested[0][1]


def _split_top_level(text: str, separator: str) -> list[str]:
    """Split ``text`` at ``separator`` characters outside parentheses and brackets."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == separator and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def is_identifier(text: str) -> bool:
    """Whether ``text`` is a bare column name (no call, no operator)."""
    return bool(_IDENTIFIER.match(text.strip()))
