//! [`SparkExecutor`]: runs the compiled scan on a Spark Connect server and turns the
//! rows that come back into the engine's [`Aggregated`].

// The client's error type is large (it carries Spark's whole error); it never travels
// further than the next line, which turns it into an `EngineError`.
#![allow(clippy::result_large_err)]

mod stream;

use std::collections::{BTreeMap, HashMap};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use spark_connect::row::{Row, Value};
use spark_connect::types::DataType;
use spark_connect::{Expression, LiteralExpression, SparkSession};
use spark_connect_proto::execute_plan_response::ExecutionProgress;
use veil_engine::job::Source;
use veil_engine::plan::{Measure, ScanPlan};
use veil_engine::scan::{Aggregated, BoundingKey, ExternalAggregates, ScanCounts};
use veil_engine::schema::{ColumnKind, SourceSchema};
use veil_engine::{EngineError, Executor};

use self::stream::ResultStream;
use crate::remote::Remote;
use crate::sql::{self, SparkSql};

/// How long to wait for the server to accept a connection before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The session settings every run needs: integer overflow fails instead of wrapping
/// (ANSI mode), and times are read in UTC (so a timestamp without a zone means what it
/// means to the local engine).
pub const SESSION_CONF: [(&str, &str); 2] = [
    ("spark.sql.ansi.enabled", "true"),
    ("spark.sql.session.timeZone", "UTC"),
];

/// The step that runs the scan's query on Spark.
pub const SCAN_STEP: &str = "reading, bounding and aggregating on Spark";
/// The step that reads the query's result, once Spark has finished.
pub const RESULT_STEP: &str = "reading Spark's aggregates";

/// What a Spark run reports while it works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SparkEvent {
    /// A step of the run began.
    Step(&'static str),
    /// Spark's progress on the running query.
    Progress(SparkProgress),
}

/// Spark's progress on the running query, from its progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SparkProgress {
    /// Stages started so far.
    pub stages: usize,
    /// Stages finished.
    pub stages_done: usize,
    /// Tasks in the started stages.
    pub tasks: i64,
    /// Tasks finished.
    pub tasks_done: i64,
    /// Tasks running now.
    pub tasks_running: i64,
    /// Input bytes read so far.
    pub bytes_read: i64,
}

/// A callback for [`SparkEvent`]s.
pub type OnEvent = Arc<dyn Fn(&SparkEvent) + Send + Sync>;

/// Executes scan plans on Apache Spark through Spark Connect: the plan is compiled to
/// Spark SQL ([`crate::compile`]), Spark reads, filters, bounds and aggregates, and only
/// the per-group aggregates come back. Noise, partition selection, the ledger and the
/// release stay with the caller ([`veil_engine::run_with`]).
///
/// ```no_run
/// use veil_engine::Executor;
/// use veil_engine::scan::BoundingKey;
/// use veil_spark::{Remote, SparkExecutor};
/// # let job: veil_engine::job::Job = unimplemented!();
/// let spark = SparkExecutor::connect(&Remote::parse("sc://localhost:15002")?)?;
/// let plan = veil_engine::check_with(&job, &spark)?;
/// println!("{}", spark.compile(&plan.scan)?);
/// let aggregated = spark.aggregate(&plan.scan, BoundingKey::from_words([7, 11]))?;
/// assert_eq!(aggregated.queries.len(), plan.queries.len());
/// Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SparkExecutor {
    remote: Remote,
    session: SparkSession,
    /// The same server-side session, for the scan's query (see `stream.rs`).
    results: ResultStream,
    on_event: Option<OnEvent>,
    /// Schemas read since the last run's compilation, by source: a run checks the job
    /// against the schema and then compiles against it, and each read makes Spark list the
    /// files and read their footers.
    schemas: std::sync::Mutex<Vec<(Source, SourceSchema)>>,
}

