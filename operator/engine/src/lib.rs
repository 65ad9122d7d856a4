//! The sweep engine: pure functions from a spec and observations to plans, decisions, a status and statistics.
//!
//! Nothing here does I/O or reads a clock; the crate depends on the API types (`seedsweep-crds`) and pure crates
//! only, so the compiler keeps it that way. The Kubernetes controller and the local executor are thin shells that
//! drive it the same way:
//!
//! 1. record what they observed ([`state::SweepState::observe`], [`state::SweepState::finish`]),
//! 2. take one [`state::SweepState::step`] (decisions recorded in the state, the verdicts after them),
//! 3. persist the [`snapshot::Snapshot`] before acting, then act on the step's actions.

pub mod observation;
pub mod plan;
pub mod policy;
pub mod report;
pub mod snapshot;
pub mod state;
pub mod stats;
pub mod transfer;
pub mod whatif;
