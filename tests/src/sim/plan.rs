//! Turns a container spec into a local process plan: program, args, env, working dir and the path mapping from
//! in-container paths (termination-message path, emptyDir mounts) to per-pod directories on this machine.
//!
//! Pure (no I/O), so the conventions documented in tests/README.md are unit tested here.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Container, Pod};

use super::env::{MissingRef, PodFacts, Refs, container_env_over, expand_all, resolve_field_ref};

/// Environment variable through which a process learns where its termination message goes, for programs that
/// prefer an explicit location to the rewritten `terminationMessagePath`.
pub const TERMINATION_LOG_ENV: &str = "SEEDSWEEP_TERMINATION_LOG";
/// Environment variable holding the pod's private directory on this machine.
pub const POD_DIR_ENV: &str = "SEEDSWEEP_POD_DIR";
/// The kubelet's default `terminationMessagePath`.
pub const DEFAULT_TERMINATION_PATH: &str = "/dev/termination-log";
/// Where the ServiceAccount admission plugin mounts a pod's service-account credentials (`token`, `ca.crt`,
/// `namespace`), and where client libraries' in-cluster configuration looks for them.
pub const SERVICE_ACCOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Set for containers that mount their service account: a kubeconfig built from the mounted files, since a local
/// process cannot see them at [`SERVICE_ACCOUNT_PATH`] (client libraries read `$KUBECONFIG` before trying the
/// in-cluster files).
pub const KUBECONFIG_ENV: &str = "KUBECONFIG";

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

/// A kubeconfig equivalent to client-go's in-cluster configuration: the apiserver at `server` (`host:port`),
/// verified with `<dir>/ca.crt`, authenticated by the bearer token read from `<dir>/token` (re-read by clients as
/// it rotates), in the pod's namespace. JSON, which every kubeconfig reader accepts as YAML.
pub fn service_account_kubeconfig(server: &str, dir: &Path, namespace: &str) -> Vec<u8> {
    let file = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": {
            "server": format!("https://{server}"),
            "certificate-authority": file("ca.crt"),
        }}],
        "users": [{"name": "service-account", "user": {"tokenFile": file("token")}}],
        "contexts": [{"name": "in-cluster", "context": {
            "cluster": "in-cluster", "user": "service-account", "namespace": namespace,
        }}],
        "current-context": "in-cluster",
    });
    serde_json::to_vec_pretty(&config).unwrap_or_default()
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

