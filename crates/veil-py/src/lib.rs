//! `veil._veil`, the extension module under the Python package `veil`
//! (`python/veil/__init__.py` is its Python face).
//!
//! A thin layer over [`veil_cli::api`]: each function takes a job (a file, or a dict as JSON
//! text), tables through the Arrow C stream interface, and plain options; runs with the GIL
//! released; and returns JSON text and Arrow streams that the Python side turns into dicts
//! and pyarrow tables. Errors become `veil.ConfigError` (the `veil` command's exit code 2),
//! `veil.BudgetExceeded` (exit code 3) or `veil.VeilError` with the command's message; a
//! panic becomes a `veil.VeilError` that says it is a bug, never a `PanicException`.
//!
//! Ctrl-C: a run asks Python for pending signals before each stage up to its commit (on the
//! main thread, taking the GIL for that moment); a `KeyboardInterrupt` there stops it,
//! with nothing charged or published, and is raised again. A signal that arrives during
//! the commit or after finds the release published and charged: it is returned, with a
//! warning.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict, PyList};
use veil_cli::api::{self, CONSENT_PATH, DATA_PATH, ErrorKind, Job, JobOptions};
use veil_engine::memory::{ArrowStream, MemoryTables};

pyo3::create_exception!(
    _veil,
    VeilError,
    PyException,
    "A Veil job failed: the message is the `veil` command's."
);
pyo3::create_exception!(
    _veil,
    ConfigError,
    VeilError,
    "The job, its files, columns or arguments are wrong (the `veil` command's exit code 2)."
);
pyo3::create_exception!(
    _veil,
    BudgetExceeded,
    VeilError,
    "The ledger refused the charge: the privacy budget would be exceeded (exit code 3); nothing was released."
);

/// The capsule name of the Arrow C stream interface.
const STREAM_CAPSULE: &std::ffi::CStr = c"arrow_array_stream";

/// A failure on the way to Python: Veil's error, or a Python exception already raised.
enum Failure {
    Veil(api::Error),
    Python(PyErr),
}

impl From<api::Error> for Failure {
    fn from(error: api::Error) -> Self {
        Self::Veil(error)
    }
}

impl From<PyErr> for Failure {
    fn from(error: PyErr) -> Self {
        Self::Python(error)
    }
}

fn to_python(failure: Failure) -> PyErr {
    match failure {
        Failure::Python(error) => error,
        Failure::Veil(error) => {
            let message = error.message().to_string();
            match error.kind() {
                ErrorKind::Config => ConfigError::new_err(message),
                ErrorKind::BudgetExceeded => BudgetExceeded::new_err(message),
                ErrorKind::Interrupted => PyKeyboardInterrupt::new_err(message),
                _ => VeilError::new_err(message),
            }
        }
    }
}

/// Runs `work`, turning Veil's errors into their Python classes and a panic into a
/// `VeilError` (a panic must never reach Python as `PanicException`).
fn guarded<T>(work: impl FnOnce() -> Result<T, Failure>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result.map_err(to_python),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            Err(VeilError::new_err(format!(
                "internal error (a bug in Veil, please report it): {what}"
            )))
        }
    }
}

/// Takes the Arrow C stream out of an object that exports one (`__arrow_c_stream__`).
fn take_stream(table: &Bound<'_, PyAny>, argument: &str) -> PyResult<ArrowStream> {
    if !table.hasattr("__arrow_c_stream__")? {
        return Err(PyTypeError::new_err(format!(
            "{argument}= takes a table that exports an Arrow C stream (pandas, Polars, pyarrow, DuckDB ...), not {}",
            table.get_type().name()?
        )));
    }
    let capsule = table.call_method0("__arrow_c_stream__")?;
    let capsule = capsule.cast::<PyCapsule>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{argument}=: __arrow_c_stream__() returned no capsule"
        ))
    })?;
    let pointer = capsule.pointer_checked(Some(STREAM_CAPSULE))?;
    // SAFETY: a capsule named `arrow_array_stream` holds an `ArrowArrayStream` (the
    // PyCapsule interface of the Arrow C stream interface), which this function is the only
    // one to read while it holds the GIL; the stream is moved out and the capsule's struct
    // left released, so the capsule's destructor releases nothing twice. Producers of this
    // interface allow their callbacks on any thread (pyarrow, Polars and pandas take the
    // GIL where they need it).
    #[allow(unsafe_code)]
    let stream = unsafe { ArrowStream::take(pointer) };
    Ok(stream)
}

/// The Arrow streams given for a job, taken out of their Python objects (with the GIL).
struct Inputs {
    data: Option<ArrowStream>,
    consent: Option<ArrowStream>,
}

