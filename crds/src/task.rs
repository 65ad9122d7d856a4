//! GLUE tasks and the metrics every evaluation reports.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A GLUE task SeedSweep can fine-tune on (the four of Dodge et al. 2020).
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Mrpc,
    Rte,
    Cola,
    Sst2,
}

impl Task {
    pub const ALL: [Task; 4] = [Task::Mrpc, Task::Rte, Task::Cola, Task::Sst2];

    pub fn as_str(self) -> &'static str {
        match self {
            Task::Mrpc => "mrpc",
            Task::Rte => "rte",
            Task::Cola => "cola",
            Task::Sst2 => "sst2",
        }
    }

    /// The directory name the GLUE distribution uses for this task (`MRPC`, `SST-2`, ...).
    pub fn glue_dir(self) -> &'static str {
        match self {
            Task::Mrpc => "MRPC",
            Task::Rte => "RTE",
            Task::Cola => "CoLA",
            Task::Sst2 => "SST-2",
        }
    }

    /// The metric the paper's code reports for this task: MRPC `acc_and_f1`, CoLA Matthews correlation, accuracy
    /// for RTE and SST-2.
    pub fn default_metric(self) -> MetricName {
        match self {
            Task::Mrpc => MetricName::AccAndF1,
            Task::Rte | Task::Sst2 => MetricName::Accuracy,
            Task::Cola => MetricName::Mcc,
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Task::ALL
            .into_iter()
            .find(|t| t.as_str() == s.to_ascii_lowercase().replace('-', ""))
            .ok_or_else(|| format!("unknown task {s:?}; expected one of mrpc, rte, cola, sst2"))
    }
}

/// A classification metric. Every evaluation computes all of them, so any objective works for any task.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    Accuracy,
    /// F1 of the positive class (label 1).
    F1,
    /// Matthews correlation coefficient.
    Mcc,
    /// Mean of accuracy and F1, the paper's MRPC metric.
    AccAndF1,
}

impl MetricName {
    pub const ALL: [MetricName; 4] = [
        MetricName::Accuracy,
        MetricName::F1,
        MetricName::Mcc,
        MetricName::AccAndF1,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MetricName::Accuracy => "accuracy",
            MetricName::F1 => "f1",
            MetricName::Mcc => "mcc",
            MetricName::AccAndF1 => "acc_and_f1",
        }
    }
}

impl fmt::Display for MetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MetricName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        MetricName::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("unknown metric {s:?}; expected one of accuracy, f1, mcc, acc_and_f1")
            })
    }
}

/// The values of every [`MetricName`] for one evaluation.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub struct Metrics {
    pub accuracy: f64,
    pub f1: f64,
    pub mcc: f64,
    pub acc_and_f1: f64,
}

impl Metrics {
    pub fn get(&self, name: MetricName) -> f64 {
        match name {
            MetricName::Accuracy => self.accuracy,
            MetricName::F1 => self.f1,
            MetricName::Mcc => self.mcc,
            MetricName::AccAndF1 => self.acc_and_f1,
        }
    }

    pub fn set(&mut self, name: MetricName, value: f64) {
        match name {
            MetricName::Accuracy => self.accuracy = value,
            MetricName::F1 => self.f1 = value,
            MetricName::Mcc => self.mcc = value,
            MetricName::AccAndF1 => self.acc_and_f1 = value,
        }
    }
}
