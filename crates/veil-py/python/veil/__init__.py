"""Veil from Python: differentially private aggregates with the `veil` command's job files,
engine and privacy budget ledger.

    import veil
    rel = veil.run("configs/quickstart.toml")        # a job file, as `veil run`
    rel = veil.run(job_dict, data=df)                 # a dict job on a pandas/Polars/pyarrow table
    rel.tables["by_country"]                          # a pyarrow.Table with the CSV's columns
    veil.explain("configs/quickstart.toml")          # the plan as a dict, reading no rows
    veil.Ledger("veil-ledger.sqlite").status(dataset="events")
    veil.report(job, epsilons=[0.5, 1, 2])           # the utility report as a dict

Every call runs the code its command runs: the same checks, the same ledger, the same
files, the same messages. Errors are `ConfigError` (the command's exit code 2: the job, its
files, columns or arguments are wrong), `BudgetExceeded` (exit code 3: nothing was
released) and `VeilError` (their base, and any other failure). Noise comes from an
OS-seeded cryptographic generator; there is no seed to set.
"""

from __future__ import annotations

import datetime as _datetime
import html as _html
import json as _json
import os as _os
import pathlib as _pathlib
import tempfile as _tempfile
import warnings as _warnings
from collections.abc import Mapping as _Mapping
from typing import Any, Iterable, Optional, Union

from . import _veil
from ._veil import BudgetExceeded, ConfigError, VeilError, __version__

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "Ledger",
    "Release",
    "Report",
    "VeilError",
    "explain",
    "report",
    "run",
    "__version__",
]

PathLike = Union[str, "_os.PathLike[str]"]
Job = Union[PathLike, _Mapping]

#: How long a call waits for another process's lock on the ledger, in seconds (the
#: command's `--ledger-timeout`, whose default is 2 minutes).
LEDGER_TIMEOUT = 120.0


def _json_default(value: Any) -> Any:
    if isinstance(value, (_datetime.datetime, _datetime.date)):
        return value.isoformat()
    if isinstance(value, _os.PathLike):
        return _os.fspath(value)
    raise TypeError(
        f"a job holds tables, lists, strings, numbers and booleans, not {type(value).__name__}"
    )


def _job(job: Job, name: Optional[str]) -> tuple[str, str, str]:
    """A job as the extension takes it: ("file", path, name) or ("json", text, name)."""
    if isinstance(job, (str, _os.PathLike)):
        path = _os.fspath(job)
        return ("file", path, name or _pathlib.Path(path).stem)
    if isinstance(job, _Mapping):
        return ("json", _json.dumps(job, default=_json_default), name or "job")
    raise TypeError(
        f"a job is the path of a job file or a dict with the job file's tables, not {type(job).__name__}"
    )


def _as_of(as_of: Any) -> Optional[str]:
    if as_of is None or isinstance(as_of, str):
        return as_of
    if isinstance(as_of, (_datetime.datetime, _datetime.date)):
        return as_of.isoformat()
    raise TypeError(f"as_of takes an RFC 3339 text, a date or a datetime, not {type(as_of).__name__}")


def _table(table: Any, argument: str) -> Any:
    """A table as an object that exports an Arrow C stream (`__arrow_c_stream__`)."""
    if table is None or hasattr(table, "__arrow_c_stream__"):
        return table
    module = type(table).__module__.split(".")[0]
    if module == "pandas":  # pandas before 2.2 exports no stream of its own
        import pyarrow

        return pyarrow.Table.from_pandas(table, preserve_index=False)
    if module == "polars" and hasattr(table, "collect"):
        raise TypeError(f"{argument}= takes a Polars DataFrame: collect() the LazyFrame first")
    if hasattr(table, "to_arrow"):  # Polars before 1.0
        return table.to_arrow()
    raise TypeError(
        f"{argument}= takes a pandas, Polars or pyarrow table, or any object with "
        f"__arrow_c_stream__, not {type(table).__name__}"
    )


def _path(path: Optional[PathLike]) -> Optional[str]:
    return None if path is None else _os.fspath(path)


