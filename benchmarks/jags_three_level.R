# The README model in JAGS, set up like RoBMA's multilevel models: non-centred latent cluster
# effects, the estimate level integrated out (y_i ~ N(mu + u_j, v_i + tau^2 (1 - rho))), the
# default priors of bambi_meta (mu ~ N(0, UISD/2), tau ~ HalfNormal(UISD/4), rho ~ Beta(1, 1),
# UISD = sqrt(2) for SMD). 3 chains, adapt 500, burn-in 2000, 5000 draws each (RoBMA's defaults).
# Usage: Rscript jags_three_level.R data.csv   (columns yi, vi, cluster)
# Prints one JSON line: sampling seconds (adapt + burn-in + draws), total draws, ESS (coda).
suppressMessages({library(rjags); library(coda)})
args <- commandArgs(trailingOnly = TRUE)
dat <- read.csv(args[1])
cl <- as.integer(factor(dat$cluster))
model <- "
model {
  for (j in 1:J) { z[j] ~ dnorm(0, 1) }
  for (i in 1:k) {
    y[i] ~ dnorm(mu + tau * sqrt(rho) * z[cluster[i]], 1 / (v[i] + tau * tau * (1 - rho)))
  }
  mu ~ dnorm(0, 1 / pow(uisd / 2, 2))
  tau ~ dnorm(0, 1 / pow(uisd / 4, 2)) T(0, )
  rho ~ dbeta(1, 1)
}"
data <- list(y = dat$yi, v = dat$vi, cluster = cl, k = nrow(dat), J = max(cl), uisd = sqrt(2))
start <- proc.time()[["elapsed"]]
m <- jags.model(textConnection(model), data = data, n.chains = 3, n.adapt = 500, quiet = TRUE,
                inits = lapply(1:3, function(c) list(.RNG.name = "base::Mersenne-Twister",
                                                     .RNG.seed = c)))
update(m, 2000, progress.bar = "none")
s <- coda.samples(m, c("mu", "tau", "rho"), n.iter = 5000, progress.bar = "none")
elapsed <- proc.time()[["elapsed"]] - start
ess <- effectiveSize(s)
means <- summary(s)$statistics[, "Mean"]
cat(sprintf('{"sampling_s": %.4f, "draws": %d, "ess_mu": %.1f, "ess_tau": %.1f, "ess_rho": %.1f, "mean_mu": %.5f, "mean_tau": %.5f, "mean_rho": %.5f, "jags": "%s"}\n',
            elapsed, 3L * 5000L, ess[["mu"]], ess[["tau"]], ess[["rho"]], means[["mu"]],
            means[["tau"]], means[["rho"]], jags.version()))
