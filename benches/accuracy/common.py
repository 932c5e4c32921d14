"""Shared parts of the peer scripts: the CLI, the data, the truths, the metrics.

Every peer answers the same questions on the same rows (nulls in `value` dropped before
the library sees them) with the same bounds, and reports the same statistics, so the
peer scripts only hold what differs: how each library is asked.
"""

import argparse
import json
import math
import os
import time

import numpy as np
import pyarrow.parquet as pq

COUNTRIES = [
    "US", "IN", "BR", "DE", "GB", "FR", "JP", "MX", "ID", "IT", "ES", "CA", "TR", "KR", "PL",
    "NG", "AR", "PH", "VN", "EG", "NL", "CO", "ZA", "TH", "AU", "SE", "BE", "CH", "PK", "CL",
    "AT", "PT", "RO", "CZ", "GR", "IL", "DK", "FI", "NO", "IE", "NZ", "HU", "UA", "MA", "KE",
    "PE", "SG", "MY", "BD", "LU",
]
L0 = 3  # countries per user
LINF = 5  # rows per (user, country)
LOWER, UPPER = 0.0, 100.0  # value clamp
QUESTIONS = {
    "q1": ["count", "sum"],
    "q2": ["count", "sum", "mean"],
    "q3": ["mean"],
    "q4": ["median"],
}
# Median candidates, for libraries that select among a finite set: a 0.1 grid on the bounds.
MEDIAN_CANDIDATES = [round(i * 0.1, 1) for i in range(1001)]


def parse_args(system):
    p = argparse.ArgumentParser(description=f"{system} peer of Veil's accuracy benchmark")
    p.add_argument("--data", required=True, help="Parquet file (user_id, country, value, ...)")
    p.add_argument("--epsilon", default="0.1,1,4", help="total epsilon per question; a list")
    p.add_argument("--delta", type=float, default=1e-6,
                   help="delta of the approximate settings and of private partitions")
    p.add_argument("--accounting", default="pure,approx",
                   help="pure: Laplace-type noise (delta 0 with public partitions); "
                        "approx: the library's Gaussian mode at (epsilon, delta)")
    p.add_argument("--partitions", default="public,private", help="public, private or both")
    p.add_argument("--question", default="q1,q2,q3,q4", help="q1..q4; a list")
    p.add_argument("--releases", type=int, default=20, help="releases per setting")
    p.add_argument("--seed", type=int, default=None, help="seed for this script's own draws")
    p.add_argument("--out", required=True, help="JSONL file to append to")
    a = p.parse_args()
    a.epsilon = [float(e) for e in a.epsilon.split(",")]
    a.accounting = a.accounting.split(",")
    a.partitions = a.partitions.split(",")
    a.question = a.question.split(",")
    return a


def settings(args):
    """(epsilon, delta, accounting, partitions) for every setting asked for."""
    out = []
    for partitions in args.partitions:
        for accounting in args.accounting:
            delta = 0.0 if (partitions == "public" and accounting == "pure") else args.delta
            for eps in args.epsilon:
                out.append((eps, delta, accounting, partitions))
    return out


def load(path):
    """The rows with a value: (user_id int64, country str array, value float64)."""
    t = pq.read_table(path, columns=["user_id", "country", "value"])
    t = t.filter(t["value"].is_valid())
    return (
        t["user_id"].to_numpy(),
        np.asarray(t["country"].to_pylist(), dtype=object),
        t["value"].to_numpy(),
    )


class Truth:
    """Per-country count, sum, mean and sorted values of a set of rows."""

    def __init__(self, country, value):
        import pandas as pd

        codes, keys = pd.factorize(np.asarray(country), sort=False)
        value = np.asarray(value, dtype=float)
        order = np.lexsort((value, codes))
        c, v = codes[order], value[order]
        bounds = np.searchsorted(c, np.arange(len(keys) + 1))
        self.count, self.sum, self.mean, self.sorted = {}, {}, {}, {}
        for i, k in enumerate(keys):
            vals = v[bounds[i]:bounds[i + 1]]
            self.count[k] = float(len(vals))
            self.sum[k] = float(vals.sum())
            self.mean[k] = float(vals.mean()) if len(vals) else float("nan")
            self.sorted[k] = vals

    def get(self, aggregate, country):
        table = {"count": self.count, "sum": self.sum, "mean": self.mean}[aggregate]
        return table.get(country, 0.0)


def raw_truth(country, value):
    """No bounding, no clamping: every row with a value."""
    return Truth(country, value)


def bounded_truth(country, value):
    """The rows a library's bounding kept, values clamped to the bounds."""
    return Truth(country, np.clip(value, LOWER, UPPER))


