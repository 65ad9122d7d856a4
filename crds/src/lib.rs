//! The public API of SeedSweep: the `SeedSweep` custom resource (`seedsweep.dev/v1alpha1`) and the contract between
//! the trainer and whatever watches it (metric names, labels, the end-of-run summary).

pub mod statistics;
pub mod task;
pub mod trainer;

pub use task::{MetricName, Metrics, Task};