def _number(value: Any) -> str:
    """A released value as the command's preview prints it."""
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return "NaN"
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def _cost_text(manifest: dict) -> str:
    cost = manifest.get("cost") or {}
    parts = []
    if cost.get("epsilon") is not None:
        parts.append(f"ε = {cost['epsilon']:.4g}")
    if cost.get("delta"):
        parts.append(f"δ = {cost['delta']:.3g}")
    text = ", ".join(parts)
    if cost.get("composition") == "zcdp" and cost.get("rho") is not None:
        text += f" (zCDP ρ = {cost['rho']:.4g})"
    return text


class Release:
    """What `run` released: one pyarrow table per query, the manifest, the charge.

    Attributes:
        tables: query name → `pyarrow.Table`, the columns of the file written (group
            columns, then for every value `NAME`, `NAME_std`, `NAME_ci_low`, `NAME_ci_high`).
        paths: query name → the file written.
        manifest: `release.json` as a dict (what, how, at what cost, under which charge).
        manifest_path: where `release.json` was written.
        charge_id: the ledger's id of the committed charge.
        ledger: the ledger charged.
        budget_left: what is left of the budget, in words (None if the ledger could not tell).
        warnings: what went wrong after the release was published.
    """

    def __init__(self, raw: dict):
        import pyarrow

        self.charge_id: int = raw["charge_id"]
        self.ledger = _pathlib.Path(raw["ledger"])
        self.manifest_path = _pathlib.Path(raw["manifest_path"])
        self.manifest: dict = _json.loads(raw["manifest"])
        self.budget_left: Optional[str] = raw["budget_left"]
        self.warnings: list[str] = list(raw["warnings"])
        self.tables: dict[str, Any] = {}
        self.paths: dict[str, _pathlib.Path] = {}
        for query, path, stream in raw["tables"]:
            self.tables[query] = pyarrow.RecordBatchReader.from_stream(stream).read_all()
            self.paths[query] = _pathlib.Path(path)

    def to_pandas(self, name: str):
        """The table of query `name` as a pandas DataFrame (needs pandas)."""
        return self.tables[name].to_pandas()

    def to_polars(self, name: str):
        """The table of query `name` as a Polars DataFrame (needs polars)."""
        import polars

        return polars.from_arrow(self.tables[name])

    def __repr__(self) -> str:
        tables = ", ".join(f"{name!r}: {table.num_rows} groups" for name, table in self.tables.items())
        return (
            f"<veil.Release job={self.manifest.get('job')!r} charge={self.charge_id} "
            f"cost {_cost_text(self.manifest)} tables={{{tables}}}>"
        )

    def _repr_html_(self, rows: int = 20) -> str:
        escape = _html.escape
        manifest = self.manifest
        purpose = (manifest.get("purpose") or {}).get("name", "")
        head = [
            "<div class='veil-release'>",
            f"<p><b>Veil release</b> of job <code>{escape(str(manifest.get('job')))}</code>, "
            f"charge {self.charge_id} in <code>{escape(str(self.ledger))}</code> "
            f"(dataset <code>{escape(str((manifest.get('ledger') or {}).get('dataset')))}</code>, "
            f"purpose <code>{escape(str(purpose))}</code>)<br>",
            f"Privacy cost: <b>{escape(_cost_text(manifest))}</b>, "
            f"{escape(str(manifest.get('noise', '')))} noise"
            + (f"; budget left: {escape(self.budget_left)}" if self.budget_left else "")
            + "</p>",
        ]
        if not manifest.get("private", True):
            head.append(f"<p><b>NOT PRIVATE</b>: {escape(str(manifest.get('not_private_because')))}</p>")
        queries = {query.get("name"): query for query in manifest.get("queries", [])}
        for name, table in self.tables.items():
            group_by = list((queries.get(name) or {}).get("group_by") or [])
            columns = table.column_names
            values = [
                column
                for column in columns
                if column not in group_by
                and not column.endswith(("_std", "_ci_low", "_ci_high"))
            ]
            data = table.slice(0, rows).to_pydict()
            header = [escape(column) for column in group_by] + [
                escape(column) + (" (95% CI)" if f"{column}_ci_low" in data else "")
                for column in values
            ]
            head.append(
                f"<p><b>{escape(name)}</b>: {table.num_rows} groups → "
                f"<code>{escape(str(self.paths[name]))}</code></p>"
            )
            head.append("<table><thead><tr>")
            head.extend(f"<th>{cell}</th>" for cell in header)
            head.append("</tr></thead><tbody>")
            for row in range(min(rows, table.num_rows)):
                cells = [escape(str(data[column][row])) for column in group_by]
                for column in values:
                    cell = _number(data[column][row])
                    if f"{column}_ci_low" in data:
                        low = _number(data[f"{column}_ci_low"][row])
                        high = _number(data[f"{column}_ci_high"][row])
                        cell = f"{cell} [{low}, {high}]"
                    cells.append(escape(cell))
                head.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
            head.append("</tbody></table>")
            if table.num_rows > rows:
                head.append(f"<p>… and {table.num_rows - rows} more groups</p>")
        head.append("</div>")
        return "\n".join(head)


