//! Which engine runs the non-private part of a job: the job's `[engine]` table,
//! overridden by `--engine` and `--remote`.

#[cfg(feature = "spark")]
use std::sync::{Arc, Mutex};
#[cfg(feature = "spark")]
use std::time::Instant;

use clap::Args;
use indicatif::ProgressBar;
use veil_engine::Executor;
use veil_spark::Remote;
#[cfg(feature = "spark")]
use veil_spark::{OnEvent, RESULT_STEP, SCAN_STEP, SparkEvent, SparkExecutor, SparkProgress};

use crate::config::{EngineChoice, EngineKind};
#[cfg(feature = "spark")]
use crate::exit;
use crate::exit::usage_error;

/// Why a `veil` built without the `spark` feature cannot run a job on Spark, and how to get
/// one that can.
#[cfg(not(feature = "spark"))]
pub(crate) const NO_SPARK: &str = "this veil was built without the Spark engine: install one with it, `cargo install --path crates/veil-cli --features spark` (its Spark Connect client needs `protoc` at build time: `PROTOC=$(scripts/protoc.sh)` provides one), or run the job locally (--engine local)";

/// `--engine` and `--remote`.
#[derive(Debug, Clone, Args)]
pub(crate) struct EngineArgs {
    /// Where to read, bound and aggregate: `local` (Polars on this machine) or `spark`
    /// (through Spark Connect); default: the job's `[engine] kind`, else local.
    #[arg(long, value_enum)]
    engine: Option<EngineKind>,

    /// The Spark Connect server, `sc://host:port`; default: the job's `[engine] remote`.
    #[arg(long, value_parser = Remote::parse)]
    remote: Option<Remote>,
}

/// The engine a command runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Engine {
    /// Polars on this machine.
    Local,
    /// Spark at this address.
    Spark(Remote),
}

impl EngineArgs {
    /// The engine: the command line's choice, else the job's.
    pub(crate) fn resolve(&self, job: &EngineChoice) -> anyhow::Result<Engine> {
        let kind = self.engine.unwrap_or(job.kind);
        let remote = self.remote.clone().or_else(|| job.remote.clone());
        match kind {
            EngineKind::Local if self.remote.is_some() => Err(usage_error(
                "--remote is for the Spark engine: add --engine spark (or kind = \"spark\" in the job's [engine])",
            )),
            EngineKind::Local => Ok(Engine::Local),
            EngineKind::Spark => remote.map(Engine::Spark).ok_or_else(|| {
                usage_error(
                    "the Spark engine needs the server's address: --remote sc://host:15002, or remote = \"sc://host:15002\" in the job's [engine]",
                )
            }),
        }
    }
}

/// Connects to Spark, reporting each step and Spark's progress on `spinner` (and, when
/// stderr is not a terminal, as lines on stderr).
#[cfg(feature = "spark")]
pub(crate) fn connect(
    remote: &Remote,
    spinner: &ProgressBar,
    terminal: bool,
) -> anyhow::Result<Box<dyn Executor>> {
    Ok(Box::new(connect_spark(remote, spinner, terminal)?))
}

/// Refuses: this build has no Spark Connect client.
#[cfg(not(feature = "spark"))]
pub(crate) fn connect(
    _remote: &Remote,
    _spinner: &ProgressBar,
    _terminal: bool,
) -> anyhow::Result<Box<dyn Executor>> {
    Err(usage_error(NO_SPARK))
}

#[cfg(feature = "spark")]
fn connect_spark(
    remote: &Remote,
    spinner: &ProgressBar,
    terminal: bool,
) -> anyhow::Result<SparkExecutor> {
    spinner.set_message(format!("connecting to Spark at {remote}"));
    let mut spark = SparkExecutor::connect(remote).map_err(exit::engine)?;
    let version = spark.spark_version().map_err(exit::engine)?;
    say(
        spinner,
        terminal,
        &format!("spark: connected to {remote} (Spark {version})"),
    );
    spark.on_event(progress_reporter(spinner.clone(), terminal));
    Ok(spark)
}

/// A line on stderr, above the spinner when there is one.
#[cfg(feature = "spark")]
fn say(spinner: &ProgressBar, terminal: bool, line: &str) {
    if terminal {
        spinner.println(line);
    } else {
        errln!("{line}");
    }
}

