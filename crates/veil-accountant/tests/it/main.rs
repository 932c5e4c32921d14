//! Integration tests of the accountant's public API: reference values from another
//! accountant, and the in-memory ledger as other crates use it.

mod ledger;
mod reference;
