//! `seedsweep-trainer`: fine-tunes a BERT checkpoint on a GLUE task, keeping the paper's two seeds apart (weight
//! initialisation of the head vs. data order), and reports progress on Prometheus and its result in a summary.

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data;
pub mod dropout;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod run;
pub mod schedule;
pub mod seeds;
pub mod tokenize;
