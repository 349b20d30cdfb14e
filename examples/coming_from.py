"""The same three-level model in bambi_meta, metafor and RoBMA, side by side.

metafor:  rma.mv(yi, vi, random = ~ 1 | district/school, data = dat)   (REML)
RoBMA:    brma(yi = yi, vi = vi, cluster = district, measure = "SMD", data = dat)
brms:     brm(yi | se(sqrt(vi)) ~ 1 + (1 | district/school), data = dat)
ours:     MetaModel("yi | se(vi) ~ 1 + (1|district)", dat, measure="SMD")

The RoBMA column is RoBMA 4's printed output for these data (posterior means); the metafor
column is metafor 3.8-1's REML fit. Run: ``python examples/coming_from.py [--draws N]``.
"""

import argparse

import pandas as pd

import bambi_meta as bmm

# RoBMA 4, brma(..., cluster = district, measure = "SMD"): posterior means as printed
ROBMA = {"mu": 0.183, "tau": 0.323, "rho": 0.634, "I2": 95.09, "I2 [within]": 34.67,
         "I2 [between]": 60.42, "H2": 22.75}  # fmt: skip
# metafor 3.8-1, rma.mv(yi, vi, random = ~ 1 | district/school), REML. metafor does not print
# H2 for rma.mv; it is (sum(sigma2) + vt) / vt with its typical variance vt = (k - p) / tr(P),
# computed in R 4.2 from the fit: W <- solve(res$V); X <- model.matrix(res);
# P <- W - W %*% X %*% solve(t(X) %*% W %*% X) %*% t(X) %*% W; vt <- (res$k - res$p) / sum(diag(P))
METAFOR = {"mu": 0.1847, "tau": 0.3127, "rho": 0.6653, "I2": 95.19, "I2 [within]": 31.86,
           "I2 [between]": 63.32, "H2": 20.78}  # fmt: skip


def main(draws: int) -> pd.DataFrame:
    data = bmm.load_dataset("dat.konstantopoulos2011")
    model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", data, measure="SMD")
    idata = model.fit(draws=draws, tune=draws, random_seed=1, progressbar=False)
    summary = bmm.summary(model, idata, include_mcmc_diagnostics=False)["Mean"]
    heterogeneity = bmm.summary_heterogeneity(model, idata)["Mean"]
    bayes = pd.concat([summary.loc[["mu"]], heterogeneity]).drop_duplicates()
    reml = model.fit_frequentist("REML")
    between = reml.I2_components["sigma2_cluster"]
    within = reml.I2_components["sigma2_estimate"]
    ours_reml = {
        "mu": reml.coefficients.loc["Intercept", "estimate"],
        "tau": reml.tau,
        "rho": reml.rho,
        "I2": reml.I2,
        "I2 [within]": within,
        "I2 [between]": between,
        "H2": reml.H2,
    }
    table = pd.DataFrame(
        {
            "bambi_meta": bayes,
            "RoBMA 4": pd.Series(ROBMA),
            "bambi_meta REML": pd.Series(ours_reml),
            "metafor REML": pd.Series(METAFOR),
        }
    ).loc[["mu", "tau", "rho", "I2", "I2 [within]", "I2 [between]", "H2"]]
    print("Posterior means (bambi_meta, RoBMA 4) and REML estimates (bambi_meta, metafor 3.8-1)")
    print(table.to_string(float_format="{:.4f}".format))
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--draws", type=int, default=2000, help="draws (and tuning steps) per chain"
    )
    main(parser.parse_args().draws)
