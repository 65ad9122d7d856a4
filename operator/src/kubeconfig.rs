//! The Kubernetes client configuration both cluster commands use: the file `--kubeconfig` names, or else the one
//! kube infers (`KUBECONFIG`, `~/.kube/config`, the in-cluster service account).

use anyhow::Context;
use std::path::Path;

/// The configuration from `path` (the `--kubeconfig` flag) when given, else the inferred one.
pub async fn kube_config(path: Option<&Path>) -> anyhow::Result<kube::Config> {
    match path {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("--kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .with_context(|| format!("--kubeconfig {}", path.display()))
        }
        None => kube::Config::infer()
            .await
            .context("no Kubernetes configuration found (pass --kubeconfig)"),
    }
}
