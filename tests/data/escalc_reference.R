# Reference values for bambi_meta.escalc and bambi_meta.transf, computed with metafor's escalc().
#
# Run from the repository root (R 4.2 with metafor 3.8-1, metadat 1.2-0, jsonlite, gsl):
#
#     Rscript tests/data/escalc_reference.R
#
# It writes tests/data/escalc_reference.json:
#   software  the versions of R and the packages used (also printed below)
#   datasets  every input data set (only the columns escalc reads), with its source
#   cases     one block per (measure, data set, options): the metafor call, the arguments (argument
#             name -> column name, or a number for an assumed correlation), the options, and
#             metafor's yi, vi and its "ni" attribute (null where metafor returns NA)
#   transf    metafor's back-transformations (and base::exp) evaluated on a grid
# Numbers are written with 17 significant digits (sprintf("%.17g")), so every double round-trips.

suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
  library(jsonlite)
})

software <- list(
  R = R.version.string,
  metafor = as.character(packageVersion("metafor")),
  metadat = as.character(packageVersion("metadat")),
  jsonlite = as.character(packageVersion("jsonlite")),
  gsl = as.character(packageVersion("gsl"))  # hyperg_2F1 for measure = "UCOR"
)
cat(sprintf("%s: %s\n", names(software), unlist(software)), sep = "")

# A numeric vector as a JSON array of full-precision doubles (null for NA).
json_numbers <- function(x) {
  x <- as.numeric(x)
  text <- ifelse(is.na(x), "null", sprintf("%.17g", x))
  structure(paste0("[", paste(text, collapse = ","), "]"), class = "json")
}

# ---- data sets ---------------------------------------------------------------------------------
# metadat sets keep their own column names; the constructed ones use metafor's argument names.
datasets <- list()
sources <- list()
add_dataset <- function(name, data, source) {
  datasets[[name]] <<- data
  sources[[name]] <<- source
}

add_dataset("dat.bcg", dat.bcg[, c("tpos", "tneg", "cpos", "cneg")],
            "metadat::dat.bcg (Colditz et al., 1994): 13 trials, 2x2 counts, no zero cells")
add_dataset("dat.nielweise2007", dat.nielweise2007[, c("ai", "n1i", "ci", "n2i")],
            "metadat::dat.nielweise2007: 18 trials, events and group sizes; zero cells and a double zero")
add_dataset("dat.yusuf1985", dat.yusuf1985[, c("ai", "n1i", "ci", "n2i")],
            "metadat::dat.yusuf1985: 130 rows, events and group sizes; 12 rows with NA, 11 double zeros")
add_dataset("dat.gibson2002", dat.gibson2002[, c("n1i", "m1i", "sd1i", "n2i", "m2i", "sd2i",
                                                  "ai", "bi", "ci", "di")],
            "metadat::dat.gibson2002: 15 trials; means/SDs (2 rows NA) and 2x2 counts (9 rows NA)")
add_dataset("dat.normand1999", dat.normand1999[, c("n1i", "m1i", "sd1i", "n2i", "m2i", "sd2i")],
            "metadat::dat.normand1999 (Normand, 1999): 9 studies, means/SDs of length of stay")
add_dataset("dat.curtis1998", dat.curtis1998[, c("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i")],
            "metadat::dat.curtis1998: 102 rows, means/SDs of woody plant mass (ratio-of-means data)")
add_dataset("dat.molloy2014", dat.molloy2014[, c("ri", "ni")],
            "metadat::dat.molloy2014: 16 correlations")
add_dataset("dat.mcdaniel1994", dat.mcdaniel1994[, c("ri", "ni")],
            "metadat::dat.mcdaniel1994: 160 correlations (ni 6 to 4195)")
add_dataset("dat.craft2003", dat.craft2003[, c("ri", "ni")],
            "metadat::dat.craft2003: 60 correlations")
add_dataset("dat.pritz1997", dat.pritz1997[, c("xi", "ni")],
            "metadat::dat.pritz1997: 14 proportions; two with xi = ni")
add_dataset("dat.pagliaro1992", dat.pagliaro1992[, c("xi", "ni")],
            "metadat::dat.pagliaro1992: 54 proportions; some with xi = 0")
add_dataset("dat.debruin2009", dat.debruin2009[, c("xi", "mi")],
            "metadat::dat.debruin2009: 13 proportions given as events xi and non-events mi")