impl Inputs {
    fn take(data: Option<&Bound<'_, PyAny>>, consent: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        Ok(Self {
            data: data.map(|data| take_stream(data, "data")).transpose()?,
            consent: consent
                .map(|consent| take_stream(consent, "consent"))
                .transpose()?,
        })
    }

    fn options(&self, as_of: Option<String>) -> JobOptions {
        JobOptions {
            as_of,
            data_in_memory: self.data.is_some(),
            consent_in_memory: self.consent.is_some(),
        }
    }

    /// Reads the streams into tables, keeping only the columns the job reads.
    fn read(self, job: &Job) -> Result<Option<MemoryTables>, api::Error> {
        if self.data.is_none() && self.consent.is_none() {
            return Ok(None);
        }
        let mut tables = MemoryTables::new();
        if let Some(data) = self.data {
            let columns = job.source_columns()?;
            let keep = |name: &str| columns.iter().any(|column| column == name);
            tables
                .insert(DATA_PATH, data, &keep)
                .map_err(api::Error::from)?;
        }
        if let Some(consent) = self.consent {
            let columns = job.consent_columns().unwrap_or_default();
            let keep = |name: &str| columns.iter().any(|column| column == name);
            tables
                .insert(CONSENT_PATH, consent, &keep)
                .map_err(api::Error::from)?;
        }
        Ok(Some(tables))
    }
}

/// A job: `("file", path)` or `("json", JSON text)`, named `name`.
fn load_job(kind: &str, value: &str, name: &str, options: &JobOptions) -> Result<Job, Failure> {
    match kind {
        "file" => Ok(Job::from_file(&PathBuf::from(value), options)?),
        "json" => {
            let json: serde_json::Value = serde_json::from_str(value).map_err(|error| {
                Failure::Python(PyTypeError::new_err(format!(
                    "the job is not JSON: {error}"
                )))
            })?;
            Ok(Job::from_json(name, &json, options)?)
        }
        other => Err(Failure::Python(PyTypeError::new_err(format!(
            "a job is a path or a dict, not {other}"
        )))),
    }
}

fn timeout(seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        PyTypeError::new_err(format!(
            "ledger_timeout={seconds}: give a number of seconds, 0 or more"
        ))
    })
}

/// A released table's Arrow stream, handed to Python once through `__arrow_c_stream__`.
#[pyclass(module = "veil._veil")]
struct ArrowTable {
    stream: Mutex<Option<ArrowStream>>,
}

#[pymethods]
impl ArrowTable {
    /// The table's Arrow C stream, as a capsule (the PyCapsule interface); once.
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let stream = self
            .stream
            .lock()
            .ok()
            .and_then(|mut stream| stream.take())
            .ok_or_else(|| VeilError::new_err("this table's stream was read already"))?;
        PyCapsule::new_with_value(py, stream, STREAM_CAPSULE)
    }
}

/// Python's pending signals, asked from the engine's thread between stages (only the main
/// thread sees them). The first `KeyboardInterrupt` (or other exception a signal handler
/// raised) is kept for raising again.
struct Signals {
    raised: Mutex<Option<PyErr>>,
}

impl Signals {
    fn new() -> Self {
        Self {
            raised: Mutex::new(None),
        }
    }

    fn pending(&self) -> bool {
        Python::attach(|py| match py.check_signals() {
            Ok(()) => false,
            Err(error) => {
                if let Ok(mut raised) = self.raised.lock() {
                    raised.get_or_insert(error);
                }
                true
            }
        })
    }

    fn take(&self) -> Option<PyErr> {
        self.raised.lock().ok().and_then(|mut raised| raised.take())
    }
}

/// What a run hands back to Python: no frame of the engine's, only Arrow streams.
struct Outcome {
    charge_id: i64,
    ledger: PathBuf,
    manifest_path: PathBuf,
    manifest: String,
    budget_left: Option<String>,
    warnings: Vec<String>,
    tables: Vec<(String, PathBuf, ArrowStream)>,
}