impl std::fmt::Debug for SparkExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparkExecutor")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl SparkExecutor {
    /// Connects to the server at `remote` and sets up the session ([`SESSION_CONF`]).
    ///
    /// # Errors
    /// [`EngineError::Execution`] naming the remote if nothing accepts connections there
    /// or the server refuses the session's settings.
    pub fn connect(remote: &Remote) -> Result<Self, EngineError> {
        probe(remote)?;
        let session = SparkSession::builder()
            .remote(remote.url())
            .get_or_create()
            .map_err(|error| unreachable(remote, &error.message()))?;
        let results = ResultStream::new(remote.url(), &session)
            .map_err(|error| unreachable(remote, &error.message()))?;
        let executor = Self {
            remote: remote.clone(),
            session,
            results,
            on_event: None,
            schemas: std::sync::Mutex::default(),
        };
        for (key, value) in SESSION_CONF {
            executor
                .session
                .conf()
                .set(key, value)
                .map_err(|error| executor.failure("setting up the Spark session", &error))?;
        }
        Ok(executor)
    }

    /// Calls `on_event` at each step and with Spark's progress reports (default: none).
    pub fn on_event(&mut self, on_event: OnEvent) -> &mut Self {
        self.on_event = Some(on_event);
        self
    }

    /// The server's address.
    #[must_use]
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// The Spark version the server runs.
    ///
    /// # Errors
    /// [`EngineError::Execution`] if the server cannot be asked.
    pub fn spark_version(&self) -> Result<String, EngineError> {
        self.session
            .version()
            .map_err(|error| self.failure("asking Spark its version", &error))
    }

    /// Compiles `plan` with the source's schema as this server reads it.
    ///
    /// # Errors
    /// [`EngineError`] if the source cannot be read or the plan cannot run on Spark.
    pub fn compile(&self, plan: &ScanPlan) -> Result<SparkSql, EngineError> {
        let schema = self.schema(&plan.source)?;
        sql::compile(plan, &schema)
    }

    fn emit(&self, event: SparkEvent) {
        if let Some(on_event) = &self.on_event {
            on_event(&event);
        }
    }

    /// Runs one statement for its side effect (a view definition), to its end.
    fn execute(&self, statement: &str) -> Result<(), spark_connect::SparkError> {
        self.results
            .collect(statement, HashMap::new(), &|_| {})
            .map(|_| ())
    }

    /// Maps a Spark failure during `stage` to an engine error that names what to fix and
    /// quotes no data value.
    fn failure(&self, stage: &'static str, error: &spark_connect::SparkError) -> EngineError {
        failure(&self.remote, stage, error)
    }
}

/// The stage named when reading a source's schema fails.
const SCHEMA_STAGE: &str = "reading the source's schema on Spark";

impl Executor for SparkExecutor {
    fn schema(&self, source: &Source) -> Result<SourceSchema, EngineError> {
        let known = |schemas: &[(Source, SourceSchema)]| {
            schemas
                .iter()
                .find(|(read, _)| read == source)
                .map(|(_, schema)| schema.clone())
        };
        if let Some(schema) = self.schemas.lock().ok().and_then(|schemas| known(&schemas)) {
            return Ok(schema);
        }
        let schema = self.read_schema(source)?;
        if let Ok(mut schemas) = self.schemas.lock() {
            schemas.push((source.clone(), schema.clone()));
        }
        Ok(schema)
    }

    fn aggregate(&self, plan: &ScanPlan, key: BoundingKey) -> Result<Aggregated, EngineError> {
        self.emit(SparkEvent::Step("compiling the scan to Spark SQL"));
        let compiled = self.compile(plan)?;
        // The next run reads its sources' schemas afresh.
        if let Ok(mut schemas) = self.schemas.lock() {
            schemas.clear();
        }
        self.emit(SparkEvent::Step("defining the source views"));
        for (statement, source) in compiled.setup().iter().zip(
            std::iter::once(plan.source.clone())
                .chain(plan.consent.as_ref().map(|consent| consent.table.source())),
        ) {
            self.execute(statement).map_err(|error| {
                self.source_failure(&source, "defining the source views on Spark", &error)
            })?;
        }
        self.emit(SparkEvent::Step(SCAN_STEP));
        let parameters: HashMap<String, Expression> = SparkSql::parameters(key)
            .into_iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    Expression::Literal(LiteralExpression::long(value)),
                )
            })
            .collect();
        let on_progress = |progress: &ExecutionProgress| {
            let mut report = SparkProgress {
                tasks_running: progress.num_inflight_tasks,
                ..SparkProgress::default()
            };
            for stage in &progress.stages {
                report.stages += 1;
                report.stages_done += usize::from(stage.done);
                report.tasks += stage.num_tasks;
                report.tasks_done += stage.num_completed_tasks;
                report.bytes_read += stage.input_bytes_read;
            }
            self.emit(SparkEvent::Progress(report));
        };
        let rows = self
            .results
            .collect(compiled.query(), parameters, &on_progress)
            .map_err(|error| self.failure("aggregating on Spark", &error))?;
        self.emit(SparkEvent::Step(RESULT_STEP));
        let results = parse(plan, &compiled, &rows)?;
        Aggregated::from_external(results.queries, results.counts)
    }
}