add_dataset("dat.hart1999", dat.hart1999[, c("x1i", "t1i", "x2i", "t2i")],
            "metadat::dat.hart1999: 6 trials, events and person-years per arm")
add_dataset("dat.nielweise2008", dat.nielweise2008[, c("x1i", "t1i", "x2i", "t2i")],
            "metadat::dat.nielweise2008: 9 trials, events and catheter-days per arm")
# Morris (2008), Carlson & Schmidt (1999) training studies, as typed on
# https://metafor-project.org/doku.php/analyses:morris2008 (treatment and control groups).
add_dataset("morris2008.treatment", data.frame(
  m_pre = c(30.6, 23.5, 0.5, 53.4, 35.6), m_post = c(38.5, 26.8, 0.7, 75.9, 36.0),
  sd_pre = c(15.0, 3.1, 0.1, 14.5, 4.7), sd_post = c(11.6, 4.1, 0.1, 4.4, 4.6),
  ni = c(20, 50, 9, 10, 14), ri = c(0.47, 0.64, 0.77, 0.89, 0.44)),
  "Morris (2008), treatment groups of 5 training studies (metafor-project.org analyses:morris2008)")
add_dataset("morris2008.control", data.frame(
  m_pre = c(23.1, 24.9, 0.6, 55.7, 34.8), m_post = c(19.7, 25.3, 0.6, 60.7, 33.4),
  sd_pre = c(13.8, 4.1, 0.2, 17.3, 3.1), sd_post = c(14.8, 3.3, 0.2, 17.9, 6.9),
  ni = c(20, 42, 9, 11, 14), ri = c(0.47, 0.64, 0.77, 0.89, 0.44)),
  "Morris (2008), control groups of 5 training studies (metafor-project.org analyses:morris2008)")

# Constructed edge cases: zero cells, double zeros (events and non-events), a table of zeros,
# a count equal to its group size, a missing value, very small and very large samples.
add_dataset("edge.2x2", data.frame(
  ai = c(4, 0, 0, 10, 5, 0, NA, 1, 0, 25),
  bi = c(16, 15, 10, 0, 0, 20, 10, 999, 0, 975),
  ci = c(8, 3, 0, 12, 3, 4, 3, 1, 0, 40),
  di = c(12, 12, 12, 0, 9, 0, 12, 1999, 0, 1960)),
  "constructed: regular, one zero, double zero events, double zero non-events, ai = n1i, two zeros, NA, rare events, all four cells zero, large")
add_dataset("edge.means", data.frame(
  m1i = c(10, 5.5, -1, 0, NA, 3, 0.0012, 100),
  sd1i = c(2, 1.2, 2, 1, 1, 0.5, 0.0003, 30),
  n1i = c(2, 5000, 10, 10, 10, 250000, 3, 40),
  m2i = c(12, 5.4, 2, 2, 3, 2.9, 0.0011, 80),
  sd2i = c(3, 1.1, 1.5, 1, 1, 0.6, 0.0004, 10),
  n2i = c(2, 7000, 12, 10, 10, 250000, 2, 35)),
  "constructed: n = 2 per group, large and very large n (lgamma), negative and zero mean (ROM undefined), NA, tiny scale, unequal SDs")
add_dataset("edge.cor", data.frame(
  ri = c(0.3, 0.99, -0.5, 0.2, 1, -1, 0, 0.45, NA, 0.6, -0.25),
  ni = c(50, 10, 3, 4, 20, 20, 5, 100000, 30, 2, 6)),
  "constructed: ni = 2, 3 (no variance), 4 (no UCOR), 5, 6; r = +-1 (ZCOR infinite), r = 0, NA, very large ni")
add_dataset("edge.prop", data.frame(
  xi = c(0, 10, 1, 0, 5, NA, 3, 999),
  ni = c(10, 10, 1, 1, 20, 10, 1000, 1000)),
  "constructed: xi = 0, xi = ni, n = 1 with each outcome, NA, rare, common")
add_dataset("edge.ir", data.frame(
  xi = c(0, 5, NA, 3, 120),
  ti = c(100, 1000, 10, 0.5, 2500.25)),
  "constructed: zero events, NA, fractional person-time")
add_dataset("edge.irr", data.frame(
  x1i = c(0, 0, 4, NA, 12, 30),
  t1i = c(100, 100, 1000, 10, 50.5, 1e5),
  x2i = c(0, 3, 9, 2, 0, 45),
  t2i = c(120, 120, 1100, 10, 48, 1.2e5)),
  "constructed: double zero, one zero in either arm, NA, large person-time")
