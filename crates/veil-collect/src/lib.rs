//! Veil's local-DP collector: the server that receives randomized reports from devices and
//! stores them for `veil ldp aggregate`. `veil ldp collect` is a thin command over it.
//!
//! - [`wire`]: the upload format (a batch of reports in Veil's compact encoding).
//! - [`server`]: HTTPS (rustls) or loopback HTTP with hyper; checks each batch (media type,
//!   size, framing, every report decoded and made under the collector's protocol) and
//!   takes it whole or refuses it whole with a status that says why; global limits on
//!   body size, batch size, rate and connections; graceful stop.
//! - [`store`]: durable appends (a synced write-ahead log, group commit) sealed into
//!   shuffled segment files written to a temporary file, synced and renamed; recovery
//!   after a crash; one collector and one protocol per directory.
//!
//! Nothing identifying is stored with a report: no address, cookie or user agent is read
//! or kept, and segment rows are shuffled. The crate prints nothing and creates no
//! randomness: the caller passes the generator that shuffles segments, and receives
//! [`store::StoreEvent`]s and [`server::Stats`] to log.
//!
//! ```no_run
//! # async fn example(protocol: veil_ldp::Protocol, sink: std::sync::Arc<dyn veil_collect::store::SegmentSink>,
//! #     rng: Box<dyn rand_core::CryptoRng + Send>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use veil_collect::server::{self, Limits, ServerConfig, Stats};
//! use veil_collect::store::{Store, StorePolicy};
//!
//! let policy = StorePolicy { segment_reports: 100_000, segment_age: std::time::Duration::from_secs(60), queue: 4096 };
//! let store = Store::open("reports/".as_ref(), &protocol, sink, policy, rng, Arc::new(|_event| {}))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//! let config = ServerConfig { protocol, tls: None, limits: Limits::default(), allow_origins: vec![] };
//! // Serves until the future given completes (the CLI: SIGTERM or Ctrl-C).
//! server::serve(listener, config, store.appender(), Arc::new(Stats::default()), std::future::pending())
//!     .await?;
//! store.close()?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

#[cfg(feature = "client")]
pub mod client;
pub mod server;
pub mod store;
pub mod wire;
