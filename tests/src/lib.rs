//! SeedSweep's test support: a real Kubernetes control plane per test binary ([`cluster::TestCluster`]), a node
//! simulator acting as the kubelet ([`sim::NodeSimulator`]), and helpers for end-to-end tests ([`helpers`]);
//! a trial stand-in replaying recorded learning curves for scale tests ([`standin`]).
//! See tests/README.md.

pub mod bench;
pub mod cluster;
pub mod faults;
pub mod helpers;
pub mod sim;
pub mod standin;

pub use cluster::{ClusterOptions, Setup, TestCluster, shared};
