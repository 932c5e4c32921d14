"""PipelineDP peer of Veil's accuracy benchmark.

One DPEngine on the LocalBackend per release, with a NaiveBudgetAccountant holding the
question's total (epsilon, delta); the library splits it between its mechanisms. The rows
the library's own sampling kept are recorded by wrapping the backend's
`sample_fixed_per_key` (the only place LocalBackend samples), so the bounded truth is
exact. See README.md for what each step does inside the library.
"""

import sys

import numpy as np
import pipeline_dp
from pipeline_dp.report_generator import ExplainComputationReport

import common

SYSTEM = "pipelinedp"


class RecordingBackend(pipeline_dp.LocalBackend):
    """LocalBackend that keeps what its two sampling stages returned."""

    def __init__(self):
        super().__init__()
        self.stages = {}

    def sample_fixed_per_key(self, col, n, stage_name=None):
        out = list(super().sample_fixed_per_key(col, n, stage_name))
        self.stages[stage_name] = out
        return out

    def kept_rows(self):
        per_pair = dict(self.stages["Sample per (privacy_id, partition_key)"])
        countries, values = [], []
        for pid, pairs in self.stages["Sample per privacy_id"]:
            for pk, _acc in pairs:
                vals = per_pair[(pid, pk)]
                countries.extend([pk] * len(vals))
                values.extend(vals)
        return np.asarray(countries, dtype=object), np.asarray(values, dtype=float)


METRICS = {
    "q1": [pipeline_dp.Metrics.COUNT, pipeline_dp.Metrics.SUM],
    "q2": [pipeline_dp.Metrics.COUNT, pipeline_dp.Metrics.SUM, pipeline_dp.Metrics.MEAN],
    "q3": [pipeline_dp.Metrics.MEAN],
    "q4": [pipeline_dp.Metrics.PERCENTILE(50)],
}
FIELDS = {"count": "count", "sum": "sum", "mean": "mean", "median": "percentile_50"}


def main():
    args = common.parse_args(SYSTEM)
    if args.seed is not None:
        np.random.seed(args.seed)
    user, country, value = common.load(args.data)
    rows = list(zip(user.tolist(), country.tolist(), value.tolist()))
    raw = common.raw_truth(country, value)
    extractors = pipeline_dp.DataExtractors(
        privacy_id_extractor=lambda r: r[0],
        partition_extractor=lambda r: r[1],
        value_extractor=lambda r: r[2],
    )
    for setting in common.settings(args):
        eps, delta, accounting, partitions = setting
        noise = (pipeline_dp.NoiseKind.LAPLACE if accounting == "pure"
                 else pipeline_dp.NoiseKind.GAUSSIAN)
        for question in args.question:
            aggregates = common.QUESTIONS[question]
            rec = None
            try:
                for _ in range(args.releases):
                    backend = RecordingBackend()
                    accountant = pipeline_dp.NaiveBudgetAccountant(
                        total_epsilon=eps, total_delta=delta)
                    engine = pipeline_dp.DPEngine(accountant, backend)
                    params = pipeline_dp.AggregateParams(
                        noise_kind=noise,
                        metrics=METRICS[question],
                        max_partitions_contributed=common.L0,
                        max_contributions_per_partition=common.LINF,
                        min_value=common.LOWER,
                        max_value=common.UPPER,
                    )
                    report = ExplainComputationReport()
                    with common.Timer() as timer:
                        result = engine.aggregate(
                            rows, params, extractors,
                            public_partitions=common.COUNTRIES if partitions == "public" else None,
                            out_explain_computation_report=report)
                        accountant.compute_budgets()
                        result = list(result)
                    if rec is None:
                        text = report.text()
                        rec = common.Recorder(SYSTEM, "default", question, setting, aggregates,
                                              mechanism=" | ".join(
                                                  l.strip() for l in text.splitlines()
                                                  if l.strip())[:2000])
                    released = {a: {} for a in aggregates}
                    for pk, metrics in result:
                        for a in aggregates:
                            released[a][pk] = float(getattr(metrics, FIELDS[a]))
                    bounded = common.bounded_truth(*backend.kept_rows())
                    rec.add(released, bounded, raw, timer.seconds)
                common.write(args.out, rec.lines())
            except Exception as e:  # noqa: BLE001 - recorded as a cell the library cannot fill
                common.write(args.out, common.unsupported(
                    SYSTEM, question, setting, aggregates,
                    f"{type(e).__name__}: {str(e).strip()[:300]}"))


if __name__ == "__main__":
    sys.exit(main())