impl SparkExecutor {
    /// Reads a source's schema on Spark, through a temporary view.
    fn read_schema(&self, source: &Source) -> Result<SourceSchema, EngineError> {
        let view = "veil_schema";
        self.execute(&sql::create_view(view, source))
            .map_err(|error| self.source_failure(source, SCHEMA_STAGE, &error))?;
        let schema = self
            .session
            .sql(&format!("SELECT * FROM {view}"))
            .and_then(|frame| frame.schema())
            .map_err(|error| self.source_failure(source, SCHEMA_STAGE, &error))?;
        let DataType::Struct { fields } = schema else {
            return Err(EngineError::Internal(
                "Spark described a table as something other than a struct".into(),
            ));
        };
        Ok(SourceSchema {
            columns: fields
                .iter()
                .map(|field| (field.name.clone(), column_kind(&field.data_type)))
                .collect(),
        })
    }

    /// A failure to read a source: a missing path is [`EngineError::SourceNotFound`], a
    /// file Spark cannot read is [`EngineError::SourceUnreadable`] with Spark's reason,
    /// anything else a failure during `stage`.
    fn source_failure(
        &self,
        source: &Source,
        stage: &'static str,
        error: &spark_connect::SparkError,
    ) -> EngineError {
        match error.get_condition().as_deref() {
            Some("PATH_NOT_FOUND") => EngineError::SourceNotFound {
                path: source.path.clone(),
            },
            Some(_) if is_plan_error(error) => EngineError::SourceUnreadable {
                path: source.path.clone(),
                format: "Parquet",
                reason: first_line(&error.message()),
            },
            _ => self.failure(stage, error),
        }
    }
}

/// Checks that something accepts connections at the remote's host and port, so that an
/// unreachable server fails at once instead of after the client's retries.
fn probe(remote: &Remote) -> Result<(), EngineError> {
    let addresses = (remote.host(), remote.port())
        .to_socket_addrs()
        .map_err(|error| unreachable(remote, &format!("cannot resolve the host: {error}")))?;
    let mut last = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(error) => last = Some(error),
        }
    }
    Err(unreachable(
        remote,
        &last.map_or_else(|| "the host has no address".to_string(), |e| e.to_string()),
    ))
}

fn unreachable(remote: &Remote, reason: &str) -> EngineError {
    EngineError::Execution {
        stage: "connecting to Spark",
        reason: format!(
            "cannot reach the Spark Connect server at {remote} ({reason}); start it, or point [engine] remote (or --remote) at a running one"
        ),
    }
}

/// Whether Spark refused the query before running it: SQLSTATE class 42 (syntax errors
/// and analysis: about tables, columns and types, never about data values).
fn is_plan_error(error: &spark_connect::SparkError) -> bool {
    error
        .get_sql_state()
        .is_some_and(|state| state.starts_with("42"))
}

/// Message parameters that name things (files, columns, types) and never carry a value
/// from the data, so they may be shown.
const SAFE_PARAMETERS: &[&str] = &[
    "path",
    "file",
    "filePath",
    "column",
    "colName",
    "columnName",
    "fieldName",
    "objectName",
    "expectedType",
    "actualType",
    "parquetType",
    "logicalType",
    "physicalType",
    "dataType",
    "config",
];

/// gRPC's status code for a server that cannot be reached.
const GRPC_UNAVAILABLE: i32 = 14;

