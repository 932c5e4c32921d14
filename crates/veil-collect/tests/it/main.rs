//! The collector over real sockets: statuses, limits, TLS, shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server;