/// Runs a job; returns a dict of JSON text, paths and Arrow tables (see `veil.run`).
#[pyfunction]
#[pyo3(signature = (kind, value, name, data = None, consent = None, ledger = None, output = None, as_of = None, ledger_timeout = 120.0))]
#[allow(clippy::too_many_arguments)]
fn run<'py>(
    py: Python<'py>,
    kind: &str,
    value: &str,
    name: &str,
    data: Option<Bound<'py, PyAny>>,
    consent: Option<Bound<'py, PyAny>>,
    ledger: Option<PathBuf>,
    output: Option<PathBuf>,
    as_of: Option<String>,
    ledger_timeout: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let ledger_timeout = timeout(ledger_timeout)?;
    let signals = Signals::new();
    let outcome = guarded(|| {
        let inputs = Inputs::take(data.as_ref(), consent.as_ref())?;
        let options = inputs.options(as_of);
        let job = load_job(kind, value, name, &options)?;
        let outcome = py.detach(|| -> Result<Outcome, api::Error> {
            let tables = inputs.read(&job)?;
            let interrupt = || signals.pending();
            let release = api::run(
                &job,
                tables.as_ref(),
                &api::RunOptions {
                    ledger,
                    output,
                    ledger_timeout,
                    interrupt: Some(&interrupt),
                },
            )?;
            // The engine's frames, and the tables in memory, are dropped here without the
            // GIL: their producers' release callbacks take it where they need it.
            Ok(Outcome {
                charge_id: release.charge_id,
                ledger: release.ledger,
                manifest_path: release.manifest_path,
                manifest: release.manifest,
                budget_left: release.budget_left,
                warnings: release.warnings,
                tables: release
                    .tables
                    .into_iter()
                    .map(|table| (table.query, table.path, table.table.to_arrow()))
                    .collect(),
            })
        });
        match outcome {
            Err(error) if error.kind() == ErrorKind::Interrupted => {
                Err(Failure::Python(signals.take().unwrap_or_else(|| {
                    PyKeyboardInterrupt::new_err(error.message().to_string())
                })))
            }
            other => Ok(other?),
        }
    })?;
    let result = PyDict::new(py);
    result.set_item("charge_id", outcome.charge_id)?;
    result.set_item("ledger", outcome.ledger)?;
    result.set_item("manifest_path", outcome.manifest_path)?;
    result.set_item("manifest", outcome.manifest)?;
    result.set_item("budget_left", outcome.budget_left)?;
    let tables = PyList::empty(py);
    for (query, path, stream) in outcome.tables {
        let table = Py::new(
            py,
            ArrowTable {
                stream: Mutex::new(Some(stream)),
            },
        )?;
        tables.append((query, path, table))?;
    }
    result.set_item("tables", tables)?;
    let mut warnings = outcome.warnings;
    if py.check_signals().is_err() {
        warnings.push(
            "interrupted after the release was published: it stands, and its cost is charged"
                .to_string(),
        );
    }
    result.set_item("warnings", warnings)?;
    Ok(result)
}

/// The plan of a job as JSON text (see `veil.explain`).
#[pyfunction]
#[pyo3(signature = (kind, value, name, data = None, consent = None, as_of = None))]
fn explain(
    py: Python<'_>,
    kind: &str,
    value: &str,
    name: &str,
    data: Option<Bound<'_, PyAny>>,
    consent: Option<Bound<'_, PyAny>>,
    as_of: Option<String>,
) -> PyResult<String> {
    guarded(|| {
        let inputs = Inputs::take(data.as_ref(), consent.as_ref())?;
        let options = inputs.options(as_of);
        let job = load_job(kind, value, name, &options)?;
        Ok(py.detach(|| -> Result<String, api::Error> {
            let tables = inputs.read(&job)?;
            Ok(api::explain(&job, tables.as_ref())?.to_string())
        })?)
    })
}

/// The utility report: `(report.json's text, report.html's path, the summary)` (see
/// `veil.report`).
#[pyfunction]
#[pyo3(signature = (kind, value, name, epsilons, output, trials = 200, target_error = 0.1, analytic_only = false, sample = None, data = None, consent = None, as_of = None))]
#[allow(clippy::too_many_arguments)]
fn report(
    py: Python<'_>,
    kind: &str,
    value: &str,
    name: &str,
    epsilons: Vec<f64>,
    output: PathBuf,
    trials: u32,
    target_error: f64,
    analytic_only: bool,
    sample: Option<PathBuf>,
    data: Option<Bound<'_, PyAny>>,
    consent: Option<Bound<'_, PyAny>>,
    as_of: Option<String>,
) -> PyResult<(String, PathBuf, String)> {
    guarded(|| {
        let inputs = Inputs::take(data.as_ref(), consent.as_ref())?;
        let options = inputs.options(as_of);
        let job = load_job(kind, value, name, &options)?;
        Ok(py.detach(|| -> Result<_, api::Error> {
            let tables = inputs.read(&job)?;
            let report = api::report(
                &job,
                tables.as_ref(),
                &api::ReportOptions {
                    epsilons,
                    trials,
                    target_error,
                    output,
                    analytic_only,
                    sample,
                },
            )?;
            Ok((report.json, report.html, report.text))
        })?)
    })
}