def rank_error(sorted_values, released):
    n = len(sorted_values)
    if n == 0 or released is None or not math.isfinite(released):
        return None
    lo = np.searchsorted(sorted_values, released, side="left")
    hi = np.searchsorted(sorted_values, released, side="right")
    return abs((lo + hi) / 2.0 - 0.5 * n) / n


def relative_error(truth, released):
    if truth == 0 or released is None or not math.isfinite(released):
        return None
    return abs(released - truth) / abs(truth)


def rho_for(epsilon, delta):
    """The largest zCDP rho whose conversion to (epsilon, delta)-DP meets epsilon, by
    OpenDP's own zCDP-to-approximate-DP conversion (Canonne, Kamath, Steinke 2020). All
    peers' Gaussian settings use this rho, so their privacy is the same."""
    import opendp.prelude as dp

    dp.enable_features("contrib")

    def eps_at(rho):
        # a Gaussian of scale 1 at sensitivity s has rho = s^2 / 2
        m = dp.m.make_gaussian(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float),
                               scale=1.0)
        profile = dp.c.make_zCDP_to_approxDP(m).map(math.sqrt(2 * rho))
        return profile.epsilon(delta)

    lo, hi = 0.0, epsilon
    for _ in range(60):
        mid = (lo + hi) / 2
        if eps_at(mid) <= epsilon:
            lo = mid
        else:
            hi = mid
    return lo


class Recorder:
    """Collects the errors of one (question, setting) over its releases."""

    def __init__(self, system, variant, question, setting, aggregates, mechanism, notes=""):
        self.system, self.variant, self.question = system, variant, question
        self.eps, self.delta, self.accounting, self.partitions = setting
        self.aggregates = aggregates
        self.mechanism = mechanism
        self.notes = notes
        self.errors = {a: ([], []) for a in aggregates}
        # Per aggregate and country, the bounded errors of the releases that had it.
        self.by_country = {a: {} for a in aggregates}
        self.released = []
        self.times = []

    def add(self, released, bounded, raw, seconds):
        """released: {aggregate: {country: value}}; bounded, raw: Truth."""
        self.times.append(seconds)
        countries = set()
        for a in self.aggregates:
            for country, value in released.get(a, {}).items():
                if value is None:
                    continue
                countries.add(country)
                b, r = self.errors[a]
                if a == "median":
                    eb = rank_error(bounded.sorted.get(country, np.empty(0)), value)
                    er = rank_error(raw.sorted.get(country, np.empty(0)), value)
                else:
                    eb = relative_error(bounded.get(a, country), value)
                    er = relative_error(raw.get(a, country), value)
                if eb is not None:
                    b.append(eb)
                    self.by_country[a].setdefault(country, []).append(eb)
                if er is not None:
                    r.append(er)
        self.released.append(len(countries))

    def lines(self):
        for a in self.aggregates:
            b, r = self.errors[a]
            yield {
                "system": self.system,
                "variant": self.variant,
                "question": self.question,
                "aggregate": a,
                "metric": "rank error" if a == "median" else "relative error",
                "epsilon": self.eps,
                "delta": self.delta,
                "accounting": self.accounting,
                "partitions": self.partitions,
                "releases": len(self.times),
                "error_bounded": float(np.median(b)) if b else None,
                "error_raw": float(np.median(r)) if r else None,
                "countries_released": float(np.median(self.released)) if self.released else None,
                "countries_released_min": min(self.released) if self.released else None,
                "countries_released_max": max(self.released) if self.released else None,
                "seconds_per_release": float(np.mean(self.times)) if self.times else None,
                "mechanism": self.mechanism,
                # {country: [median bounded error, releases that had it]}
                "by_country": {c: [float(np.median(e)), len(e)]
                               for c, e in sorted(self.by_country[a].items())},
                "notes": self.notes,
            }


def unsupported(system, question, setting, aggregates, reason, variant="default"):
    eps, delta, accounting, partitions = setting
    for a in aggregates:
        yield {
            "system": system, "variant": variant, "question": question, "aggregate": a,
            "epsilon": eps, "delta": delta, "accounting": accounting,
            "partitions": partitions, "releases": 0, "unsupported": reason,
        }


def write(out, lines):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "a") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
            print(json.dumps({k: line.get(k) for k in (
                "system", "variant", "question", "aggregate", "epsilon", "accounting",
                "partitions", "error_bounded", "error_raw", "countries_released",
                "seconds_per_release", "unsupported")}), flush=True)


class Timer:
    def __enter__(self):
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t
