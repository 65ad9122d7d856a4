//! Turns a container spec into a local process plan: program, args, env, working dir and the path mapping from
//! in-container paths (termination-message path, emptyDir mounts) to per-pod directories on this machine.
//!
//! Pure (no I/O), so the conventions documented in tests/README.md are unit tested here.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Container, Pod};

use super::env::{MissingRef, PodFacts, container_env, expand_all};

/// Environment variable through which a process learns where its termination message goes, for programs that
/// prefer an explicit location to the rewritten `terminationMessagePath`.
pub const TERMINATION_LOG_ENV: &str = "SEEDSWEEP_TERMINATION_LOG";
/// Environment variable holding the pod's private directory on this machine.
pub const POD_DIR_ENV: &str = "SEEDSWEEP_POD_DIR";
/// The kubelet's default `terminationMessagePath`.
pub const DEFAULT_TERMINATION_PATH: &str = "/dev/termination-log";

/// In-container path → local path replacements, applied to command, args, literal env values and workingDir.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathMap {
    /// Sorted longest container path first so nested mounts win over their parents.
    entries: Vec<(String, PathBuf)>,
}

impl PathMap {
    pub fn insert(&mut self, container_path: &str, local: PathBuf) {
        let container_path = container_path.trim_end_matches('/');
        if container_path.is_empty() {
            return; // Never remap "/": it would rewrite every absolute path.
        }
        self.entries.retain(|(p, _)| p != container_path);
        self.entries.push((container_path.to_string(), local));
        self.entries.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
    }

    /// Rewrites every occurrence of a mapped container path that stands as a whole path component sequence:
    /// preceded by start or a non-path character (space, `=`, quote, `>` ...) and followed by end, `/` or a
    /// non-path character. So `--out=/data/x` and `echo hi > /dev/termination-log` are rewritten while
    /// `/data2` or `/srv/data` are left alone.
    pub fn rewrite(&self, input: &str) -> String {
        if self.entries.is_empty() {
            return input.to_string();
        }
        let mut out = String::with_capacity(input.len());
        let mut i = 0;
        'outer: while i < input.len() {
            let at_boundary =
                i == 0 || !is_path_char(input[..i].chars().next_back().unwrap_or(' '));
            if at_boundary && input.as_bytes()[i] == b'/' {
                for (from, to) in &self.entries {
                    if input[i..].starts_with(from.as_str()) {
                        let end = i + from.len();
                        let next = input[end..].chars().next();
                        if next.is_none_or(|c| c == '/' || !is_path_char(c)) {
                            out.push_str(&to.to_string_lossy());
                            i = end;
                            continue 'outer;
                        }
                    }
                }
            }
            let c = input[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
        out
    }

    pub fn entries(&self) -> &[(String, PathBuf)] {
        &self.entries
    }
}

fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '/' | '_' | '-' | '.' | '~' | '+' | '@' | '%' | ',')
}

/// Everything needed to start one container as a local process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPlan {
    pub container: String,
    pub program: String,
    pub args: Vec<String>,
    /// Container env after expansion, in declaration order, plus the simulator's `SEEDSWEEP_*` variables.
    /// The process also inherits the simulator's own environment (PATH, HOME...) underneath.
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
    pub termination_log: PathBuf,
    pub log_file: PathBuf,
    /// Local directories to create before start (emptyDir volumes, the default working dir).
    pub dirs: Vec<PathBuf>,
    /// Files to write before start (configMap and secret volumes).
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// `terminationMessagePolicy: FallbackToLogsOnError`.
    pub fallback_to_logs: bool,
}

/// A path that stays inside its directory (no absolute paths, no `..`).
fn relative(path: &str) -> Result<&str> {
    if Path::new(path).is_absolute() || path.split('/').any(|c| c == "..") {
        bail!("invalid relative path {path:?}");
    }
    Ok(path)
}

/// Files of a configMap/secret volume: every key, or only `items` (key → path), like the kubelet. A missing
/// source is a [`MountError`] worded like the kubelet's `FailedMount` event.
fn projected_files(
    dir: &Path,
    volume: &str,
    kind: &str,
    name: &str,
    data: Option<&std::collections::BTreeMap<String, Vec<u8>>>,
    items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>,
    optional: Option<bool>,
) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let failed = |why: String| {
        MountError(format!(
            "MountVolume.SetUp failed for volume \"{volume}\" : {why}"
        ))
    };
    let Some(data) = data else {
        if optional == Some(true) {
            return Ok(Vec::new());
        }
        return Err(failed(format!("{kind} \"{name}\" not found")).into());
    };
    match items {
        None => Ok(data.iter().map(|(k, v)| (dir.join(k), v.clone())).collect()),
        Some(items) => items
            .iter()
            .filter_map(|item| match data.get(&item.key) {
                Some(bytes) => Some(relative(&item.path).map(|p| (dir.join(p), bytes.clone()))),
                None if optional == Some(true) => None,
                None => Some(Err(failed(format!(
                    "{kind} references non-existent {} key: {}",
                    if kind == "secret" { "secret" } else { "config" },
                    item.key
                ))
                .into())),
            })
            .collect(),
    }
}

