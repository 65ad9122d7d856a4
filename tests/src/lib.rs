//! SeedSweep's test support: a real Kubernetes control plane per test binary ([`cluster::TestCluster`]), a node
//! simulator acting as the kubelet ([`sim::NodeSimulator`]), and helpers for end-to-end tests ([`helpers`]).
//! See tests/README.md.

pub mod cluster;
pub mod helpers;
pub mod sim;

pub use cluster::{ClusterOptions, Setup, TestCluster, shared};
