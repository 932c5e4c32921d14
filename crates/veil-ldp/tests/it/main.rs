//! Integration tests of veil-ldp: one test binary, one module per area.

mod privacy_docs;
mod variance;