/// A configMap/secret volume cannot be set up yet: the kubelet keeps the pod's containers in their default
/// waiting state (`ContainerCreating`) and retries; the message is its `FailedMount` event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MountError(pub String);

/// Why a container cannot be started (yet), in the terms the kubelet reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A ConfigMap/Secret or key the environment needs is missing: `CreateContainerConfigError` with the
    /// kubelet's message, retried.
    #[error("{0}")]
    Config(String),
    /// A volume cannot be set up (see [`MountError`]): default waiting state, retried.
    #[error("{0}")]
    Mount(String),
    /// The simulator cannot run this spec (no command, unsupported downward API...): a permanent
    /// `CreateContainerConfigError` with the simulator's explanation.
    #[error("{0}")]
    Unsupported(String),
}

impl From<anyhow::Error> for PlanError {
    fn from(e: anyhow::Error) -> Self {
        if let Some(m) = e.downcast_ref::<MissingRef>() {
            PlanError::Config(m.0.clone())
        } else if let Some(m) = e.downcast_ref::<MountError>() {
            PlanError::Mount(m.0.clone())
        } else {
            PlanError::Unsupported(format!("{e:#}"))
        }
    }
}

/// Local layout of one pod's directory; see tests/README.md.
pub fn volume_dir(pod_dir: &Path, volume: &str) -> PathBuf {
    pod_dir.join("volumes").join(volume)
}

pub fn plan_container(
    container: &Container,
    facts: &PodFacts<'_>,
    pod_dir: &Path,
) -> std::result::Result<ProcessPlan, PlanError> {
    Ok(plan(container, facts, pod_dir)?)
}

/// The first configMap/secret volume mounted by any container of the pod that cannot be set up. The kubelet
/// mounts all of them before it starts any container, init containers included.
pub fn volume_error(facts: &PodFacts<'_>, pod_dir: &Path) -> Option<String> {
    let spec = facts.pod.spec.as_ref()?;
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for c in containers {
        let only_mounts = Container {
            name: c.name.clone(),
            volume_mounts: c.volume_mounts.clone(),
            command: Some(vec!["true".into()]),
            ..Default::default()
        };
        if let Err(PlanError::Mount(m)) = plan_container(&only_mounts, facts, pod_dir) {
            return Some(m);
        }
    }
    None
}