def run(
    job: Job,
    *,
    data: Any = None,
    consent: Any = None,
    ledger: Optional[PathLike] = None,
    output: Optional[PathLike] = None,
    as_of: Any = None,
    name: Optional[str] = None,
    ledger_timeout: float = LEDGER_TIMEOUT,
) -> Release:
    """Runs a job, as `veil run` does, and returns its `Release`.

    Args:
        job: the path of a job file, or a dict with the job file's tables (`source`,
            `budget`, `consent`, `query` as a list, `output`).
        data: the source's rows as a table (pandas, Polars, pyarrow, or anything with
            `__arrow_c_stream__`), read instead of `source.path` with the same consent,
            retention and column checks. Only the columns the job declares are read.
        consent: the consent log as a table, instead of `consent.path`.
        ledger: charge this ledger instead of the job's `budget.ledger`.
        output: write the release here instead of the job's `output.path`.
        as_of: judge consent and retention as of this time (text, date or datetime).
        name: the job's name in the ledger and the manifest (default: the file's stem, or
            "job" for a dict).
        ledger_timeout: seconds to wait for another process's lock on the ledger.

    Raises:
        ConfigError: the job, its files or columns are wrong.
        BudgetExceeded: the ledger refused the charge; nothing was released.
        VeilError: anything else failed; nothing was charged or released.
        KeyboardInterrupt: Ctrl-C before the commit; nothing was charged or released.
    """
    kind, value, job_name = _job(job, name)
    raw = _veil.run(
        kind,
        value,
        job_name,
        data=_table(data, "data"),
        consent=_table(consent, "consent"),
        ledger=_path(ledger),
        output=_path(output),
        as_of=_as_of(as_of),
        ledger_timeout=float(ledger_timeout),
    )
    release = Release(raw)
    for warning in release.warnings:
        _warnings.warn(warning, RuntimeWarning, stacklevel=2)
    return release


def explain(
    job: Job,
    *,
    data: Any = None,
    consent: Any = None,
    as_of: Any = None,
    name: Optional[str] = None,
) -> dict:
    """The plan of a job, as `veil explain --json` prints it: columns read, purpose,
    retention, consent, bounds, noise and 95% error of every value, cost and budget left.
    Reads the schema of the source (or of `data`), no rows."""
    kind, value, job_name = _job(job, name)
    text = _veil.explain(
        kind,
        value,
        job_name,
        data=_table(data, "data"),
        consent=_table(consent, "consent"),
        as_of=_as_of(as_of),
    )
    return _json.loads(text)


class Report(dict):
    """The utility report (`report.json` as a dict), with `html` (the self-contained page
    written beside it), `files` (everything written) and `text` (the command's summary)."""

    html: _pathlib.Path
    text: str

    def _repr_html_(self) -> str:
        page = self.html.read_text(encoding="utf-8")
        return (
            f"<p>Utility report: <code>{_html.escape(str(self.html))}</code></p>"
            f"<iframe srcdoc=\"{_html.escape(page, quote=True)}\" "
            "style='width:100%;height:640px;border:1px solid #ccc'></iframe>"
        )


