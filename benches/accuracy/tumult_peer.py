"""Tumult Analytics peer of Veil's accuracy benchmark.

A Spark session on both cores; one Tumult Session per question and setting holding the
budget of all its releases, the protected change `AddRowsWithID("user_id")`, the bounds
set with `enforce(MaxGroupsPerID(...))` and `enforce(MaxRowsPerGroupPerID(...))`. Tumult
answers one aggregate per query, so a question with several aggregates is several queries
and the question's budget is split evenly between them (and the partition selection,
`get_groups`, with private partitions). Tumult's truncation is deterministic (rows ranked
by an unsalted SHA-256 of their content), so the bounded truth is computed once with
tmlt.core's own truncation functions. See README.md for what each step does.
"""

import os
import sys
import tempfile
import warnings

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
warnings.filterwarnings("ignore")

import common  # noqa: E402

SYSTEM = "tumult"


def spark_session():
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "8g")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", os.path.join(tempfile.gettempdir(), "veil-accuracy-spark"))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def main():
    args = common.parse_args(SYSTEM)
    import numpy as np
    from tmlt.analytics import (
        AddRowsWithID, ApproxDPBudget, KeySet, MaxGroupsPerID, MaxRowsPerGroupPerID,
        PureDPBudget, QueryBuilder, RhoZCDPBudget, Session,
    )
    from tmlt.core.utils.truncation import limit_keys_per_group, truncate_large_groups

    spark = spark_session()
    sdf = (spark.read.parquet(args.data).select("user_id", "country", "value")
           .where("value IS NOT NULL").cache())
    sdf.count()
    user, country, value = common.load(args.data)
    raw = common.raw_truth(country, value)

    kept = limit_keys_per_group(sdf, ["user_id"], ["country"], common.L0)
    kept = truncate_large_groups(kept, ["user_id", "country"], common.LINF).toPandas()
    bounded = common.bounded_truth(kept["country"].to_numpy().astype(object),
                                   kept["value"].to_numpy())
    all_keys = KeySet.from_dict({"country": common.COUNTRIES})

    def base():
        return (QueryBuilder("events")
                .enforce(MaxGroupsPerID("country", common.L0))
                .enforce(MaxRowsPerGroupPerID("country", common.LINF)))

    for setting in common.settings(args):
        eps, delta, accounting, partitions = setting
        questions = list(args.question)
        if "q2" in questions and "q1" not in questions:
            questions.insert(questions.index("q2"), "q1")
        for question in questions:
            if question == "q2":
                continue  # answered from q1's releases
            if partitions == "private" and accounting == "approx":
                for q in (["q1", "q2"] if question == "q1" else [question]):
                    if q in args.question:
                        common.write(args.out, common.unsupported(
                            SYSTEM, q, setting, common.QUESTIONS[q],
                            "get_groups (private partitions) needs an ApproxDPBudget session, "
                            "whose aggregates use Laplace/geometric noise: no Gaussian mode "
                            "with private partitions"))
                continue
            try:
                # the aggregate queries of the question
                if question == "q1":
                    parts = {"count": lambda g: g.count(name="v"),
                             "sum": lambda g: g.sum("value", common.LOWER, common.UPPER, name="v")}
                elif question == "q3":
                    parts = {"mean": lambda g: g.average("value", common.LOWER, common.UPPER,
                                                         name="v")}
                else:
                    parts = {"median": lambda g: g.median("value", common.LOWER, common.UPPER,
                                                          name="v")}
                shares = len(parts) + (1 if partitions == "private" else 0)
                if accounting == "pure" and partitions == "public":
                    per_query = PureDPBudget(eps / shares)
                    session_budget = PureDPBudget(eps * args.releases)
                    mechanism = "geometric on counts, Laplace on float sums; pure DP"
                elif accounting == "approx":
                    rho = common.rho_for(eps, delta)
                    per_query = RhoZCDPBudget(rho / shares)
                    session_budget = RhoZCDPBudget(rho * args.releases)
                    mechanism = f"discrete Gaussian on counts, Gaussian on float sums; zCDP rho={rho:.4g}"
                else:
                    per_query = ApproxDPBudget(eps / shares, 0)
                    select_budget = ApproxDPBudget(eps / shares, delta)
                    session_budget = ApproxDPBudget(eps * args.releases, delta * args.releases)
                    mechanism = ("geometric on counts, Laplace on float sums; get_groups: "
                                 "geometric-noised row count of the truncated table, thresholded")
                mechanism += f"; budget split evenly over {shares} queries"
                session = Session.from_dataframe(
                    privacy_budget=session_budget, source_id="events", dataframe=sdf,
                    protected_change=AddRowsWithID(id_column="user_id"))
                recs = {}
                for q in (["q1", "q2"] if question == "q1" else [question]):
                    notes = ("count and sum are q1's queries; mean = sum / count, post-processing"
                             if q == "q2" else "")
                    recs[q] = common.Recorder(SYSTEM, "default", q, setting,
                                              common.QUESTIONS[q], mechanism, notes)
                for _ in range(args.releases):
                    with common.Timer() as timer:
                        keys = all_keys
                        if partitions == "private":
                            groups = session.evaluate(
                                QueryBuilder("events")
                                .enforce(MaxGroupsPerID("country", common.L0))
                                .enforce(MaxRowsPerGroupPerID("country", 1))
                                .get_groups(["country"]),
                                select_budget)
                            keys = KeySet.from_dataframe(groups)
                        released = {}
                        for a, build in parts.items():
                            out = session.evaluate(build(base().groupby(keys)), per_query).toPandas()
                            released[a] = dict(zip(out["country"], out["v"].astype(float)))
                    if question == "q1":
                        released["mean"] = {
                            c: (released["sum"][c] / n if n > 0 else None)
                            for c, n in released["count"].items()}
                    for q, rec in recs.items():
                        rec.add(released, bounded, raw, timer.seconds)
                for q, rec in recs.items():
                    if q in args.question:
                        common.write(args.out, rec.lines())
            except Exception as e:  # noqa: BLE001 - recorded as a cell the library cannot fill
                for q in (["q1", "q2"] if question == "q1" else [question]):
                    if q in args.question:
                        common.write(args.out, common.unsupported(
                            SYSTEM, q, setting, common.QUESTIONS[q],
                            f"{type(e).__name__}: {str(e).strip()[:300]}"))
    spark.stop()


if __name__ == "__main__":
    sys.exit(main())
