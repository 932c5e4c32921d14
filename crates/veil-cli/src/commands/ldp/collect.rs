//! `veil ldp collect`: the wiring of `veil_collect` (arguments, TLS files, the Parquet
//! segment writer, signals, messages). The server and the store are the library's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use veil_collect::server::{self, Limits, ServerConfig, Stats};
use veil_collect::store::{SegmentSink, Store, StoreError, StoreEvent, StorePolicy};
use veil_engine::table::{self, Column, Format, Table, Values};

use crate::exit::{Failure, classified, usage_error};
use crate::guard::{Input, refuse_overwrite};
use crate::rng;

#[derive(Debug, Args)]
pub(crate) struct CollectArgs {
    /// The protocol descriptor (TOML or JSON) whose reports are taken; any other report is
    /// refused.
    #[arg(long)]
    pub(crate) protocol: PathBuf,

    /// The address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub(crate) listen: SocketAddr,

    /// The directory the reports are stored in (created if needed): segments
    /// reports-NNNNNN.parquet that `veil ldp aggregate --reports DIR` reads. One collector
    /// and one protocol per directory.
    #[arg(long)]
    pub(crate) out: PathBuf,

    /// The TLS certificate chain (PEM). Without --cert and --key the collector speaks plain
    /// HTTP, which it allows only on a loopback address.
    #[arg(long, requires = "key", value_name = "PEM")]
    pub(crate) cert: Option<PathBuf>,

    /// The TLS private key (PEM).
    #[arg(long, requires = "cert", value_name = "PEM")]
    pub(crate) key: Option<PathBuf>,

    /// An origin whose web pages may post reports from a browser (CORS), such as
    /// https://example.org. Repeat it for several; * allows any page.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub(crate) allow_origins: Vec<String>,

    /// The largest request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub(crate) max_body: usize,

    /// The most reports in one request.
    #[arg(long, default_value_t = 1000)]
    pub(crate) max_batch: usize,

    /// Reports per second taken from all senders together; batches over it get 429.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) max_rate: u32,

    /// Connections open at once; further ones are closed at once.
    #[arg(long, default_value_t = 1024)]
    pub(crate) max_connections: usize,

    /// Seal the open log into a segment once it holds this many reports.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) segment_reports: usize,

    /// Seal the open log this many seconds after it was opened, if it holds any report.
    #[arg(long, default_value_t = 60)]
    pub(crate) segment_seconds: u64,
}

/// Segments as Parquet files with one binary column `report`, the form `veil ldp
/// aggregate` reads; written atomically by `veil_engine::table`.
struct ParquetSegments;

impl SegmentSink for ParquetSegments {
    fn extension(&self) -> &'static str {
        "parquet"
    }

    fn write_segment(&self, path: &Path, reports: &[Vec<u8>]) -> Result<(), String> {
        let column = Values::Binary(reports.iter().map(|report| Some(report.clone())).collect());
        Table::new(vec![Column::new("report", column)])
            .and_then(|segment| table::write(&segment, path, Format::Parquet))
            .map_err(|error| error.to_string())
    }
}

fn describe(event: &StoreEvent) -> String {
    match event {
        StoreEvent::Recovered {
            wal,
            reports,
            discarded_bytes,
        } => {
            let discarded = if *discarded_bytes > 0 {
                format!(
                    "; {discarded_bytes} bytes after its last whole record, a batch never acknowledged, were dropped"
                )
            } else {
                String::new()
            };
            format!(
                "recovered {reports} reports from {} left by an earlier run{discarded}",
                wal.display()
            )
        }
        StoreEvent::Sealed { segment, reports } => {
            format!("sealed {} ({reports} reports)", segment.display())
        }
        StoreEvent::SealFailed { wal, reason } => format!(
            "warning: could not seal {} ({reason}); it is kept and sealed at the next start",
            wal.display()
        ),
    }
}

