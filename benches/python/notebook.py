"""Time a release from a notebook: `veil.run` on a DataFrame in memory, the `veil` command
on the file, and OpenDP's Python API on the same question (BENCHMARKS.md, "From Python").

The question is the engine benchmark's: count and sum of `value` in [0, 100] per country,
at most 3 countries per user and 5 rows per (user, country), ε = 1, δ = 1e-6, private
partitions (groups selected by a noisy threshold). Each timed call is one whole release
as a notebook user makes it, the data already in memory (or on disk for the command):

  veil.run(job, data=frame)           for a pandas, Polars and pyarrow frame
  veil.run(job) on the file            the same call reading the Parquet file
  write Parquet + veil.run(job)        the design not taken: data= as a temporary file
  veil run job.toml                    the command, as a process (its start included)
  OpenDP Context + query + collect     (--system opendp, in OpenDP's own virtualenv)

Every release charges a fresh ledger (created before the clock starts), so that no run
composes earlier ones. Rounds interleave the ways; the summary gives each way's median.

  python notebook.py --data events-1m.parquet --veil target/release/veil --rounds 7
  peers/bin/python notebook.py --data events-1m.parquet --system opendp --rounds 7
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

EPSILON, DELTA, L0, LINF, LOWER, UPPER = 1.0, 1e-6, 3, 5, 0.0, 100.0


def job(data, ledger, output):
    return {
        "source": {"path": data, "privacy_unit": "user_id"},
        "budget": {"ledger": ledger, "dataset": "bench", "purpose": "bench",
                   "epsilon": EPSILON, "delta": DELTA},
        "query": [{
            "name": "by_country", "group_by": ["country"],
            "max_groups_per_unit": L0, "max_rows_per_group": LINF,
            "aggregates": [{"kind": "count"},
                           {"kind": "sum", "column": "value", "bounds": [LOWER, UPPER]}],
        }],
        "output": {"path": output, "format": "parquet"},
    }


def job_toml(data, ledger, output):
    return f"""[source]
path = "{data}"
privacy_unit = "user_id"

[budget]
ledger = "{ledger}"
dataset = "bench"
purpose = "bench"
epsilon = {EPSILON}
delta = {DELTA}

[[query]]
name = "by_country"
group_by = ["country"]
max_groups_per_unit = {L0}
max_rows_per_group = {LINF}
aggregates = [{{ kind = "count" }}, {{ kind = "sum", column = "value", bounds = [{LOWER}, {UPPER}] }}]

[output]
path = "{output}"
format = "parquet"
"""


def veil_ways(args, directory):
    import pandas
    import polars
    import pyarrow.parquet

    import veil

    frames = {
        "pandas": pandas.read_parquet(args.data),
        "polars": polars.read_parquet(args.data),
        "pyarrow": pyarrow.parquet.read_table(args.data),
    }
    counter = iter(range(10**9))

    def fresh():
        index = next(counter)
        ledger = os.path.join(directory, f"ledger-{index}.sqlite")
        veil.Ledger(ledger).init_budget("bench", "bench", epsilon=10.0, delta=1e-3)
        return ledger, os.path.join(directory, f"out-{index}")

    def in_memory(kind):
        def way():
            ledger, output = fresh()
            started = time.perf_counter()
            veil.run(job("unused", ledger, output), data=frames[kind])
            return time.perf_counter() - started
        return way

    def on_file():
        ledger, output = fresh()
        started = time.perf_counter()
        veil.run(job(args.data, ledger, output))
        return time.perf_counter() - started

    def temporary_parquet():
        ledger, output = fresh()
        path = os.path.join(directory, "data.parquet")
        started = time.perf_counter()
        pyarrow.parquet.write_table(frames["pyarrow"], path, compression="none")
        veil.run(job(path, ledger, output))
        seconds = time.perf_counter() - started
        os.remove(path)
        return seconds

    def command():
        ledger, output = fresh()
        path = os.path.join(directory, "job.toml")
        with open(path, "w") as file:
            file.write(job_toml(args.data, ledger, output))
        started = time.perf_counter()
        subprocess.run([args.veil, "run", path, "--show", "0"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - started

    ways = {f"veil.run(data={kind})": in_memory(kind) for kind in frames}
    ways["veil.run on the file"] = on_file
    ways["Parquet write + veil.run on it"] = temporary_parquet
    if args.veil:
        ways["veil run (command)"] = command
    return ways


def opendp_ways(args):
    import numpy as np
    import opendp.prelude as dp
    import polars as pl

    dp.enable_features("contrib")
    frame = pl.read_parquet(args.data, columns=["user_id", "country", "value"])
    frame = frame.filter(pl.col("value").is_not_null())  # as the accuracy peers do
    rng = np.random.default_rng()

    def release():
        started = time.perf_counter()
        data = frame.with_columns(_r=pl.Series(rng.random(frame.height)))
        context = dp.Context.compositor(
            data=data.lazy(),
            privacy_unit=dp.unit_of(contributions=1, identifier="user_id"),
            privacy_loss=dp.loss_of(epsilon=EPSILON, delta=DELTA),
            split_evenly_over=1,
            margins=[dp.polars.Margin(by=["country"], max_length=len(data), max_groups=249)],
        )
        query = (
            context.query()
            .truncate_per_group(LINF, by=["country"], keep=dp.polars.SortBy(by=pl.col("_r")))
            .truncate_num_groups(L0, by=["country"], keep="first")
            .group_by("country")
            .agg(dp.len(signed=True).alias("count"),
                 pl.col("value").fill_null(0.0).dp.sum((LOWER, UPPER)).alias("sum"))
        )
        query.release().collect()
        return time.perf_counter() - started

    return {"OpenDP Context + query + release": release}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--system", choices=["veil", "opendp"], default="veil")
    parser.add_argument("--veil", help="the veil binary, to time the command too")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    args.data = os.path.abspath(args.data)
    with tempfile.TemporaryDirectory(prefix="veil-notebook-bench-") as directory:
        ways = veil_ways(args, directory) if args.system == "veil" else opendp_ways(args)
        for way in ways.values():  # warm up: imports, first allocation, page cache
            way()
        times = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, way in ways.items():
                times[name].append(way())
    for name, seconds in times.items():
        print(json.dumps({"way": name, "median_s": round(statistics.median(seconds), 4),
                          "runs_s": [round(s, 4) for s in seconds]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