/// Shows Spark's steps and progress: on the spinner, and as a line per step and per
/// finished stage when stderr is not a terminal; then how long Spark took.
#[cfg(feature = "spark")]
fn progress_reporter(spinner: ProgressBar, terminal: bool) -> OnEvent {
    let last_line: Mutex<Option<(usize, usize)>> = Mutex::new(None);
    let started: Mutex<Option<Instant>> = Mutex::new(None);
    Arc::new(move |event: &SparkEvent| match event {
        SparkEvent::Step(step) => {
            spinner.set_message(format!("spark: {step}"));
            if !terminal {
                errln!("spark: {step}");
            }
            if let Ok(mut started) = started.lock() {
                match *step {
                    SCAN_STEP => *started = Some(Instant::now()),
                    RESULT_STEP => {
                        if let Some(at) = started.take() {
                            say(
                                &spinner,
                                terminal,
                                &format!(
                                    "spark: the scan ran on Spark in {:.1} s",
                                    at.elapsed().as_secs_f64()
                                ),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
        SparkEvent::Progress(progress) => {
            let text = progress_text(progress);
            spinner.set_message(format!("spark: {text}"));
            if !terminal && let Ok(mut last) = last_line.lock() {
                let now = Some((progress.stages, progress.stages_done));
                if *last != now {
                    *last = now;
                    errln!("spark: {text}");
                }
            }
        }
    })
}

/// `3 of 5 stages done, 14 of 20 tasks, 1.2 MB read`.
#[cfg(feature = "spark")]
pub(crate) fn progress_text(progress: &SparkProgress) -> String {
    #[allow(clippy::cast_precision_loss)]
    let megabytes = progress.bytes_read as f64 / 1e6;
    format!(
        "{} of {} stages done, {} of {} tasks ({} running), {megabytes:.1} MB read",
        progress.stages_done,
        progress.stages,
        progress.tasks_done,
        progress.tasks,
        progress.tasks_running
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(kind: EngineKind, remote: Option<&str>) -> EngineChoice {
        EngineChoice {
            kind,
            remote: remote.map(|text| Remote::parse(text).unwrap()),
            memory: None,
        }
    }

    fn args(engine: Option<EngineKind>, remote: Option<&str>) -> EngineArgs {
        EngineArgs {
            engine,
            remote: remote.map(|text| Remote::parse(text).unwrap()),
        }
    }

    #[test]
    fn the_command_line_overrides_the_job() {
        let job = choice(EngineKind::Spark, Some("sc://a:1"));
        assert_eq!(
            args(None, None).resolve(&job).unwrap(),
            Engine::Spark(Remote::parse("sc://a:1").unwrap())
        );
        assert_eq!(
            args(None, Some("sc://b:2")).resolve(&job).unwrap(),
            Engine::Spark(Remote::parse("sc://b:2").unwrap())
        );
        assert_eq!(
            args(Some(EngineKind::Local), None).resolve(&job).unwrap(),
            Engine::Local
        );
        let local = EngineChoice::default();
        assert_eq!(args(None, None).resolve(&local).unwrap(), Engine::Local);
        assert_eq!(
            args(Some(EngineKind::Spark), Some("sc://b:2"))
                .resolve(&local)
                .unwrap(),
            Engine::Spark(Remote::parse("sc://b:2").unwrap())
        );
    }

    #[test]
    fn spark_needs_a_remote_and_local_takes_none() {
        let local = EngineChoice::default();
        let error = args(Some(EngineKind::Spark), None)
            .resolve(&local)
            .unwrap_err();
        assert!(error.to_string().contains("--remote sc://host:15002"));
        let error = args(None, Some("sc://b:2")).resolve(&local).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("--remote is for the Spark engine")
        );
    }

    #[cfg(feature = "spark")]
    #[test]
    fn progress_reads_as_a_sentence() {
        let progress = SparkProgress {
            stages: 5,
            stages_done: 3,
            tasks: 20,
            tasks_done: 14,
            tasks_running: 2,
            bytes_read: 1_234_567,
        };
        assert_eq!(
            progress_text(&progress),
            "3 of 5 stages done, 14 of 20 tasks (2 running), 1.2 MB read"
        );
    }
}