fn plan(container: &Container, facts: &PodFacts<'_>, pod_dir: &Path) -> Result<ProcessPlan> {
    let name = &container.name;
    let pod: &Pod = facts.pod;
    let spec = pod.spec.as_ref().context("pod has no spec")?;

    let mut map = PathMap::default();
    let mut dirs = Vec::new();
    let termination_log = pod_dir.join(format!("{name}.termination-log"));
    let termination_path = container
        .termination_message_path
        .as_deref()
        .unwrap_or(DEFAULT_TERMINATION_PATH);
    map.insert(termination_path, termination_log.clone());

    let mut files = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .with_context(|| {
                format!("container {name:?} mounts unknown volume {:?}", mount.name)
            })?;
        let base = volume_dir(pod_dir, &volume.name);
        if volume.empty_dir.is_some() {
            dirs.push(base.clone());
        } else if let Some(cm) = &volume.config_map {
            dirs.push(base.clone());
            let data = facts.refs.config_maps.get(&cm.name);
            files.extend(projected_files(
                &base,
                &volume.name,
                "configmap",
                &cm.name,
                data,
                cm.items.as_deref(),
                cm.optional,
            )?);
        } else if let Some(secret) = &volume.secret {
            dirs.push(base.clone());
            let sname = secret.secret_name.clone().unwrap_or_default();
            let data = facts.refs.secrets.get(&sname);
            files.extend(projected_files(
                &base,
                &volume.name,
                "secret",
                &sname,
                data,
                secret.items.as_deref(),
                secret.optional,
            )?);
        } else {
            // Other sources (service-account tokens, projected, hostPath...) are not materialised; their mount
            // paths stay unmapped.
            continue;
        }
        let mut local = base;
        if let Some(sub) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            local =
                local.join(relative(sub).with_context(|| format!("container {name:?}: subPath"))?);
            if volume.empty_dir.is_some() {
                dirs.push(local.clone());
            }
        }
        map.insert(&mount.mount_path, local);
    }

    let env = container_env(container, facts, |s| map.rewrite(s))?;
    let command = expand_all(container.command.as_deref().unwrap_or_default(), &env);
    let args = expand_all(container.args.as_deref().unwrap_or_default(), &env);
    let mut argv: Vec<String> = command
        .into_iter()
        .chain(args)
        .map(|a| map.rewrite(&a))
        .collect();
    if argv.is_empty() {
        bail!(
            "container {name:?} has no command: the node simulator cannot run an image's entrypoint"
        );
    }
    let program = argv.remove(0);

    let working_dir = match container.working_dir.as_deref().filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(map.rewrite(dir)),
        None => {
            let dir = pod_dir.join("cwd");
            dirs.push(dir.clone());
            dir
        }
    };

    let mut full_env = env;
    full_env.push((
        TERMINATION_LOG_ENV.to_string(),
        termination_log.to_string_lossy().into_owned(),
    ));
    full_env.push((
        POD_DIR_ENV.to_string(),
        pod_dir.to_string_lossy().into_owned(),
    ));
    full_env.push((
        "HOSTNAME".to_string(),
        pod.metadata.name.clone().unwrap_or_default(),
    ));

    Ok(ProcessPlan {
        container: name.clone(),
        program,
        args: argv,
        env: full_env,
        working_dir,
        log_file: pod_dir.join(format!("{name}.log")),
        termination_log,
        dirs,
        files,
        fallback_to_logs: container.termination_message_policy.as_deref()
            == Some("FallbackToLogsOnError"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::env::Refs;
    use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, EnvVar, PodSpec, Volume, VolumeMount};
    use kube::api::ObjectMeta;

    #[test]
    fn rewrites_paths_only_at_boundaries() {
        let mut map = PathMap::default();
        map.insert("/dev/termination-log", "/w/p/c.termination-log".into());
        map.insert("/data/", "/w/p/volumes/data".into());
        map.insert("/data/cache", "/w/p/volumes/cache".into());
        let cases = [
            (
                "echo hi > /dev/termination-log; exit 0",
                "echo hi > /w/p/c.termination-log; exit 0",
            ),
            (
                "--termination-log=/dev/termination-log",
                "--termination-log=/w/p/c.termination-log",
            ),
            ("/data", "/w/p/volumes/data"),
            ("/data/out/x.json", "/w/p/volumes/data/out/x.json"),
            ("/data/cache/m", "/w/p/volumes/cache/m"),
            ("'/data'", "'/w/p/volumes/data'"),
            ("/data2 /srv/data data/x", "/data2 /srv/data data/x"),
            ("a:/data:b", "a:/w/p/volumes/data:b"),
            ("/dev/termination-log.bak", "/dev/termination-log.bak"),
            ("ünï /data", "ünï /w/p/volumes/data"),
        ];
        for (input, want) in cases {
            assert_eq!(map.rewrite(input), want, "input {input:?}");
        }
    }

    #[test]
    fn root_is_never_mapped() {
        let mut map = PathMap::default();
        map.insert("/", "/tmp/x".into());
        assert_eq!(map.rewrite("/etc/passwd"), "/etc/passwd");
    }

    fn pod(container: Container, volumes: Vec<Volume>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p1".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![container],
                volumes: Some(volumes),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn plans_a_trainer_invocation() {
        let container = Container {
            name: "trainer".into(),
            command: Some(vec!["trainer".into()]),
            args: Some(vec![
                "--bind=$(POD_IP):9000".into(),
                "--termination-log".into(),
                "/var/run/term".into(),
                "--out=$(OUT)".into(),
            ]),
            env: Some(vec![
                EnvVar {
                    name: "POD_IP".into(),
                    value_from: Some(k8s_openapi::api::core::v1::EnvVarSource {
                        field_ref: Some(k8s_openapi::api::core::v1::ObjectFieldSelector {
                            field_path: "status.podIP".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                EnvVar {
                    name: "OUT".into(),
                    value: Some("/scratch/run".into()),
                    ..Default::default()
                },
            ]),
            termination_message_path: Some("/var/run/term".into()),
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "scratch".into(),
                    mount_path: "/scratch".into(),
                    ..Default::default()
                },
                VolumeMount {
                    name: "token".into(),
                    mount_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let volumes = vec![
            Volume {
                name: "scratch".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
            Volume {
                name: "token".into(),
                ..Default::default()
            },
        ];
        let pod = pod(container.clone(), volumes);
        let facts = PodFacts {
            pod: &pod,
            pod_ip: "127.9.0.3".into(),
            host_ip: "127.0.0.1".into(),
            node_name: "n".into(),
            refs: &Refs::default(),
        };
        let plan = plan_container(&container, &facts, Path::new("/w/p1")).unwrap();
        assert_eq!(plan.program, "trainer");
        assert_eq!(
            plan.args,
            vec![
                "--bind=127.9.0.3:9000",
                "--termination-log",
                "/w/p1/trainer.termination-log",
                "--out=/w/p1/volumes/scratch/run"
            ]
        );
        assert_eq!(plan.working_dir, PathBuf::from("/w/p1/cwd"));
        assert!(plan.dirs.contains(&PathBuf::from("/w/p1/volumes/scratch")));
        assert!(plan.env.contains(&(
            TERMINATION_LOG_ENV.into(),
            "/w/p1/trainer.termination-log".into()
        )));
        assert!(
            plan.env
                .contains(&("OUT".into(), "/w/p1/volumes/scratch/run".into()))
        );
        assert!(!plan.fallback_to_logs);
    }

    #[test]
    fn refuses_image_entrypoints_and_unknown_volumes() {
        let no_cmd = Container {
            name: "c".into(),
            ..Default::default()
        };
        let p = pod(no_cmd.clone(), vec![]);
        let facts = PodFacts {
            pod: &p,
            pod_ip: "127.9.0.3".into(),
            host_ip: "127.0.0.1".into(),
            node_name: "n".into(),
            refs: &Refs::default(),
        };
        assert!(
            format!(
                "{:#}",
                plan_container(&no_cmd, &facts, Path::new("/w")).unwrap_err()
            )
            .contains("no command")
        );

        let bad_mount = Container {
            name: "c".into(),
            command: Some(vec!["true".into()]),
            volume_mounts: Some(vec![VolumeMount {
                name: "x".into(),
                mount_path: "/x".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let p = pod(bad_mount.clone(), vec![]);
        let facts = PodFacts {
            pod: &p,
            pod_ip: "127.9.0.3".into(),
            host_ip: "127.0.0.1".into(),
            node_name: "n".into(),
            refs: &Refs::default(),
        };
        assert!(plan_container(&bad_mount, &facts, Path::new("/w")).is_err());
    }

    #[test]
    fn config_map_volume_items_become_files() {
        let container = Container {
            name: "c".into(),
            command: Some(vec!["cat".into(), "/etc/cfg/sub/a.json".into()]),
            volume_mounts: Some(vec![VolumeMount {
                name: "cfg".into(),
                mount_path: "/etc/cfg".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let volume = |items: Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>, optional| Volume {
            name: "cfg".into(),
            config_map: Some(k8s_openapi::api::core::v1::ConfigMapVolumeSource {
                name: "trial".into(),
                items,
                optional,
                ..Default::default()
            }),
            ..Default::default()
        };
        let item = |key: &str, path: &str| k8s_openapi::api::core::v1::KeyToPath {
            key: key.into(),
            path: path.into(),
            mode: None,
        };
        let mut refs = Refs::default();
        refs.config_maps.insert(
            "trial".into(),
            std::collections::BTreeMap::from([
                ("a".to_string(), b"A".to_vec()),
                ("b".to_string(), b"B".to_vec()),
            ]),
        );
        let plan_with = |v: Volume, refs: &Refs| {
            let p = pod(container.clone(), vec![v]);
            let facts = PodFacts {
                pod: &p,
                pod_ip: "127.9.0.3".into(),
                host_ip: "127.0.0.1".into(),
                node_name: "n".into(),
                refs,
            };
            plan_container(&container, &facts, Path::new("/w"))
        };
        let all = plan_with(volume(None, None), &refs).unwrap();
        assert_eq!(
            all.files,
            vec![
                (PathBuf::from("/w/volumes/cfg/a"), b"A".to_vec()),
                (PathBuf::from("/w/volumes/cfg/b"), b"B".to_vec())
            ]
        );
        assert_eq!(all.args, vec!["/w/volumes/cfg/sub/a.json"]);
        let some = plan_with(volume(Some(vec![item("a", "sub/a.json")]), None), &refs).unwrap();
        assert_eq!(
            some.files,
            vec![(PathBuf::from("/w/volumes/cfg/sub/a.json"), b"A".to_vec())]
        );
        assert!(plan_with(volume(Some(vec![item("a", "../x")]), None), &refs).is_err());
        assert!(plan_with(volume(Some(vec![item("zz", "z")]), None), &refs).is_err());
        assert_eq!(
            plan_with(volume(Some(vec![item("zz", "z")]), None), &refs),
            Err(PlanError::Mount(
                "MountVolume.SetUp failed for volume \"cfg\" : configmap references non-existent config key: zz"
                    .into()
            ))
        );
        assert_eq!(
            plan_with(volume(None, None), &Refs::default()),
            Err(PlanError::Mount(
                "MountVolume.SetUp failed for volume \"cfg\" : configmap \"trial\" not found"
                    .into()
            ))
        );
        assert!(
            plan_with(volume(None, Some(true)), &Refs::default())
                .unwrap()
                .files
                .is_empty()
        );
    }
}
