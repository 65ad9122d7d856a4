//! SeedSweep: the sweep engine, its executors and the `seedsweep` command line.

pub mod cli;
pub mod engine;
pub mod manifest;
