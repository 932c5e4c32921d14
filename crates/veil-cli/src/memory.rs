//! The local engine's memory budget (`--memory`, `[engine] memory`), where a scan larger
//! than memory spills (`--spill-dir`), its progress bar, and the removal of its spill
//! folder on Ctrl-C.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use veil_engine::scan::{MemoryBudget, OnScanProgress, ScanOptions, ScanProgress, spill_prefix};

use crate::exit::usage_error;

/// `--memory`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct MemoryArg {
    /// The local engine's memory budget, e.g. 4GiB or 512MiB: a source larger than it is
    /// bounded in partitions spilled to disk, and what cannot fit is refused before
    /// anything is charged. Default: the job's `[engine] memory`, else 4 GiB or half of
    /// this machine's memory, whichever is less.
    #[arg(long, value_name = "SIZE", value_parser = parse_budget)]
    memory: Option<MemoryBudget>,
}

fn parse_budget(text: &str) -> Result<MemoryBudget, String> {
    text.parse()
}

/// At most this share of the machine's memory (or of the process's limit) by default.
const DEFAULT_SHARE: u64 = 2;

impl MemoryArg {
    /// The budget: the command line's, else the job's, else the default; refused if it is
    /// more than this process can have.
    pub(crate) fn resolve(&self, job: Option<MemoryBudget>) -> anyhow::Result<MemoryBudget> {
        let limit = memory_limit();
        match (self.memory, job) {
            (Some(budget), _) => check(budget, limit, "--memory"),
            (None, Some(budget)) => check(budget, limit, "engine.memory"),
            (None, None) => Ok(match limit {
                Some((bytes, _)) => MemoryBudget::from_bytes(
                    (bytes / DEFAULT_SHARE).min(MemoryBudget::DEFAULT.bytes()),
                )
                .unwrap_or(MemoryBudget::DEFAULT),
                None => MemoryBudget::DEFAULT,
            }),
        }
    }
}

fn check(
    budget: MemoryBudget,
    limit: Option<(u64, &'static str)>,
    setting: &str,
) -> anyhow::Result<MemoryBudget> {
    match limit {
        Some((bytes, what)) if budget.bytes() > bytes => Err(usage_error(format!(
            "{setting}: {budget} is more than {what} ({}); give a smaller budget",
            MemoryBudget::text(bytes)
        ))),
        _ => Ok(budget),
    }
}

/// The memory this process may have: the least of the machine's memory, its control
/// group's limit and its address-space limit, with what it is (Linux; `None` elsewhere).
fn memory_limit() -> Option<(u64, &'static str)> {
    let mut limits: Vec<(u64, &'static str)> = Vec::new();
    if let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") {
        let total = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            });
        if let Some(kib) = total {
            limits.push((kib * 1024, "this machine's memory"));
        }
    }
    if let Ok(text) = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        && let Ok(bytes) = text.trim().parse::<u64>()
    {
        limits.push((bytes, "this process's control-group memory limit"));
    }
    if let Ok(text) = std::fs::read_to_string("/proc/self/limits") {
        let soft = text
            .lines()
            .find_map(|line| line.strip_prefix("Max address space"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|soft| soft.parse::<u64>().ok());
        // The engine maps its source files and reserves address space beyond what it uses:
        // half of an address-space limit is what it may fill.
        if let Some(bytes) = soft {
            limits.push((
                bytes / 2,
                "half of this process's address-space limit (ulimit -v)",
            ));
        }
    }
    limits.into_iter().min_by_key(|(bytes, _)| *bytes)
}

