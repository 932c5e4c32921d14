//! The auditor audited: bugs planted on purpose must fail, the real code must pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod planted;