/// Files of a projected volume (the form of the service-account mount since Kubernetes 1.21: a bound token,
/// `kube-root-ca.crt`'s `ca.crt` and the namespace): configMap and secret sources as for their volumes, downward API
/// `fieldRef` items, and the TokenRequest tokens fetched beforehand into `facts.refs.tokens`.
fn projected_volume(
    dir: &Path,
    volume: &str,
    projected: &k8s_openapi::api::core::v1::ProjectedVolumeSource,
    facts: &PodFacts<'_>,
) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    for (index, source) in projected.sources.iter().flatten().enumerate() {
        if let Some(cm) = &source.config_map {
            let data = facts.refs.config_maps.get(&cm.name);
            files.extend(projected_files(
                dir,
                volume,
                "configmap",
                &cm.name,
                data,
                cm.items.as_deref(),
                cm.optional,
            )?);
        }
        if let Some(secret) = &source.secret {
            let data = facts.refs.secrets.get(&secret.name);
            files.extend(projected_files(
                dir,
                volume,
                "secret",
                &secret.name,
                data,
                secret.items.as_deref(),
                secret.optional,
            )?);
        }
        if let Some(downward) = &source.downward_api {
            for item in downward.items.iter().flatten() {
                let Some(field) = &item.field_ref else {
                    bail!(
                        "volume {volume:?}: downward API item {:?} uses resourceFieldRef, which the node \
                         simulator does not support",
                        item.path
                    );
                };
                let value = resolve_field_ref(field, facts)
                    .with_context(|| format!("volume {volume:?}: {}", item.path))?;
                files.push((dir.join(relative(&item.path)?), value.into_bytes()));
            }
        }
        if let Some(token) = &source.service_account_token {
            let Some(bytes) = facts.refs.tokens.get(&Refs::token_key(volume, index)) else {
                return Err(MountError(format!(
                    "MountVolume.SetUp failed for volume \"{volume}\" : failed to fetch token: the \
                     TokenRequest for the pod's service account failed"
                ))
                .into());
            };
            files.push((dir.join(relative(&token.path)?), bytes.clone()));
        }
    }
    Ok(files)
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
    // The local directory holding the service-account files, when the container mounts them.
    let mut service_account_dir = None;
    for mount in container.volume_mounts.iter().flatten() {
        let volume = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .with_context(|| {
                format!("container {name:?} mounts unknown volume {:?}", mount.name)
            })?;
        let mut base = volume_dir(pod_dir, &volume.name);
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
        } else if let Some(projected) = &volume.projected {
            dirs.push(base.clone());
            files.extend(projected_volume(&base, &volume.name, projected, facts)?);
        } else if let (Some(claim), Some(root)) = (&volume.persistent_volume_claim, facts.pvc_dir) {
            // One directory per claim, shared by every pod that mounts it (the scheduler has already waited for
            // the claim to be bound).
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
            base = root
                .join(relative(namespace)?)
                .join(relative(&claim.claim_name)?);
            dirs.push(base.clone());
        } else {
            // Other sources (hostPath, plain downwardAPI, PVCs without a pvc_dir) are not materialised; their
            // mount paths stay unmapped.
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
        if mount.mount_path.trim_end_matches('/') == SERVICE_ACCOUNT_PATH {
            service_account_dir = Some(local.clone());
        }
        map.insert(&mount.mount_path, local);
    }

    // What the kubelet gives every container before its own variables: the `kubernetes` service, here the
    // apiserver's own address (its ClusterIP is not routed on this host).
    let mut base = Vec::new();
    if let Some((host, port)) = facts.api_server.as_deref().and_then(|a| a.rsplit_once(':')) {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        base.extend([
            ("KUBERNETES_SERVICE_HOST".to_string(), host.to_string()),
            ("KUBERNETES_SERVICE_PORT".to_string(), port.to_string()),
            (
                "KUBERNETES_SERVICE_PORT_HTTPS".to_string(),
                port.to_string(),
            ),
            (
                "KUBERNETES_PORT".to_string(),
                format!("tcp://{}", facts.api_server.as_deref().unwrap_or_default()),
            ),
        ]);
    }
    let mut env = container_env_over(base, container, facts, |s| map.rewrite(s))?;
    if let (Some(dir), Some(server)) = (&service_account_dir, facts.api_server.as_deref())
        && !env.iter().any(|(k, _)| k == KUBECONFIG_ENV)
    {
        let path = pod_dir.join(format!("{name}.kubeconfig"));
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        files.push((
            path.clone(),
            service_account_kubeconfig(server, dir, namespace),
        ));
        env.push((
            KUBECONFIG_ENV.to_string(),
            path.to_string_lossy().into_owned(),
        ));
    }
    // Without `command` a runtime runs the image's ENTRYPOINT with `args`; here only where the node maps the
    // image to a program (the caller then fills `command` in).
    if container.command.as_ref().is_none_or(|c| c.is_empty()) {
        bail!(
            "container {name:?} has no command: the node simulator cannot run an image's entrypoint"
        );
    }
    let command = expand_all(container.command.as_deref().unwrap_or_default(), &env);
    let args = expand_all(container.args.as_deref().unwrap_or_default(), &env);
    let mut argv: Vec<String> = command
        .into_iter()
        .chain(args)
        .map(|a| map.rewrite(&a))
        .collect();
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
    use k8s_openapi::api::core::v1::{
        EmptyDirVolumeSource, EnvVar, PersistentVolumeClaimVolumeSource, PodSpec, Volume,
        VolumeMount,
    };
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
            api_server: None,
            pvc_dir: None,
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

    /// A claim is one directory per namespace and claim name under the node's PVC directory, so pods (and their
    /// retries) that mount it share what they write there; without a PVC directory its path stays as it is.
    #[test]
    fn maps_a_persistent_volume_claim_to_its_shared_directory() {
        let container = Container {
            name: "trainer".into(),
            command: Some(vec!["trainer".into(), "--checkpoint-dir=/ckpt/a/b".into()]),
            volume_mounts: Some(vec![VolumeMount {
                name: "ckpt".into(),
                mount_path: "/ckpt".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let volumes = vec![Volume {
            name: "ckpt".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: "shared".into(),
                read_only: None,
            }),
            ..Default::default()
        }];
        let pod = pod(container.clone(), volumes);
        let refs = Refs::default();
        let facts = |pvc_dir| PodFacts {
            pod: &pod,
            pod_ip: "127.9.0.3".into(),
            host_ip: "127.0.0.1".into(),
            node_name: "n".into(),
            refs: &refs,
            api_server: None,
            pvc_dir,
        };
        let plan = plan_container(
            &container,
            &facts(Some(Path::new("/pvcs"))),
            Path::new("/w/p1"),
        )
        .unwrap();
        assert_eq!(plan.args, vec!["--checkpoint-dir=/pvcs/ns/shared/a/b"]);
        assert!(plan.dirs.contains(&PathBuf::from("/pvcs/ns/shared")));
        let plan = plan_container(&container, &facts(None), Path::new("/w/p1")).unwrap();
        assert_eq!(plan.args, vec!["--checkpoint-dir=/ckpt/a/b"]);
    }

    #[test]
    fn refuses_image_entrypoints_and_unknown_volumes() {
        let no_cmd = Container {
            name: "c".into(),
            args: Some(vec!["-c".into(), "true".into()]),
            ..Default::default()
        };
        let p = pod(no_cmd.clone(), vec![]);
        let facts = PodFacts {
            pod: &p,
            pod_ip: "127.9.0.3".into(),
            host_ip: "127.0.0.1".into(),
            node_name: "n".into(),
            refs: &Refs::default(),
            api_server: None,
            pvc_dir: None,
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
            api_server: None,
            pvc_dir: None,
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
                api_server: None,
                pvc_dir: None,
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

    #[test]
    fn service_account_mount_gets_a_kubeconfig_and_the_kubernetes_service() {
        let mount = VolumeMount {
            name: "default-token-abcde".into(),
            mount_path: format!("{SERVICE_ACCOUNT_PATH}/"),
            read_only: Some(true),
            ..Default::default()
        };
        let container = |mounts: Vec<VolumeMount>, env: Vec<EnvVar>| Container {
            name: "main".into(),
            command: Some(vec!["cat".into(), format!("{SERVICE_ACCOUNT_PATH}/token")]),
            volume_mounts: Some(mounts),
            env: Some(env),
            ..Default::default()
        };
        let volume = Volume {
            name: "default-token-abcde".into(),
            secret: Some(k8s_openapi::api::core::v1::SecretVolumeSource {
                secret_name: Some("default-token-abcde".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut refs = Refs::default();
        refs.secrets.insert(
            "default-token-abcde".into(),
            std::collections::BTreeMap::from([
                ("ca.crt".to_string(), b"CA".to_vec()),
                ("namespace".to_string(), b"ns".to_vec()),
                ("token".to_string(), b"TOKEN".to_vec()),
            ]),
        );
        let plan_of = |c: &Container, api: Option<&str>| {
            let p = pod(c.clone(), vec![volume.clone()]);
            let facts = PodFacts {
                pod: &p,
                pod_ip: "127.9.0.3".into(),
                host_ip: "127.0.0.1".into(),
                node_name: "n".into(),
                refs: &refs,
                api_server: api.map(str::to_string),
                pvc_dir: None,
            };
            plan_container(c, &facts, Path::new("/w/p1")).unwrap()
        };
        let get = |plan: &ProcessPlan, k: &str| {
            plan.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };

        let plan = plan_of(
            &container(vec![mount.clone()], vec![]),
            Some("127.0.0.1:6443"),
        );
        let dir = "/w/p1/volumes/default-token-abcde";
        assert_eq!(plan.args, vec![format!("{dir}/token")]);
        assert!(
            plan.files
                .contains(&(PathBuf::from(format!("{dir}/token")), b"TOKEN".to_vec()))
        );
        assert_eq!(
            get(&plan, "KUBECONFIG").as_deref(),
            Some("/w/p1/main.kubeconfig")
        );
        assert_eq!(
            get(&plan, "KUBERNETES_SERVICE_HOST").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            get(&plan, "KUBERNETES_SERVICE_PORT").as_deref(),
            Some("6443")
        );
        let (_, kubeconfig) = plan
            .files
            .iter()
            .find(|(p, _)| p == Path::new("/w/p1/main.kubeconfig"))
            .expect("kubeconfig written");
        let kubeconfig: kube::config::Kubeconfig =
            serde_yaml::from_slice(kubeconfig).expect("a kubeconfig");
        let cluster = kubeconfig.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some(format!("{dir}/ca.crt").as_str())
        );
        let user = kubeconfig.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(
            user.token_file.as_deref(),
            Some(format!("{dir}/token").as_str())
        );
        let context = kubeconfig.contexts[0].context.as_ref().unwrap();
        assert_eq!(context.namespace.as_deref(), Some("ns"));

        // The container's own KUBECONFIG (and service variables) win; no mount, no kubeconfig.
        let own = plan_of(
            &container(
                vec![mount],
                vec![EnvVar {
                    name: "KUBECONFIG".into(),
                    value: Some("/etc/kc".into()),
                    ..Default::default()
                }],
            ),
            Some("127.0.0.1:6443"),
        );
        assert_eq!(get(&own, "KUBECONFIG").as_deref(), Some("/etc/kc"));
        assert!(
            !own.files
                .iter()
                .any(|(p, _)| p.ends_with("main.kubeconfig"))
        );
        let unmounted = plan_of(&container(vec![], vec![]), Some("127.0.0.1:6443"));
        assert_eq!(get(&unmounted, "KUBECONFIG"), None);
        assert_eq!(
            get(&unmounted, "KUBERNETES_SERVICE_PORT").as_deref(),
            Some("6443")
        );
        // The apiserver's address unknown: neither.
        let unknown = plan_of(&container(vec![], vec![]), None);
        assert_eq!(get(&unknown, "KUBERNETES_SERVICE_HOST"), None);
    }

    #[test]
    fn projected_service_account_volume_like_kube_api_access() {
        use k8s_openapi::api::core::v1::{
            ConfigMapProjection, DownwardAPIProjection, DownwardAPIVolumeFile, KeyToPath,
            ObjectFieldSelector, ProjectedVolumeSource, ServiceAccountTokenProjection,
            VolumeProjection,
        };
        let volume = Volume {
            name: "kube-api-access-x1".into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![
                    VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            path: "token".into(),
                            expiration_seconds: Some(3607),
                            audience: None,
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "kube-root-ca.crt".into(),
                            items: Some(vec![KeyToPath {
                                key: "ca.crt".into(),
                                path: "ca.crt".into(),
                                mode: None,
                            }]),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                    VolumeProjection {
                        downward_api: Some(DownwardAPIProjection {
                            items: Some(vec![DownwardAPIVolumeFile {
                                path: "namespace".into(),
                                field_ref: Some(ObjectFieldSelector {
                                    field_path: "metadata.namespace".into(),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }]),
                        }),
                        ..Default::default()
                    },
                ]),
                default_mode: Some(420),
            }),
            ..Default::default()
        };
        let container = Container {
            name: "main".into(),
            command: Some(vec!["true".into()]),
            volume_mounts: Some(vec![VolumeMount {
                name: "kube-api-access-x1".into(),
                mount_path: SERVICE_ACCOUNT_PATH.into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let p = pod(container.clone(), vec![volume]);
        let mut refs = Refs::default();
        refs.config_maps.insert(
            "kube-root-ca.crt".into(),
            std::collections::BTreeMap::from([("ca.crt".to_string(), b"CA".to_vec())]),
        );
        let plan_with = |refs: &Refs| {
            let facts = PodFacts {
                pod: &p,
                pod_ip: "127.9.0.3".into(),
                host_ip: "127.0.0.1".into(),
                node_name: "n".into(),
                refs,
                api_server: Some("127.0.0.1:6443".into()),
                pvc_dir: None,
            };
            plan_container(&container, &facts, Path::new("/w"))
        };
        // No token yet: the volume cannot be set up (retried).
        assert!(
            matches!(plan_with(&refs), Err(PlanError::Mount(m)) if m.contains("kube-api-access-x1"))
        );
        refs.tokens
            .insert(Refs::token_key("kube-api-access-x1", 0), b"JWT".to_vec());
        let plan = plan_with(&refs).unwrap();
        let dir = PathBuf::from("/w/volumes/kube-api-access-x1");
        for (file, bytes) in [
            ("token", &b"JWT"[..]),
            ("ca.crt", b"CA"),
            ("namespace", b"ns"),
        ] {
            assert!(
                plan.files.contains(&(dir.join(file), bytes.to_vec())),
                "{file} in {:?}",
                plan.files
            );
        }
        assert!(
            plan.env
                .contains(&("KUBECONFIG".into(), "/w/main.kubeconfig".into()))
        );
    }
}