/// Refuses `what` (a scan that runs in memory, the utility report's) when its estimated
/// need is over `budget`, with the size it would need, the setting to change and `or`.
pub(crate) fn check_report_fits(
    plan: &veil_engine::plan::ScanPlan,
    budget: MemoryBudget,
    what: &str,
    or: &str,
) -> anyhow::Result<()> {
    let needed = veil_engine::scan::report_need(plan).map_err(crate::exit::engine)?;
    if needed <= budget.bytes() {
        return Ok(());
    }
    Err(crate::exit::engine(
        veil_engine::EngineError::MemoryBudget {
            what: format!("{what} on {}", plan.source.path.display()),
            needed,
            budget: budget.bytes(),
            advice: format!(
                "it runs in memory; raise the memory budget (--memory, or `memory` in the job's [engine] table), {or}"
            ),
        },
    ))
}

/// `--spill-dir`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct SpillArg {
    /// Where a source larger than the memory budget is spilled, in a folder removed when
    /// the run ends (also on failure and Ctrl-C). Default: beside the output folder.
    #[arg(long, value_name = "DIR")]
    spill_dir: Option<PathBuf>,
}

impl SpillArg {
    /// The folder to spill in: `--spill-dir`, else the output folder's parent (its nearest
    /// folder that exists).
    pub(crate) fn resolve(&self, output: &Path) -> anyhow::Result<PathBuf> {
        if let Some(folder) = &self.spill_dir {
            if !folder.is_dir() {
                return Err(usage_error(format!(
                    "--spill-dir {}: no such folder",
                    folder.display()
                )));
            }
            return Ok(folder.clone());
        }
        let mut folder = output.parent();
        while let Some(candidate) = folder {
            if candidate.as_os_str().is_empty() {
                break;
            }
            if candidate.is_dir() {
                return Ok(candidate.to_path_buf());
            }
            folder = candidate.parent();
        }
        Ok(PathBuf::from("."))
    }
}

/// What Ctrl-C (or a termination signal) does to a run, by how far it got.
///
/// Before the run reserves its cost (checking, scanning), nothing has been charged: the
/// process removes its spill folders (a partitioned scan may be writing gigabytes there)
/// and exits at once, however long the scan would still take. From the reservation on,
/// the signal is only recorded: the engine asks [`Interrupts::pending`] before drawing
/// noise and before committing, and stops there, giving the reservation back and
/// discarding what it staged. A second signal while it gets there exits at once (the
/// reservation, if any, is then given back by `veil budget cancel`). From the commit on,
/// signals are only recorded, the second too: exiting between the commit and the files'
/// renames would leave a charge without its release. After the commit the release stands.
pub(crate) struct Interrupts {
    /// The signal received, 0 for none.
    signal: AtomicI32,
    /// Whether the run reached its reservation.
    reserving: AtomicBool,
    /// Whether the run reached its commit.
    committing: AtomicBool,
}

impl Interrupts {
    /// Whether a signal asked the run to stop.
    pub(crate) fn pending(&self) -> bool {
        self.signal.load(Ordering::SeqCst) != 0
    }

    /// Follows the run's stages (call it from the run's progress callback).
    pub(crate) fn entered(&self, stage: veil_engine::Stage) {
        use veil_engine::Stage;
        if matches!(
            stage,
            Stage::Reserving | Stage::Noising | Stage::Writing | Stage::Committing
        ) {
            self.reserving.store(true, Ordering::SeqCst);
        }
        if stage == Stage::Committing {
            self.committing.store(true, Ordering::SeqCst);
        }
    }
}

/// Watches for Ctrl-C and termination signals for the rest of the process, as
/// [`Interrupts`] says; `folder` is where the run's spill folders are.
pub(crate) fn watch_interrupts(folder: &Path) -> Arc<Interrupts> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let interrupts = Arc::new(Interrupts {
        signal: AtomicI32::new(0),
        reserving: AtomicBool::new(false),
        committing: AtomicBool::new(false),
    });
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return interrupts;
    };
    let folder = folder.to_path_buf();
    let shared = Arc::clone(&interrupts);
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let first = shared.signal.swap(signal, Ordering::SeqCst) == 0;
            if shared.committing.load(Ordering::SeqCst) {
                // Committed or committing: the run publishes and ends on its own.
                continue;
            }
            if first && shared.reserving.load(Ordering::SeqCst) {
                errln!(
                    "interrupting: the run stops before its commit and gives its reservation back (interrupt again to exit at once)"
                );
                continue;
            }
            remove_spill_folders(&folder);
            if first {
                errln!("interrupted: nothing was charged or released");
            } else {
                errln!(
                    "interrupted again: exiting now; a reservation this run made stays until `veil budget cancel` gives it back"
                );
            }
            std::process::exit(128 + signal);
        }
    });
    interrupts
}

