//! Scenarios, the deterministic runner, the lvm / user-space side of a run, and the oracle
//! that turns a run into a verdict.

pub mod campaign;
pub mod conform;
pub mod gates;
pub mod gen;
pub mod lvm;
pub mod runner;
pub mod scenario;
pub mod shadow;
pub mod text;
pub mod timeline;
pub mod verdict;

pub use runner::{run, RunOptions, Tail};
pub use scenario::{Scenario, VerdictKind};
pub use verdict::Outcome;
