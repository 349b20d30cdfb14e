"""Figures of a fitted meta-analysis (matplotlib), one module per figure.

Every function takes the model and what ``fit()`` returned, draws on ``ax=`` (or a new figure
sized for the data) and returns the matplotlib Axes. :mod:`~bambi_meta.results.figures.scales`
labels the effect-size axis by the measure and back-transforms its ticks (``transform=``).
"""
