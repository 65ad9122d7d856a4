//! Container environment as the kubelet builds it: `$(VAR)` expansion and the downward API.
//!
//! Pure functions only, so the subtle kubelet semantics (escaping, ordering, unknown references) are unit tested
//! without a cluster.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod};

/// Expands `$(NAME)` references the way the kubelet does (a port of
/// `third_party/forked/golang/expansion.Expand`): `$$` is an escaped `$`, references to unknown variables and
/// unterminated `$(` are kept verbatim, and a `$` before anything else is kept as-is.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    // Work on bytes like Go does; every byte is either copied or replaced by a whole (valid UTF-8) value, and
    // variable names end at an ASCII `)`, so the result is valid UTF-8.
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.extend_from_slice(&bytes[checkpoint..cursor]);
            let rest = &bytes[cursor + 1..];
            let advance = match rest[0] {
                b'$' => {
                    out.push(b'$');
                    1
                }
                b'(' => match rest.iter().position(|&b| b == b')') {
                    Some(close) => {
                        // The slice lies between two ASCII bytes, so it is valid UTF-8.
                        let name = std::str::from_utf8(&rest[1..close]).unwrap_or_default();
                        match lookup(name) {
                            Some(value) => out.extend_from_slice(value.as_bytes()),
                            None => out.extend_from_slice(&bytes[cursor..cursor + close + 2]),
                        }
                        close + 1
                    }
                    None => {
                        out.extend_from_slice(b"$(");
                        1
                    }
                },
                other => {
                    out.push(b'$');
                    out.push(other);
                    1
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.extend_from_slice(&bytes[checkpoint.min(bytes.len())..]);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// What the downward API can resolve for a pod on this node.
#[derive(Debug, Clone)]
pub struct PodFacts<'a> {
    pub pod: &'a Pod,
    pub pod_ip: String,
    pub host_ip: String,
    pub node_name: String,
    /// ConfigMaps and Secrets the pod references, fetched beforehand (absent: not found).
    pub refs: &'a Refs,
    /// `host:port` at which pods reach the apiserver (what the apiserver advertises in `/api`'s
    /// `serverAddressByClientCIDRs`), for `KUBERNETES_SERVICE_*` and service-account kubeconfigs; `None`: unknown.
    pub api_server: Option<String>,
    /// Where persistentVolumeClaim volumes live ([`super::node::NodeConfig::pvc_dir`]).
    pub pvc_dir: Option<&'a std::path::Path>,
}

/// Contents of the ConfigMaps and Secrets a pod references: name → key → bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refs {
    pub config_maps: HashMap<String, BTreeMap<String, Vec<u8>>>,
    pub secrets: HashMap<String, BTreeMap<String, Vec<u8>>>,
    /// Service-account tokens of projected volumes (TokenRequest), by [`Refs::token_key`].
    pub tokens: HashMap<String, Vec<u8>>,
}

impl Refs {
    /// Names of the ConfigMaps and Secrets a pod refers to from env, envFrom and volumes.
    pub fn referenced(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut cms = BTreeSet::new();
        let mut secrets = BTreeSet::new();
        let Some(spec) = &pod.spec else {
            return (cms, secrets);
        };
        let containers = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers);
        for c in containers {
            for from in c.env_from.iter().flatten() {
                cms.extend(from.config_map_ref.as_ref().map(|r| r.name.clone()));
                secrets.extend(from.secret_ref.as_ref().map(|r| r.name.clone()));
            }
            for var in c.env.iter().flatten() {
                let Some(from) = &var.value_from else {
                    continue;
                };
                cms.extend(from.config_map_key_ref.as_ref().map(|r| r.name.clone()));
                secrets.extend(from.secret_key_ref.as_ref().map(|r| r.name.clone()));
            }
        }
        for v in spec.volumes.iter().flatten() {
            cms.extend(v.config_map.as_ref().map(|c| c.name.clone()));
            secrets.extend(v.secret.as_ref().and_then(|s| s.secret_name.clone()));
            for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
                cms.extend(source.config_map.as_ref().map(|c| c.name.clone()));
                secrets.extend(source.secret.as_ref().map(|s| s.name.clone()));
            }
        }
        (cms, secrets)
    }

    /// Key of the token for source `index` of projected volume `volume`.
    pub fn token_key(volume: &str, index: usize) -> String {
        format!("{volume}#{index}")
    }

    fn key(
        &self,
        secret: bool,
        namespace: &str,
        name: &str,
        key: &str,
        optional: Option<bool>,
    ) -> Result<Option<String>> {
        let objects = if secret {
            &self.secrets
        } else {
            &self.config_maps
        };
        match objects.get(name).map(|data| data.get(key)) {
            Some(Some(bytes)) => Ok(Some(String::from_utf8_lossy(bytes).into_owned())),
            // Optional references to a missing object or key leave the variable unset, like the kubelet.
            _ if optional == Some(true) => Ok(None),
            None => Err(MissingRef::object(secret, name).into()),
            Some(None) => {
                let kind = if secret { "Secret" } else { "ConfigMap" };
                Err(MissingRef(format!(
                    "couldn't find key {key} in {kind} {namespace}/{name}"
                ))
                .into())
            }
        }
    }
}