add_dataset("edge.mn", data.frame(
  mi = c(10, 0, 2.5, NA, 1e4, 0.003),
  sdi = c(2, 1, 0.4, 1, 2500, 0.001),
  ni = c(2, 10, 15, 10, 80000, 7)),
  "constructed: n = 2, zero mean (MNLN undefined), NA, large n, tiny scale")
add_dataset("edge.prepost", data.frame(
  m1i = c(10, 10, 10, 5, NA, 100.2, 12),
  m2i = c(8, 8, 8, 5, 8, 98.1, 9),
  sd1i = c(2, 2, 2, 1, 2, 15, 3),
  sd2i = c(2, 2, 3, 1, 2, 14, 4),
  ni = c(2, 30, 30, 20, 30, 5000, 3),
  ri = c(0.5, 1, -1, 0, 0.5, 0.8, -0.3)),
  "constructed: n = 2 (no bias correction), r = 1 with equal SDs (SMCC undefined), r = -1, zero change, NA, large n, n = 3")

# ---- cases ---------------------------------------------------------------------------------------
cases <- list()
add_case <- function(measure, dataset, args, options = list(), label = NULL) {
  data <- datasets[[dataset]]
  values <- lapply(args, function(a) if (is.character(a)) data[[a]] else rep(a, nrow(data)))
  res <- suppressWarnings(do.call(escalc, c(list(measure = measure), values, options)))
  arg_text <- paste(names(args), vapply(args, function(a) as.character(a), ""), sep = " = ",
                    collapse = ", ")
  opt_text <- if (length(options)) {
    paste0(", ", paste(names(options), vapply(options, deparse, ""), sep = " = ", collapse = ", "))
  } else ""
  option_id <- if (length(options)) {
    paste(names(options), vapply(options, function(o) as.character(o), ""), sep = "=",
          collapse = ",")
  } else "default"
  scalar <- vapply(args, is.numeric, TRUE)
  if (any(scalar)) option_id <- paste0(option_id, ",", names(args)[scalar], "=",
                                       unlist(args[scalar]))
  cases[[length(cases) + 1]] <<- list(
    id = paste(c(measure, dataset, label, option_id), collapse = "/"),
    measure = measure,
    dataset = dataset,
    call = sprintf("escalc(measure = \"%s\", %s%s, data = %s)", measure, arg_text, opt_text,
                   dataset),
    args = args,
    options = if (length(options)) options else structure(list(), names = character(0)),
    yi = json_numbers(res$yi),
    vi = json_numbers(res$vi),
    ni = json_numbers(attr(res$yi, "ni"))
  )
}

count_options <- list(list(), list(to = "all"), list(to = "if0all"), list(to = "none"),
                      list(add = 1), list(add = 0.25, to = "all"), list(drop00 = TRUE),
                      list(drop00 = TRUE, to = "all"))
for (m in c("OR", "RR", "RD", "PETO")) {
  cells <- list(ai = "ai", bi = "bi", ci = "ci", di = "di")
  groups <- list(ai = "ai", n1i = "n1i", ci = "ci", n2i = "n2i")
  add_case(m, "dat.bcg", list(ai = "tpos", bi = "tneg", ci = "cpos", di = "cneg"))
  add_case(m, "dat.bcg", list(ai = "tpos", bi = "tneg", ci = "cpos", di = "cneg"), list(to = "all"))
  add_case(m, "dat.gibson2002", cells)
  add_case(m, "dat.yusuf1985", groups)
  add_case(m, "dat.yusuf1985", groups, list(drop00 = TRUE))
  for (options in count_options) {
    add_case(m, "dat.nielweise2007", groups, options)
    add_case(m, "edge.2x2", cells, options)
  }
}

means <- list(m1i = "m1i", sd1i = "sd1i", n1i = "n1i", m2i = "m2i", sd2i = "sd2i", n2i = "n2i")
for (m in c("MD", "SMD", "SMDH", "ROM")) {
  for (d in c("dat.normand1999", "dat.curtis1998", "dat.gibson2002", "edge.means")) {
    add_case(m, d, means)
  }
}

for (m in c("MN", "MNLN")) {
  add_case(m, "dat.normand1999", list(mi = "m1i", sdi = "sd1i", ni = "n1i"), label = "group1")
  add_case(m, "dat.normand1999", list(mi = "m2i", sdi = "sd2i", ni = "n2i"), label = "group2")
  add_case(m, "dat.curtis1998", list(mi = "m2i", sdi = "sd2i", ni = "n2i"))
  add_case(m, "edge.mn", list(mi = "mi", sdi = "sdi", ni = "ni"))
}

