//! Where a report's sweep comes from: a local state directory or a SeedSweep in a cluster. Both hold the same
//! engine snapshot (the spec the plan was made from and every recorded evaluation), so a report reads the same
//! either way.

use crate::controller::engine_store;
use crate::engine::state::SweepState;
use crate::kubeconfig::kube_config;
use crate::local::store;
use anyhow::{Context, bail};
use seedsweep_crds::sweep::{SeedSweep, SeedSweepSpec};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A sweep read for a report.
pub struct Loaded {
    pub spec: SeedSweepSpec,
    pub state: SweepState,
    /// Where it was read from, for the report's header.
    pub origin: String,
}

/// A sweep named on the command line: `--state-dir DIR`, `--sweep NAME`, or one `--compare` source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepSource {
    /// A local state directory.
    StateDir(PathBuf),
    /// A SeedSweep in the cluster, by name.
    Cluster(String),
}

impl FromStr for SweepSource {
    type Err = String;

    /// `ssw/NAME` or `seedsweep/NAME` (kubectl's spellings) is a SeedSweep; anything else a state directory (write
    /// `./ssw/NAME` for a directory of that name).
    fn from_str(s: &str) -> Result<Self, String> {
        let cluster = ["ssw/", "seedsweep/"]
            .iter()
            .find_map(|prefix| s.strip_prefix(prefix));
        match cluster {
            Some(name) if name.is_empty() || name.contains('/') => Err(format!(
                "{s:?} is not a SeedSweep name: write ssw/NAME (or ./{s} for a state directory)"
            )),
            Some(name) => Ok(SweepSource::Cluster(name.to_string())),
            None if s.is_empty() => {
                Err("an empty source: pass a state directory or ssw/NAME".into())
            }
            None => Ok(SweepSource::StateDir(PathBuf::from(s))),
        }
    }
}

impl SweepSource {
    /// Reads the sweep; a SeedSweep from `namespace` (default: the kubeconfig context's).
    pub fn load(
        &self,
        namespace: Option<&str>,
        kubeconfig: Option<&Path>,
    ) -> anyhow::Result<Loaded> {
        match self {
            SweepSource::StateDir(dir) => from_state_dir(dir),
            SweepSource::Cluster(name) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(from_cluster(name, namespace, kubeconfig)),
        }
    }

    /// What makes two sources the same sweep: a directory's canonical path (as given, where it cannot be
    /// resolved), a SeedSweep's name (all of a comparison's SeedSweeps are in one namespace).
    pub fn identity(&self) -> String {
        match self {
            SweepSource::StateDir(dir) => {
                let path = dir.canonicalize().unwrap_or_else(|_| dir.clone());
                format!("state directory {}", path.display())
            }
            SweepSource::Cluster(name) => format!("SeedSweep {name}"),
        }
    }
}

impl std::fmt::Display for SweepSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SweepSource::StateDir(dir) => write!(f, "{}", dir.display()),
            SweepSource::Cluster(name) => write!(f, "ssw/{name}"),
        }
    }
}

/// Reads a local state directory (without locking it: `seedsweep run` may still be writing it).
pub fn from_state_dir(dir: &Path) -> anyhow::Result<Loaded> {
    if !dir.is_dir() {
        bail!("state directory {} does not exist", dir.display());
    }
    let (spec, state) = store::read(dir)?.with_context(|| {
        format!(
            "no sweep state in {} (no state.json: run `seedsweep run` first, or pass the directory it used)",
            dir.display()
        )
    })?;
    Ok(Loaded {
        spec,
        state,
        origin: format!("state directory {}", dir.display()),
    })
}

/// Reads a SeedSweep's `status.engine` from the cluster.
pub async fn from_cluster(
    name: &str,
    namespace: Option<&str>,
    kubeconfig: Option<&Path>,
) -> anyhow::Result<Loaded> {
    let config = kube_config(kubeconfig).await?;
    let namespace = namespace.unwrap_or(&config.default_namespace).to_string();
    let client = kube::Client::try_from(config)?;
    let api: kube::Api<SeedSweep> = kube::Api::namespaced(client.clone(), &namespace);
    let sweep = api
        .get_opt(name)
        .await
        .with_context(|| format!("cannot read SeedSweep {namespace}/{name}"))?
        .with_context(|| format!("SeedSweep {namespace}/{name} does not exist"))?;
    let engine = sweep
        .status
        .and_then(|s| s.engine)
        .with_context(|| {
            format!(
                "SeedSweep {namespace}/{name} has no recorded state yet (status.engine is empty): the operator has \
                 not started it"
            )
        })?;
    let (snapshot, _) = engine_store::load(&client, &namespace, name, &engine)
        .await
        .with_context(|| {
            format!("the recorded state of SeedSweep {namespace}/{name} cannot be read")
        })?;
    let state = snapshot
        .restore()
        .with_context(|| format!("status.engine of SeedSweep {namespace}/{name} cannot be read"))?;
    Ok(Loaded {
        spec: snapshot.spec,
        state,
        origin: format!("SeedSweep {namespace}/{name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_seedsweeps_by_kubectl_spelling_and_directories_otherwise() {
        let parsed = |s: &str| s.parse::<SweepSource>();
        assert_eq!(parsed("ssw/mrpc"), Ok(SweepSource::Cluster("mrpc".into())));
        assert_eq!(
            parsed("seedsweep/rte-a"),
            Ok(SweepSource::Cluster("rte-a".into()))
        );
        assert_eq!(
            parsed("./ssw/mrpc"),
            Ok(SweepSource::StateDir("./ssw/mrpc".into()))
        );
        assert_eq!(
            parsed("seedsweep-state/mrpc"),
            Ok(SweepSource::StateDir("seedsweep-state/mrpc".into()))
        );
        assert_eq!(
            parsed("ssw/"),
            Err("\"ssw/\" is not a SeedSweep name: write ssw/NAME (or ./ssw/ for a state directory)".into())
        );
        assert!(parsed("ssw/a/b").is_err() && parsed("").is_err());
    }

    #[test]
    fn a_directory_given_two_ways_is_one_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let a = SweepSource::StateDir(dir.path().to_path_buf());
        let b = SweepSource::StateDir(
            dir.path()
                .join(".")
                .join("..")
                .join(dir.path().file_name().unwrap()),
        );
        assert_eq!(a.identity(), b.identity());
        assert_ne!(a.identity(), SweepSource::Cluster("x".into()).identity());
    }
}