/// A ConfigMap/Secret (or one of its keys) a container's environment needs does not exist. The message is the
/// kubelet's (`secret "x" not found`, `couldn't find key k in Secret ns/x`), reported as
/// `CreateContainerConfigError` and retried until the object appears.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MissingRef(pub String);

impl MissingRef {
    /// The kubelet's watch-based managers report a missing object with the singular resource name.
    pub fn object(secret: bool, name: &str) -> Self {
        let kind = if secret { "secret" } else { "configmap" };
        MissingRef(format!("{kind} \"{name}\" not found"))
    }
}

/// Resolves a `fieldRef` the way the kubelet does for the paths SeedSweep's pods use.
pub fn resolve_field_ref(sel: &ObjectFieldSelector, facts: &PodFacts<'_>) -> Result<String> {
    let meta = &facts.pod.metadata;
    let path = sel.field_path.as_str();
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => facts.node_name.clone(),
        "spec.serviceAccountName" => facts
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        _ => {
            if let Some(key) = map_key(path, "metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|m| m.get(&key).cloned())
                    .unwrap_or_default()
            } else if let Some(key) = map_key(path, "metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|m| m.get(&key).cloned())
                    .unwrap_or_default()
            } else {
                bail!("unsupported downward API fieldPath {path:?}");
            }
        }
    };
    Ok(value)
}

/// Parses `prefix['key']` (the only subscript syntax the API server accepts for fieldRef).
fn map_key(path: &str, prefix: &str) -> Option<String> {
    let rest = path.strip_prefix(prefix)?;
    let inner = rest.strip_prefix("['")?.strip_suffix("']")?;
    Some(inner.to_string())
}

/// Builds a container's environment in declaration order. Each value may reference only variables declared
/// before it (kubelet semantics); the result keeps the order so later lookups see the final values.
///
/// `rewrite` maps in-container paths in literal values to local ones (see `plan`).
pub fn container_env(
    container: &Container,
    facts: &PodFacts<'_>,
    rewrite: impl Fn(&str) -> String,
) -> Result<Vec<(String, String)>> {
    container_env_over(Vec::new(), container, facts, rewrite)
}

