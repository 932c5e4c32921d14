"""OpenDP (Polars API) peer of Veil's accuracy benchmark.

One Context per question and setting, the privacy unit a user (`identifier="user_id"`,
one user's rows may all change), the bounds set in the query plan with OpenDP's own
truncation (`truncate_per_group`, `truncate_num_groups`), the query resolved once into a
measurement and that measurement invoked once per release. See README.md for what each
step does inside the library.
"""

import sys
import time

import numpy as np
import polars as pl
import opendp.prelude as dp

import common

dp.enable_features("contrib")
SYSTEM = "opendp"


def loss(eps, delta, accounting, partitions):
    if accounting == "pure":
        if partitions == "public":
            return dp.loss_of(epsilon=eps), "Laplace (integer Laplace on counts)"
        return dp.loss_of(epsilon=eps, delta=delta), "Laplace; threshold on the noisy count"
    # zCDP: the Gaussian mode. With private partitions, half of delta goes to the threshold
    # and half to the zCDP-to-(epsilon, delta) conversion.
    if partitions == "public":
        return dp.loss_of(rho=common.rho_for(eps, delta)), "Gaussian (discrete on counts), zCDP"
    return (
        dp.loss_of(rho=common.rho_for(eps, delta / 2), delta=delta / 2),
        "Gaussian (discrete on counts), zCDP; threshold on the noisy count",
    )


def aggregations(question, variant, partitions):
    """Polars expressions, and which output column answers which aggregate."""
    value = pl.col("value").fill_null(0.0)
    count = dp.len(signed=True).alias("count")
    s = value.dp.sum((common.LOWER, common.UPPER)).alias("sum")
    mean = value.dp.mean((common.LOWER, common.UPPER)).alias("mean")
    median = value.dp.median(common.MEDIAN_CANDIDATES).alias("median")
    if question == "q1":
        return [count, s]
    if question == "q2":
        return [count, s] if variant == "mean=sum/count" else [count, s, mean]
    if question == "q3":
        # private partitions need a noisy count to threshold on (the mean's own is not one)
        return [mean] if partitions == "public" else [count, mean]
    if question == "q4":
        # private partitions need a noisy count to threshold on
        return [median] if partitions == "public" else [count, median]
    raise ValueError(question)


def bounded_rows(df):
    """The same truncation as the query's, run by plain Polars on the same frame."""
    kept = df.filter(
        pl.int_range(pl.len()).sort_by(pl.col("_r")).over("user_id", "country") < common.LINF
    ).filter(pl.struct("country").rank("dense").over("user_id") < common.L0)
    return kept["country"].to_numpy().astype(object), kept["value"].to_numpy()


def main():
    args = common.parse_args(SYSTEM)
    rng = np.random.default_rng(args.seed)
    user, country, value = common.load(args.data)
    df = pl.DataFrame({"user_id": user, "country": country.astype(str), "value": value})
    raw = common.raw_truth(country, value)
    keys = pl.LazyFrame({"country": common.COUNTRIES})

    for setting in common.settings(args):
        eps, delta, accounting, partitions = setting
        for question in args.question:
            variants = ["default", "mean=sum/count"] if question == "q2" else ["default"]
            for variant in variants:
                try:
                    run(args, rng, df, raw, keys, setting, question, variant)
                except Exception as e:  # noqa: BLE001 - recorded as a cell the library cannot fill
                    common.write(args.out, common.unsupported(
                        SYSTEM, question, setting, common.QUESTIONS[question],
                        f"{type(e).__name__}: {str(e).strip()[:300]}", variant))


def run(args, rng, df, raw, keys, setting, question, variant):
    eps, delta, accounting, partitions = setting
    frame = df.with_columns(_r=pl.Series(rng.random(df.height)))
    privacy_loss, mechanism = loss(eps, delta, accounting, partitions)
    t = time.perf_counter()
    context = dp.Context.compositor(
        data=frame.lazy(),
        privacy_unit=dp.unit_of(contributions=1, identifier="user_id"),
        privacy_loss=privacy_loss,
        split_evenly_over=1,
        # max_length: float sums need a bound on the rows per group (for their rounding
        # allowance), and with private partitions also on the number of groups: the 249
        # ISO 3166 codes, a public bound.
        margins=[dp.polars.Margin(by=["country"], max_length=len(df),
                                  max_groups=None if partitions == "public" else 249)],
    )
    query = (
        context.query()
        # "sample" (a shuffle inside the plan) keeps a uniform random LINF-subset; sorting
        # on a fresh uniform column per release keeps the same distribution, and lets the
        # bounded truth be recomputed exactly.
        .truncate_per_group(common.LINF, by=["country"],
                            keep=dp.polars.SortBy(by=pl.col("_r")))
        # keep="sample" fails at collect in 0.16 with Polars 1.36 (duplicate struct field)
        .truncate_num_groups(common.L0, by=["country"], keep="first")
        .group_by("country")
        .agg(*aggregations(question, variant, partitions))
    )
    if partitions == "public":
        query = query.with_keys(keys)
    measurement = query.resolve()
    summary = query.summarize()
    mechanism += "; scales: " + ", ".join(
        f"{c}/{a}: {d} {s:.4g}" for c, a, d, s in summary.select(
            "column", "aggregate", "distribution", "scale").iter_rows()
    )
    resolve_s = time.perf_counter() - t
    aggregates = common.QUESTIONS[question]
    rec = common.Recorder(SYSTEM, variant, question, setting, aggregates, mechanism,
                          notes=f"resolve {resolve_s:.1f}s")
    for i in range(args.releases):
        if i:
            frame = frame.with_columns(_r=pl.Series(rng.random(df.height)))
        with common.Timer() as timer:
            out = measurement(frame.lazy()).collect()
        released = {}
        cols = out.columns
        for a in aggregates:
            col = a
            if a == "mean" and variant == "mean=sum/count":
                pairs = zip(out["country"].to_list(), out["sum"].to_list(),
                            out["count"].to_list())
                released[a] = {c: (s / n if n and n > 0 else None) for c, s, n in pairs}
                continue
            if col not in cols:
                continue
            released[a] = {c: (float(v) if v is not None else None)
                           for c, v in zip(out["country"].to_list(), out[col].to_list())}
        bounded = common.bounded_truth(*bounded_rows(frame))
        rec.add(released, bounded, raw, timer.seconds)
    common.write(args.out, rec.lines())


if __name__ == "__main__":
    sys.exit(main())
