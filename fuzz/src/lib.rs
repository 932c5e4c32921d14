//! The fuzz targets' checks, as a library: see `targets.rs`.

mod targets;

pub use targets::{job_parser, ldp_descriptor, ldp_report, purposes, report_protocols};
