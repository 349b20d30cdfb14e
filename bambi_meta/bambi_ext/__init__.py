"""What plugs into Bambi: the meta-analytic formula, data columns, priors, family and model."""
