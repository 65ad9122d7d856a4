//! SeedSweep's executors and the `seedsweep` command line, around the pure engine (`seedsweep-engine`, re-exported
//! as [`engine`]): manifest loading and validation, scraping trainers, the local executor and the Kubernetes
//! controller.

pub use seedsweep_engine as engine;
pub use seedsweep_engine::report;

pub mod cli;
pub mod controller;
pub mod flags;
pub mod kubeconfig;
pub mod local;
pub mod manifest;
pub mod memory;
pub mod scrape;
pub mod seed_sources;
pub mod sweep_report;
pub mod trainer_args;