def report(
    job: Job,
    epsilons: Iterable[float],
    *,
    trials: int = 200,
    target_error: float = 0.1,
    output: Optional[PathLike] = None,
    analytic_only: bool = False,
    sample: Optional[PathLike] = None,
    data: Any = None,
    consent: Any = None,
    as_of: Any = None,
    name: Optional[str] = None,
) -> Report:
    """What each ε would cost the job in accuracy, as `veil report` computes it: the error
    of every aggregate at each ε, where it comes from, who bears it, better bounds.

    Charges nothing. On real data (the job's source, or `data`) the report is NOT private:
    it says so on its first line. `sample` (a file) or `analytic_only=True` give reports
    that can be shared. Writes report.html, report.md, report.json and charts/ to `output`
    (default: a new temporary directory) and returns report.json as a dict.
    """
    kind, value, job_name = _job(job, name)
    directory = _path(output) or _tempfile.mkdtemp(prefix="veil-report-")
    text, html_path, summary = _veil.report(
        kind,
        value,
        job_name,
        [float(epsilon) for epsilon in epsilons],
        directory,
        trials=int(trials),
        target_error=float(target_error),
        analytic_only=bool(analytic_only),
        sample=_path(sample),
        data=_table(data, "data"),
        consent=_table(consent, "consent"),
        as_of=_as_of(as_of),
    )
    result = Report(_json.loads(text))
    result.html = _pathlib.Path(html_path)
    result.text = summary
    return result


class Ledger:
    """A privacy budget ledger file, as `veil budget` reads it."""

    def __init__(self, path: PathLike, *, timeout: float = LEDGER_TIMEOUT):
        self.path = _pathlib.Path(path)
        self.timeout = float(timeout)

    def status(self, dataset: Optional[str] = None) -> list[dict]:
        """Each budget (of `dataset`, or all): total, spent, remaining, period, and the
        charges reserved against it (`veil budget status --json`)."""
        return _json.loads(_veil.budget_status(_os.fspath(self.path), dataset, self.timeout))

    def history(self) -> list[dict]:
        """Every charge: job, state, cost, mechanisms, releases, and the run's exact counts
        under `diagnostics_not_private` (for the operator: never publish them)
        (`veil budget history --json`)."""
        return _json.loads(_veil.budget_history(_os.fspath(self.path), self.timeout))

    def reservations(self) -> list[dict]:
        """The charges reserved but not committed (`veil budget reservations --json`)."""
        return _json.loads(_veil.budget_reservations(_os.fspath(self.path), self.timeout))

    def init_budget(
        self,
        dataset: str,
        purpose: str,
        *,
        epsilon: Optional[float] = None,
        delta: Optional[float] = None,
        rho: Optional[float] = None,
        period: Optional[str] = None,
    ) -> str:
        """Creates the budget of a dataset and purpose (and the file if needed), as
        `veil budget init` does: `epsilon` with `delta` (approximate DP; none or 0 is pure
        DP), or `rho` (zCDP); `period` renews it (`30d`, `12h`, `2w`). Returns what it did."""
        return _veil.budget_init(
            _os.fspath(self.path),
            dataset,
            purpose,
            epsilon=epsilon,
            delta=delta,
            rho=rho,
            period=period,
            ledger_timeout=self.timeout,
        )

    def amend_budget(
        self,
        dataset: str,
        purpose: str,
        *,
        note: str,
        epsilon: Optional[float] = None,
        delta: Optional[float] = None,
        rho: Optional[float] = None,
    ) -> str:
        """Changes the total of an existing budget and records why (`note`, required), as
        `veil budget amend` does: a new `epsilon` (and `delta`; none keeps the budget's) for
        an (ε, δ) budget, or `rho` for a zCDP one. Charges already made stay spent; while
        they count, δ may only fall. Returns what it did; `status()` lists the changes under
        `amendments`."""
        return _veil.budget_amend(
            _os.fspath(self.path),
            dataset,
            purpose,
            note,
            epsilon=epsilon,
            delta=delta,
            rho=rho,
            ledger_timeout=self.timeout,
        )

    def __repr__(self) -> str:
        return f"veil.Ledger({str(self.path)!r})"