/// A Spark failure as an engine error. Connection failures name the remote; plan errors
/// keep Spark's message (it is about the query, not the data); failures while running
/// keep only the error's class and the parameters that name files, columns and types,
/// since Spark's messages can quote cell values.
pub(crate) fn failure(
    remote: &Remote,
    stage: &'static str,
    error: &spark_connect::SparkError,
) -> EngineError {
    let condition = error.get_condition();
    let reason = match &condition {
        // Without an error class the message may be a server exception's text, which can
        // quote a cell: only transport failures keep theirs.
        None if error.grpc_code.is_none_or(|code| code == GRPC_UNAVAILABLE) => format!(
            "lost the Spark Connect server at {remote}: {}",
            first_line(&error.message())
        ),
        None => format!("Spark failed ({stage}); details withheld, since they may quote data"),
        Some(_) if is_plan_error(error) => first_line(&error.message()),
        Some(condition) => {
            let named: Vec<String> = error
                .params
                .iter()
                .filter(|(name, _)| SAFE_PARAMETERS.contains(&name.as_str()))
                .map(|(name, value)| format!("{name} {value}"))
                .collect();
            let named = if named.is_empty() {
                String::new()
            } else {
                format!(" ({})", named.join(", "))
            };
            format!(
                "Spark reported {condition}{named}; the rest of its message is withheld, as it may quote data values (see the Spark server's log)"
            )
        }
    };
    EngineError::Execution { stage, reason }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    // Spark appends its SQL state and sometimes the whole query: keep the message.
    let line = line.split(" SQLSTATE:").next().unwrap_or(line);
    // The client repeats the error class before Spark's own `[CLASS] message`.
    if let Some(rest) = line.strip_prefix('[')
        && let Some((class, message)) = rest.split_once("] ")
        && message.starts_with(&format!("[{class}] "))
    {
        return message.to_string();
    }
    line.to_string()
}

/// The kind of values a Spark column holds, as the engine's schema check sees it.
fn column_kind(data_type: &DataType) -> ColumnKind {
    match data_type {
        DataType::Byte | DataType::Short | DataType::Integer | DataType::Long => {
            ColumnKind::Integer
        }
        DataType::Float | DataType::Double => ColumnKind::Float,
        DataType::Boolean => ColumnKind::Boolean,
        DataType::String { .. } | DataType::Char { .. } | DataType::Varchar { .. } => {
            ColumnKind::String
        }
        DataType::Date => ColumnKind::Date,
        DataType::Timestamp | DataType::TimestampNtz => ColumnKind::Timestamp,
        // Decimals (Spark reads unsigned 64-bit integers as decimal(20,0)) and the rest
        // are neither numbers nor group keys to the engine.
        other => ColumnKind::Other(other.simple_string()),
    }
}

/// The aggregates and counts in Veil types.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) queries: Vec<ExternalAggregates>,
    pub(crate) counts: ScanCounts,
}