/// The budgets of a ledger as JSON text (`veil budget status --json`).
#[pyfunction]
#[pyo3(signature = (ledger, dataset = None, ledger_timeout = 120.0))]
fn budget_status(
    py: Python<'_>,
    ledger: PathBuf,
    dataset: Option<String>,
    ledger_timeout: f64,
) -> PyResult<String> {
    let ledger_timeout = timeout(ledger_timeout)?;
    guarded(|| {
        Ok(py.detach(|| {
            api::budget_status(&ledger, dataset.as_deref(), ledger_timeout)
                .map(|json| json.to_string())
        })?)
    })
}

/// The charges of a ledger as JSON text (`veil budget history --json`).
#[pyfunction]
#[pyo3(signature = (ledger, ledger_timeout = 120.0))]
fn budget_history(py: Python<'_>, ledger: PathBuf, ledger_timeout: f64) -> PyResult<String> {
    let ledger_timeout = timeout(ledger_timeout)?;
    guarded(|| {
        Ok(py
            .detach(|| api::budget_history(&ledger, ledger_timeout).map(|json| json.to_string()))?)
    })
}

/// The reserved charges of a ledger as JSON text (`veil budget reservations --json`).
#[pyfunction]
#[pyo3(signature = (ledger, ledger_timeout = 120.0))]
fn budget_reservations(py: Python<'_>, ledger: PathBuf, ledger_timeout: f64) -> PyResult<String> {
    let ledger_timeout = timeout(ledger_timeout)?;
    guarded(|| {
        Ok(py.detach(|| {
            api::budget_reservations(&ledger, ledger_timeout).map(|json| json.to_string())
        })?)
    })
}

/// Creates a budget (`veil budget init`); returns what it did, in words.
#[pyfunction]
#[pyo3(signature = (ledger, dataset, purpose, epsilon = None, delta = None, rho = None, period = None, ledger_timeout = 120.0))]
#[allow(clippy::too_many_arguments)]
fn budget_init(
    py: Python<'_>,
    ledger: PathBuf,
    dataset: String,
    purpose: String,
    epsilon: Option<f64>,
    delta: Option<f64>,
    rho: Option<f64>,
    period: Option<String>,
    ledger_timeout: f64,
) -> PyResult<String> {
    let ledger_timeout = timeout(ledger_timeout)?;
    guarded(|| {
        let budget = api::BudgetInit {
            dataset,
            purpose,
            epsilon,
            delta,
            rho,
            period,
        };
        Ok(py.detach(|| api::budget_init(&ledger, &budget, ledger_timeout))?)
    })
}

/// Changes a budget's total and records why (`veil budget amend`); returns what it did,
/// in words.
#[pyfunction]
#[pyo3(signature = (ledger, dataset, purpose, note, epsilon = None, delta = None, rho = None, ledger_timeout = 120.0))]
#[allow(clippy::too_many_arguments)]
fn budget_amend(
    py: Python<'_>,
    ledger: PathBuf,
    dataset: String,
    purpose: String,
    note: String,
    epsilon: Option<f64>,
    delta: Option<f64>,
    rho: Option<f64>,
    ledger_timeout: f64,
) -> PyResult<String> {
    let ledger_timeout = timeout(ledger_timeout)?;
    guarded(|| {
        let change = api::BudgetAmend {
            dataset,
            purpose,
            epsilon,
            delta,
            rho,
            note,
        };
        Ok(py.detach(|| api::budget_amend(&ledger, &change, ledger_timeout))?)
    })
}

/// Panics on purpose, for the test that no panic reaches Python as `PanicException`.
#[pyfunction]
fn _panic_for_tests() -> PyResult<()> {
    guarded(|| -> Result<(), Failure> { panic!("a deliberate panic") })
}

/// The extension module.
#[pymodule]
fn _veil(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add("VeilError", py.get_type::<VeilError>())?;
    module.add("ConfigError", py.get_type::<ConfigError>())?;
    module.add("BudgetExceeded", py.get_type::<BudgetExceeded>())?;
    module.add("DATA_PATH", DATA_PATH)?;
    module.add("CONSENT_PATH", CONSENT_PATH)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_class::<ArrowTable>()?;
    module.add_function(wrap_pyfunction!(run, module)?)?;
    module.add_function(wrap_pyfunction!(explain, module)?)?;
    module.add_function(wrap_pyfunction!(report, module)?)?;
    module.add_function(wrap_pyfunction!(budget_status, module)?)?;
    module.add_function(wrap_pyfunction!(budget_history, module)?)?;
    module.add_function(wrap_pyfunction!(budget_reservations, module)?)?;
    module.add_function(wrap_pyfunction!(budget_init, module)?)?;
    module.add_function(wrap_pyfunction!(budget_amend, module)?)?;
    module.add_function(wrap_pyfunction!(_panic_for_tests, module)?)?;
    Ok(())
}