for (m in c("COR", "UCOR", "ZCOR")) {
  for (d in c("dat.molloy2014", "dat.mcdaniel1994", "dat.craft2003", "edge.cor")) {
    add_case(m, d, list(ri = "ri", ni = "ni"))
  }
}

proportion_options <- list(list(), list(to = "all"), list(to = "if0all"), list(to = "none"),
                           list(add = 1))
for (m in c("PR", "PLN", "PLO", "PAS")) {
  add_case(m, "dat.pritz1997", list(xi = "xi", ni = "ni"))
  add_case(m, "dat.debruin2009", list(xi = "xi", mi = "mi"))
  for (options in proportion_options) {
    add_case(m, "dat.pagliaro1992", list(xi = "xi", ni = "ni"), options)
    add_case(m, "edge.prop", list(xi = "xi", ni = "ni"), options)
  }
  add_case(m, "edge.prop", list(xi = "xi", ni = "ni"), list(add = 0.5))
}

rate_options <- list(list(), list(to = "all"), list(to = "if0all"), list(to = "none"),
                     list(add = 1))
for (m in c("IR", "IRLN")) {
  add_case(m, "dat.hart1999", list(xi = "x1i", ti = "t1i"))
  add_case(m, "dat.nielweise2008", list(xi = "x2i", ti = "t2i"))
  for (options in rate_options) add_case(m, "edge.ir", list(xi = "xi", ti = "ti"), options)
}

rates <- list(x1i = "x1i", t1i = "t1i", x2i = "x2i", t2i = "t2i")
for (m in c("IRR", "IRD")) {
  add_case(m, "dat.hart1999", rates)
  add_case(m, "dat.nielweise2008", rates)
  for (options in c(rate_options, list(list(drop00 = TRUE), list(drop00 = TRUE, to = "all")))) {
    add_case(m, "edge.irr", rates, options)
  }
}

prepost <- list(m1i = "m_post", m2i = "m_pre", sd1i = "sd_pre", sd2i = "sd_post", ni = "ni",
                ri = "ri")
edge_prepost <- list(m1i = "m1i", m2i = "m2i", sd1i = "sd1i", sd2i = "sd2i", ni = "ni", ri = "ri")
for (m in c("MC", "SMCC", "SMCR")) {
  drop_sd2 <- function(args) if (m == "SMCR") args[names(args) != "sd2i"] else args
  add_case(m, "morris2008.treatment", drop_sd2(prepost))
  add_case(m, "morris2008.control", drop_sd2(prepost))
  assumed <- drop_sd2(prepost)
  assumed$ri <- 0.7  # an assumed correlation, recycled over the rows
  add_case(m, "morris2008.treatment", assumed)
  add_case(m, "edge.prepost", drop_sd2(edge_prepost))
}

# ---- back-transformations --------------------------------------------------------------------------
x <- c(-800, -40, -5, -1.5, -0.3, -1e-8, 0, 1e-8, 0.2, 0.7, 1, 1.5, 1.5707963267948966, 1.6, 3,
       20, 700)
transf <- list(
  x = json_numbers(x),
  exp = json_numbers(exp(x)),  # metafor 3.8 has no transf.exp: users pass transf = exp
  ztor = json_numbers(transf.ztor(x)),
  ilogit = json_numbers(transf.ilogit(x)),
  iarcsin = json_numbers(transf.iarcsin(x))
)

out <- list(
  source = list(
    script = "tests/data/escalc_reference.R",
    command = "Rscript tests/data/escalc_reference.R",
    note = paste("metafor's escalc() with default vtype = 'LS'; yi, vi and attr(yi, 'ni') as",
                 "returned (NA written as null); numbers with 17 significant digits")
  ),
  software = software,
  datasets = lapply(names(datasets), function(name) {
    data <- datasets[[name]]
    list(name = name, source = sources[[name]],
         columns = lapply(as.list(data), json_numbers))
  }),
  cases = cases,
  transf = transf
)
writeLines(toJSON(out, auto_unbox = TRUE, json_verbatim = TRUE, pretty = TRUE, digits = NA),
           "tests/data/escalc_reference.json")
cat(length(cases), "cases written to tests/data/escalc_reference.json\n")