/// [`container_env`] over `base`, variables the kubelet provides before the container's own (the
/// `KUBERNETES_SERVICE_*` service variables): the container's `envFrom`/`env` override them and may reference them.
pub fn container_env_over(
    base: Vec<(String, String)>,
    container: &Container,
    facts: &PodFacts<'_>,
    rewrite: impl Fn(&str) -> String,
) -> Result<Vec<(String, String)>> {
    let namespace = facts.pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut index: HashMap<String, usize> = base
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.clone(), i))
        .collect();
    let mut env: Vec<(String, String)> = base;
    let mut set = |env: &mut Vec<(String, String)>, name: &str, value: String| match index.get(name)
    {
        Some(&i) => env[i].1 = value,
        None => {
            index.insert(name.to_string(), env.len());
            env.push((name.to_string(), value));
        }
    };
    // envFrom first, then env (which wins), as the kubelet does.
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let (secret, name, optional) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(c), _) => (false, &c.name, c.optional),
            (None, Some(s)) => (true, &s.name, s.optional),
            (None, None) => continue,
        };
        let objects = if secret {
            &facts.refs.secrets
        } else {
            &facts.refs.config_maps
        };
        match objects.get(name) {
            Some(data) => {
                for (k, v) in data {
                    set(
                        &mut env,
                        &format!("{prefix}{k}"),
                        String::from_utf8_lossy(v).into_owned(),
                    );
                }
            }
            None if optional == Some(true) => {}
            None => return Err(MissingRef::object(secret, name).into()),
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => {
                let resolved = if let Some(field) = &from.field_ref {
                    Some(resolve_field_ref(field, facts))
                } else if let Some(r) = &from.config_map_key_ref {
                    facts
                        .refs
                        .key(false, namespace, &r.name, &r.key, r.optional)
                        .transpose()
                } else if let Some(r) = &from.secret_key_ref {
                    facts
                        .refs
                        .key(true, namespace, &r.name, &r.key, r.optional)
                        .transpose()
                } else {
                    bail!(
                        "container {:?}: env {} uses resourceFieldRef, which the node simulator does not support",
                        container.name,
                        var.name
                    );
                };
                match resolved {
                    Some(v) => v.with_context(|| {
                        format!("container {:?}: env {}", container.name, var.name)
                    })?,
                    None => continue,
                }
            }
            (Some(value), None) => {
                let lookup =
                    |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
                rewrite(&expand(value, lookup))
            }
            (None, None) => String::new(),
        };
        set(&mut env, &var.name, value);
    }
    Ok(env)
}
/// Expands `command` and `args` against the container's full environment, as the kubelet does.
pub fn expand_all(items: &[String], env: &[(String, String)]) -> Vec<String> {
    let map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    items
        .iter()
        .map(|s| expand(s, |name| map.get(name).map(|v| v.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, PodSpec};
    use kube::api::ObjectMeta;
    use std::collections::BTreeMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn expands_like_the_kubelet() {
        let v = vars(&[("VAR_A", "A"), ("VAR_B", "B"), ("EMPTY", "")]);
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_A)___", "___A___"),
            ("$(VAR_A)$(VAR_B)", "AB"),
            ("$(VAR_A)-$(EMPTY)-", "A--"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("a $(UNKNOWN) $(VAR_B)", "a $(UNKNOWN) B"),
            ("$(VAR_A", "$(VAR_A"),
            ("$()", "$()"),
            ("$VAR_A", "$VAR_A"),
            ("${VAR_A}", "${VAR_A}"),
            ("trailing $", "trailing $"),
            ("$", "$"),
            ("$$", "$"),
            ("ünï$(VAR_A)cödé $é", "ünïAcödé $é"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &v), want, "input {input:?}");
        }
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("trial-1".into()),
                namespace: Some("ns1".into()),
                uid: Some("u-1".into()),
                labels: Some(BTreeMap::from([(
                    "seedsweep.dev/seed".to_string(),
                    "42".to_string(),
                )])),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            ..Default::default()
        }
    }

    fn field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn literal(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    #[test]
    fn builds_env_in_order_with_downward_api() {
        let pod = pod();
        let facts = PodFacts {
            pod: &pod,
            pod_ip: "127.3.0.7".into(),
            host_ip: "127.0.0.1".into(),
            node_name: "n1".into(),
            refs: &Refs::default(),
            api_server: None,
            pvc_dir: None,
        };
        let container = Container {
            name: "trainer".into(),
            env: Some(vec![
                literal("URL", "http://$(POD_IP):8080"), // POD_IP is declared later: stays a reference
                field("POD_IP", "status.podIP"),
                field("NAME", "metadata.name"),
                field("NS", "metadata.namespace"),
                field("NODE", "spec.nodeName"),
                field("SEED", "metadata.labels['seedsweep.dev/seed']"),
                field("MISSING", "metadata.labels['nope']"),
                literal("ADDR", "$(POD_IP):$(PORT)"),
                literal("OUT", "/data/out"),
            ]),
            ..Default::default()
        };
        let env =
            container_env(&container, &facts, |s| s.replace("/data", "/tmp/pod/data")).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("URL"), Some("http://$(POD_IP):8080"));
        assert_eq!(get("POD_IP"), Some("127.3.0.7"));
        assert_eq!(get("NAME"), Some("trial-1"));
        assert_eq!(get("NS"), Some("ns1"));
        assert_eq!(get("NODE"), Some("n1"));
        assert_eq!(get("SEED"), Some("42"));
        assert_eq!(get("MISSING"), Some(""));
        assert_eq!(get("ADDR"), Some("127.3.0.7:$(PORT)"));
        assert_eq!(get("OUT"), Some("/tmp/pod/data/out"));

        let args = expand_all(&["--addr=$(ADDR)".into(), "$(NAME)-$$(NAME)".into()], &env);
        assert_eq!(
            args,
            vec![
                "--addr=127.3.0.7:$(PORT)".to_string(),
                "trial-1-$(NAME)".to_string()
            ]
        );
    }

    #[test]
    fn rejects_unsupported_sources() {
        let pod = pod();
        let facts = PodFacts {
            pod: &pod,
            pod_ip: "127.3.0.7".into(),
            host_ip: "127.0.0.1".into(),
            node_name: "n1".into(),
            refs: &Refs::default(),
            api_server: None,
            pvc_dir: None,
        };
        let bad_path = Container {
            name: "c".into(),
            env: Some(vec![field("X", "spec.hostname")]),
            ..Default::default()
        };
        let err = container_env(&bad_path, &facts, |s| s.to_string()).unwrap_err();
        assert!(format!("{err:#}").contains("spec.hostname"), "{err:#}");

        let secret = Container {
            name: "c".into(),
            env: Some(vec![EnvVar {
                name: "TOKEN".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(Default::default()),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert!(container_env(&secret, &facts, |s| s.to_string()).is_err());
    }

    #[test]
    fn resolves_config_map_and_secret_references() {
        let pod = pod();
        let mut refs = Refs::default();
        refs.config_maps.insert(
            "cfg".into(),
            BTreeMap::from([
                ("lr".to_string(), b"2e-5".to_vec()),
                ("task".to_string(), b"rte".to_vec()),
            ]),
        );
        refs.secrets.insert(
            "tok".into(),
            BTreeMap::from([("token".to_string(), b"s3cret".to_vec())]),
        );
        let facts = PodFacts {
            pod: &pod,
            pod_ip: "127.3.0.7".into(),
            host_ip: "127.0.0.1".into(),
            node_name: "n1".into(),
            refs: &refs,
            api_server: None,
            pvc_dir: None,
        };
        let key_ref =
            |name: &str, cm: &str, key: &str, optional: Option<bool>, secret: bool| EnvVar {
                name: name.into(),
                value_from: Some(if secret {
                    EnvVarSource {
                        secret_key_ref: Some(k8s_openapi::api::core::v1::SecretKeySelector {
                            name: cm.into(),
                            key: key.into(),
                            optional,
                        }),
                        ..Default::default()
                    }
                } else {
                    EnvVarSource {
                        config_map_key_ref: Some(
                            k8s_openapi::api::core::v1::ConfigMapKeySelector {
                                name: cm.into(),
                                key: key.into(),
                                optional,
                            },
                        ),
                        ..Default::default()
                    }
                }),
                ..Default::default()
            };
        let container = Container {
            name: "c".into(),
            env_from: Some(vec![k8s_openapi::api::core::v1::EnvFromSource {
                prefix: Some("CFG_".into()),
                config_map_ref: Some(k8s_openapi::api::core::v1::ConfigMapEnvSource {
                    name: "cfg".into(),
                    optional: None,
                }),
                ..Default::default()
            }]),
            env: Some(vec![
                key_ref("LR", "cfg", "lr", None, false),
                key_ref("TOKEN", "tok", "token", None, true),
                key_ref("GONE", "nope", "x", Some(true), false),
                literal("CFG_task", "override-$(CFG_lr)"),
            ]),
            ..Default::default()
        };
        let env = container_env(&container, &facts, |s| s.to_string()).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CFG_lr"), Some("2e-5"));
        assert_eq!(
            get("CFG_task"),
            Some("override-2e-5"),
            "env overrides envFrom"
        );
        assert_eq!(get("LR"), Some("2e-5"));
        assert_eq!(get("TOKEN"), Some("s3cret"));
        assert_eq!(
            get("GONE"),
            None,
            "optional missing reference leaves the variable unset"
        );

        let missing_key = Container {
            name: "c".into(),
            env: Some(vec![key_ref("X", "cfg", "nokey", None, false)]),
            ..Default::default()
        };
        let err = container_env(&missing_key, &facts, |s| s.to_string()).unwrap_err();
        assert_eq!(
            err.downcast_ref::<MissingRef>().map(|m| m.0.as_str()),
            Some("couldn't find key nokey in ConfigMap ns1/cfg")
        );
        let missing_secret = Container {
            name: "c".into(),
            env: Some(vec![key_ref("X", "gone", "k", None, true)]),
            ..Default::default()
        };
        let err = container_env(&missing_secret, &facts, |s| s.to_string()).unwrap_err();
        assert_eq!(
            err.downcast_ref::<MissingRef>().map(|m| m.0.as_str()),
            Some("secret \"gone\" not found")
        );
        let missing_env_from = Container {
            name: "c".into(),
            env_from: Some(vec![k8s_openapi::api::core::v1::EnvFromSource {
                config_map_ref: Some(k8s_openapi::api::core::v1::ConfigMapEnvSource {
                    name: "absent".into(),
                    optional: None,
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let err = container_env(&missing_env_from, &facts, |s| s.to_string()).unwrap_err();
        assert_eq!(
            err.downcast_ref::<MissingRef>().map(|m| m.0.as_str()),
            Some("configmap \"absent\" not found")
        );
        let (cms, secrets) = Refs::referenced(&Pod {
            spec: Some(PodSpec {
                containers: vec![container],
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(cms.into_iter().collect::<Vec<_>>(), vec!["cfg", "nope"]);
        assert_eq!(secrets.into_iter().collect::<Vec<_>>(), vec!["tok"]);
    }
}
