"""Statistics of the claim experiments (experiments/claims.py): over seeds, paired by seed.

Every number is computed from per-round records (metrics.jsonl rows: dicts with "seed", "round",
"percent_annotated" and the scores; null/NaN where a score is undefined). Conventions, fixed before
any strategy was compared:
  - mean +- standard error over seeds: s.e. = std(ddof=1) / sqrt(n); n = seeds with a finite value
    (s.e. is NaN for n < 2).
  - paired difference of arm A minus arm B: per seed present (and finite) in both, A - B; then its
    mean +- s.e. over those seeds.
  - the headline statistic of a comparison: per seed, the mean over budgets (rounds 1..R, round 0
    being the shared pretrained model) of A - B; then mean +- s.e. over seeds. Averaging over the
    budgets first lowers the noise of a single budget, and is the same for every claim.
  - verdicts ("better" comparisons): better if mean - 2 s.e. > 0, worse if mean + 2 s.e. < 0, else
    tie; "too few seeds" with n < 2. Equivalence ("comparable" claims) with a margin e: equivalent
    if |mean| + 2 s.e. <= e, different if |mean| - 2 s.e. > e, else unclear.
  - annotation saving vs a baseline: the baseline's final mean score is the target; a curve reaches
    it at the smallest % annotated, excluding round 0, whose mean score is >= the target; the
    saving is (baseline's final % - that %) / baseline's final %, in percent of its annotation.
"""

import math

import numpy as np

Z = 2.0  # verdicts need the mean to clear 2 standard errors


def mean_se(values):
  """dict(mean, se, n) of the finite entries of `values` (mean NaN when none, se NaN when n < 2)."""
  v = np.asarray([np.nan if x is None else x for x in values], np.float64)
  v = v[np.isfinite(v)]
  n = int(v.size)
  mean = float(v.mean()) if n else float("nan")
  se = float(v.std(ddof=1) / math.sqrt(n)) if n >= 2 else float("nan")
  return dict(mean=mean, se=se, n=n)


def by_seed_round(records, metric):
  """{seed: {round: float value}} of one metric (None -> NaN)."""
  out = {}
  for r in records:
    value = r.get(metric)
    out.setdefault(r["seed"], {})[r["round"]] = float("nan") if value is None else float(value)
  return out


def rounds_of(records):
  return sorted({r["round"] for r in records})


def curve(records, metric):
  """Per round (sorted): percent annotated (mean over seeds) and mean_se of the metric over seeds.

  Returns dict(round=[...], percent=[...], mean=[...], se=[...], n=[...]).
  """
  rounds = rounds_of(records)
  values = by_seed_round(records, metric)
  out = dict(round=rounds, percent=[], mean=[], se=[], n=[])
  for k in rounds:
    pct = [r["percent_annotated"] for r in records if r["round"] == k]
    s = mean_se([v[k] for v in values.values() if k in v])
    out["percent"].append(float(np.mean(pct)))
    for key in ("mean", "se", "n"):
      out[key].append(s[key])
  return out


def paired(records_a, records_b, metric):
  """Paired (same seed, same round) difference A - B of one metric.

  Returns dict(round=[...], percent=[...], mean/se/n per round, seeds=[common seeds],
  average=mean_se over seeds of the per-seed mean over rounds >= 1,
  final=mean_se at the last common round).
  """
  a, b = by_seed_round(records_a, metric), by_seed_round(records_b, metric)
  seeds = sorted(set(a) & set(b))
  rounds = sorted(set(rounds_of(records_a)) & set(rounds_of(records_b)))
  pct = {
      k: float(np.mean([r["percent_annotated"] for r in records_a if r["round"] == k]))
      for k in rounds
  }
  out = dict(round=rounds, percent=[pct[k] for k in rounds], mean=[], se=[], n=[], seeds=seeds)
  for k in rounds:
    s = mean_se([a[s_][k] - b[s_][k] for s_ in seeds if k in a[s_] and k in b[s_]])
    for key in ("mean", "se", "n"):
      out[key].append(s[key])
  later = [k for k in rounds if k >= 1]
  per_seed = []
  for s_ in seeds:
    d = [a[s_][k] - b[s_][k] for k in later if k in a[s_] and k in b[s_]]
    d = [x for x in d if math.isfinite(x)]
    if d and len(d) == len(later):  # a seed counts only with every budget present
      per_seed.append(float(np.mean(d)))
  out["average"] = mean_se(per_seed)
  out["final"] = (
      mean_se(
          [
              a[s_][rounds[-1]] - b[s_][rounds[-1]]
              for s_ in seeds
              if rounds[-1] in a[s_] and rounds[-1] in b[s_]
          ]
      )
      if rounds
      else mean_se([])
  )
  return out


def better_verdict(stat):
  """ "better" / "worse" / "tie" / "too few seeds" for a mean_se dict of differences A - B."""
  if stat["n"] < 2 or not math.isfinite(stat["se"]):
    return "too few seeds"
  if stat["mean"] - Z * stat["se"] > 0:
    return "better"
  if stat["mean"] + Z * stat["se"] < 0:
    return "worse"
  return "tie"


def equivalence_verdict(stat, margin):
  """ "equivalent" / "different" / "unclear" / "too few seeds" for differences A - B vs `margin`."""
  if stat["n"] < 2 or not math.isfinite(stat["se"]):
    return "too few seeds"
  if abs(stat["mean"]) + Z * stat["se"] <= margin:
    return "equivalent"
  if abs(stat["mean"]) - Z * stat["se"] > margin:
    return "different"
  return "unclear"


def savings(curves, baseline, metric="group"):
  """Annotation saving of each arm vs `baseline` on the mean curves.

  curves: {label: curve(...) of `metric`}. Returns dict(target, baseline_percent,
  reach={label: % annotated or None}, saving={label: % of the baseline's annotation or None});
  empty when the baseline is missing.
  """
  if baseline not in curves or not curves[baseline]["mean"]:
    return {}
  base = curves[baseline]
  target, final_pct = base["mean"][-1], base["percent"][-1]
  out = dict(target=target, baseline_percent=final_pct, reach={}, saving={})
  for label, c in curves.items():
    reached = [
        p
        for k, p, m in zip(c["round"], c["percent"], c["mean"])
        if k >= 1 and math.isfinite(m) and m >= target
    ]
    out["reach"][label] = min(reached) if reached else None
    out["saving"][label] = (
        100.0 * (final_pct - min(reached)) / final_pct if reached and final_pct > 0 else None
    )
  return out


def fmt(stat, digits=3, signed=True):
  """ "m +- se (n=k)" of a mean_se dict (m with its sign when `signed`)."""
  if stat["n"] == 0:
    return "n/a"
  se = "" if not math.isfinite(stat["se"]) else f" +- {stat['se']:.{digits}f}"
  return f"{stat['mean']:{'+' if signed else ''}.{digits}f}{se} (n={stat['n']})"
