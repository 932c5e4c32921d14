//! Integration tests of veil-report: analytic predictions against Monte Carlo, rendered
//! reports against snapshots, and the HTML's self-containment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agreement;
mod fixtures;
mod rendering;
mod selection;