/// Turns the result rows (see [`crate::sql`] for their layout) into aggregates and counts.
pub(crate) fn parse(
    plan: &ScanPlan,
    compiled: &SparkSql,
    rows: &[Row],
) -> Result<Parsed, EngineError> {
    let bug = |what: String| EngineError::Internal(format!("reading Spark's result: {what}"));
    let key_start = 4;
    let value_start = key_start + compiled.key_columns();
    let text = |row: &Row, index: usize| -> Result<Option<String>, EngineError> {
        match row.get(index) {
            Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            // Never the value itself: a result cell is a group key or a sum before noise.
            Some(_) => Err(bug(format!("column {index} is not text"))),
            None => Err(bug(format!("column {index} is missing"))),
        }
    };
    let integer = |row: &Row, index: usize| -> Result<Option<i64>, EngineError> {
        match row.get(index) {
            Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_i64()
                .map(Some)
                .ok_or_else(|| bug(format!("column {index} is not an integer"))),
            None => Err(bug(format!("column {index} is missing"))),
        }
    };
    let mut counters: BTreeMap<String, u64> = BTreeMap::new();
    let mut queries: Vec<ExternalAggregates> = plan
        .queries
        .iter()
        .map(|query| ExternalAggregates {
            group_by: query.group_by.clone(),
            keys: Vec::new(),
            measures: sql::group_measures(query)
                .map(|measure| (measure.key(), Vec::new()))
                .collect(),
            histograms: query
                .measures
                .iter()
                .filter_map(|measure| match measure {
                    Measure::Histogram { .. } => Some((measure.key(), Vec::new())),
                    _ => None,
                })
                .collect(),
        })
        .collect();
    // Histogram rows refer to groups by key; they are matched once every group is known.
    struct HistogramRow {
        query: usize,
        column: String,
        key: Vec<Option<String>>,
        leaf: i64,
        rows: i64,
    }
    let mut histogram_rows: Vec<HistogramRow> = Vec::new();
    for row in rows {
        let kind = text(row, 0)?.ok_or_else(|| bug("a row has no result kind".into()))?;
        let query_index = || -> Result<usize, EngineError> {
            integer(row, 1)?
                .and_then(|index| usize::try_from(index).ok())
                .filter(|index| *index < plan.queries.len())
                .ok_or_else(|| bug("a row names no query of the plan".into()))
        };
        let value = |position: usize| -> Result<i64, EngineError> {
            integer(row, value_start + position)?
                .ok_or_else(|| bug(format!("value {position} is null")))
        };
        match kind.as_str() {
            "count" => {
                let name = text(row, 2)?.ok_or_else(|| bug("a counter has no name".into()))?;
                let count = u64::try_from(value(0)?)
                    .map_err(|_| bug(format!("counter {name} is negative")))?;
                counters.insert(name, count);
            }
            "groups" => {
                let index = query_index()?;
                let query = &plan.queries[index];
                let key = (0..query.group_by.len())
                    .map(|position| text(row, key_start + position))
                    .collect::<Result<Vec<_>, _>>()?;
                let target = &mut queries[index];
                target.keys.push(key);
                for (position, measure) in sql::group_measures(query).enumerate() {
                    let value = value(position)?;
                    target
                        .measures
                        .get_mut(&measure.key())
                        .ok_or_else(|| bug(format!("measure {} is unknown", measure.key())))?
                        .push(value);
                }
            }
            "histogram" => {
                let index = query_index()?;
                let column =
                    text(row, 2)?.ok_or_else(|| bug("a histogram has no column".into()))?;
                let key = (0..plan.queries[index].group_by.len())
                    .map(|position| text(row, key_start + position))
                    .collect::<Result<Vec<_>, _>>()?;
                let leaf = integer(row, 3)?.ok_or_else(|| bug("a leaf is null".into()))?;
                histogram_rows.push(HistogramRow {
                    query: index,
                    column,
                    key,
                    leaf,
                    rows: value(0)?,
                });
            }
            other => return Err(bug(format!("unknown result kind {other:?}"))),
        }
    }
    let group_index: Vec<HashMap<Vec<Option<String>>, usize>> = queries
        .iter()
        .map(|query| {
            query
                .keys
                .iter()
                .enumerate()
                .map(|(position, key)| (key.clone(), position))
                .collect()
        })
        .collect();
    for row in histogram_rows {
        // Histogram rows outside the query's groups cannot occur (both come from the same
        // surviving pairs); like the local engine, they would be ignored.
        if let Some(&group) = group_index[row.query].get(&row.key) {
            queries[row.query]
                .histograms
                .get_mut(&row.column)
                .ok_or_else(|| bug(format!("histogram {} is unknown", row.column)))?
                .push((group, row.leaf, row.rows));
        }
    }

    let counter = |name: &str| -> Result<u64, EngineError> {
        counters
            .get(name)
            .copied()
            .ok_or_else(|| bug(format!("counter {name} is missing")))
    };
    if let Some(consent) = &plan.consent {
        consent.check_actions(counter(sql::UNKNOWN_ACTIONS)?)?;
    }
    let rows_read = counter(sql::ROWS_READ)?;
    let rows_in_window = counter(sql::ROWS_IN_WINDOW)?;
    let rows_with_consent = counter(sql::ROWS_WITH_CONSENT)?;
    let missing_values = counters
        .iter()
        .filter_map(|(name, count)| {
            name.strip_prefix(sql::MISSING_PREFIX)
                .map(|column| (column.to_string(), *count))
        })
        .collect();
    let counts = ScanCounts::from_passes(
        rows_read,
        rows_in_window,
        counter(sql::ROWS_WITHOUT_UNIT)?,
        rows_with_consent,
        counter(sql::UNITS)?,
        missing_values,
    );
    Ok(Parsed { queries, counts })
}

#[cfg(test)]
mod tests;
