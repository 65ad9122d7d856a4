//! The sweep engine: pure functions from a manifest and observations to plans, decisions and statistics. The
//! Kubernetes controller and the local executor are thin shells around it.

pub mod plan;
pub mod policy;
pub mod state;
pub mod stats;