pub(crate) fn run(args: &CollectArgs) -> anyhow::Result<ExitCode> {
    let mut inputs = vec![Input::new("--protocol", &args.protocol)];
    inputs.extend(args.cert.iter().map(|path| Input::new("--cert", path)));
    inputs.extend(args.key.iter().map(|path| Input::new("--key", path)));
    refuse_overwrite(&[("--out", &args.out)], &inputs)?;
    if args.max_batch == 0 || args.max_body == 0 || args.max_rate == 0 {
        return Err(usage_error(
            "--max-batch, --max-body and --max-rate must be above 0",
        ));
    }
    let protocol = super::load_protocol(&args.protocol)?;
    let tls = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Some(
            server::tls_config(cert, key)
                .map_err(|error| classified(error, Some(Failure::Usage)))?,
        ),
        _ => {
            if !args.listen.ip().is_loopback() {
                return Err(usage_error(format!(
                    "--listen {}: plain HTTP is allowed only on a loopback address; give --cert and --key to serve HTTPS there",
                    args.listen
                )));
            }
            None
        }
    };
    let shuffle = Box::new(rng::os_seeded()?);
    let policy = StorePolicy {
        segment_reports: args.segment_reports.max(1),
        segment_age: Duration::from_secs(args.segment_seconds.max(1)),
        queue: 4096,
    };
    let store = Store::open(
        &args.out,
        &protocol,
        Arc::new(ParquetSegments),
        policy,
        shuffle,
        Arc::new(|event| errln!("{}", describe(&event))),
    )
    .map_err(|error| {
        let failure = matches!(
            error,
            StoreError::Locked { .. } | StoreError::OtherProtocol { .. }
        )
        .then_some(Failure::Usage);
        classified(error, failure)
    })
    .with_context(|| format!("opening --out {}", args.out.display()))?;
    let config = ServerConfig {
        protocol: protocol.clone(),
        tls,
        limits: Limits {
            max_body: args.max_body,
            max_batch: args.max_batch,
            max_rate: args.max_rate,
            max_connections: args.max_connections.max(1),
            ..Limits::default()
        },
        allow_origins: args.allow_origins.clone(),
    };
    let stats = Arc::new(Stats::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the collector's runtime")?;
    let appender = store.appender();
    let served = runtime.block_on(async {
        // Before anything says the collector listens: a SIGTERM sent as soon as it does
        // must stop it cleanly, not kill it.
        let stop = stop_signal()?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let address = listener
            .local_addr()
            .with_context(|| format!("listening on {}", args.listen))?;
        if config.tls.is_none() {
            errln!(
                "warning: serving plain HTTP on {address}: reports travel unencrypted; use it only for tests on this machine, and --cert/--key otherwise"
            );
        }
        errln!(
            "listening on {} for protocol {} (oracle {}, epsilon {} per report); storing reports in {}",
            server::base_url(address, config.tls.is_some()),
            protocol.id(),
            protocol.oracle().name(),
            protocol.epsilon(),
            args.out.display()
        );
        server::serve(listener, config, appender, stats.clone(), stop)
            .await
            .context("serving")
    });
    errln!("stopping: sealing the open log");
    let closed = store.close();
    let refused = stats.refused();
    errln!(
        "stopped: stored {} reports in {} batches; refused {refused} batches ({} malformed, {} of another protocol, {} too large, {} over the rate limit, {} while busy or failing); closed {} connections over the limit",
        stats.accepted_reports.load(Ordering::Relaxed),
        stats.accepted_batches.load(Ordering::Relaxed),
        stats.malformed.load(Ordering::Relaxed),
        stats.other_protocol.load(Ordering::Relaxed),
        stats.too_large.load(Ordering::Relaxed),
        stats.rate_limited.load(Ordering::Relaxed),
        stats.unavailable.load(Ordering::Relaxed),
        stats.connections_refused.load(Ordering::Relaxed),
    );
    served?;
    closed.context("closing the store")?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