/// Removes the spill folders this process created in `folder`.
fn remove_spill_folders(folder: &Path) {
    let prefix = spill_prefix(std::process::id());
    if let Ok(entries) = std::fs::read_dir(folder) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// The scan's options: the budget, the spill folder, and a progress callback that drives
/// `bar` (rows read of the source's total, then partition i of k, with elapsed time and
/// ETA). `bar` is hidden when stderr is not a terminal or with --quiet.
pub(crate) fn scan_options(
    memory: MemoryBudget,
    spill_dir: PathBuf,
    bar: &ProgressBar,
) -> ScanOptions {
    let bar = bar.clone();
    let progress: OnScanProgress = Arc::new(move |event: &ScanProgress| match *event {
        ScanProgress::Partitioning {
            rows,
            total,
            partitions,
        } => {
            if bar.length() != Some(total) {
                bar.set_style(bar_style("{spinner} reading {human_pos}/{human_len} rows into {msg} [{bar:30}] {elapsed} (ETA {eta})"));
                bar.set_length(total);
                bar.set_message(format!("{partitions} partitions"));
                bar.reset_elapsed();
            }
            bar.set_position(rows.min(total));
        }
        ScanProgress::Aggregating {
            pass,
            passes,
            rows,
            total,
        } => {
            if pass == 1 {
                bar.set_style(bar_style(
                    "{spinner} bounding and aggregating {msg} [{bar:30}] {human_pos}/{human_len} rows, {elapsed} (ETA {eta})",
                ));
                bar.set_length(total);
                bar.reset_eta();
            }
            bar.set_message(format!("partition {pass} of {passes}"));
            bar.set_position(rows);
        }
        _ => {}
    });
    ScanOptions {
        memory,
        spill_dir: Some(spill_dir),
        progress: Some(progress),
    }
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("the template is valid")
        .progress_chars("=> ")
}

/// A spinner for the stages of a run, hidden when stderr is not a terminal or `quiet`.
pub(crate) fn spinner(quiet: bool) -> ProgressBar {
    use std::io::IsTerminal;
    let spinner = if std::io::stderr().is_terminal() && !quiet {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("the template is valid"),
    );
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}

/// Refuses a job with `auto` bounds whose source is too large for `budget` in one piece:
/// the bounds are chosen from all its rows at once, in memory, before the scan that could
/// be split into partitions.
pub(crate) fn check_auto_bounds_fit(
    job: &veil_engine::job::Job,
    budget: MemoryBudget,
) -> anyhow::Result<()> {
    if job.auto_choices() == 0 {
        return Ok(());
    }
    let plan = veil_engine::check(job).map_err(crate::exit::engine)?;
    let needed = veil_engine::scan::in_memory_need(&plan.scan).map_err(crate::exit::engine)?;
    if needed <= budget.bytes() {
        return Ok(());
    }
    Err(crate::exit::engine(
        veil_engine::EngineError::MemoryBudget {
            what: format!(
                "choosing the \"auto\" bounds from {}",
                plan.scan.source.path.display()
            ),
            needed,
            budget: budget.bytes(),
            advice: "they are chosen from all rows at once; give the bounds as numbers (a larger source is then bounded in partitions), or raise the memory budget (--memory, or `memory` in the job's [engine] table)".into(),
        },
    ))
}
