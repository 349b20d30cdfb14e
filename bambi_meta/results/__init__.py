"""What a meta-analyst reports, from a model and its posterior.

Tables, effects, predictions, model comparison, the frequentist companion and figures.
"""
