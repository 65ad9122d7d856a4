//! SeedSweep: the sweep engine, its executors and the `seedsweep` command line.

pub mod cli;
pub mod controller;
pub mod engine;
pub mod local;
pub mod manifest;
pub mod report;
pub mod scrape;
pub mod trainer_args;
