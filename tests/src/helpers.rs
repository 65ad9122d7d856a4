//! Helpers for end-to-end tests: namespaces, waiting for conditions, CRDs, and failure diagnostics.

use std::fmt::Debug;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams, PropagationPolicy};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

const POLL: Duration = Duration::from_millis(100);

/// Creates a namespace named `<prefix>-<random>` and waits until pods can be created in it
/// ([`wait_for_default_service_account`]).
pub async fn create_namespace(client: &Client, prefix: &str) -> Result<String> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            generate_name: Some(format!("{prefix}-")),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .context("creating namespace")?;
    let name = created
        .metadata
        .name
        .context("created namespace has no name")?;
    wait_for_default_service_account(client, &name).await?;
    Ok(name)
}

/// Waits until pods can be created in namespace `ns`: the ServiceAccount admission plugin refuses them until the
/// service-account controller has made its `default` ServiceAccount (and, before Kubernetes 1.24, its token secret).
/// True of the `default` namespace too, just after a control plane starts.
pub async fn wait_for_default_service_account(client: &Client, ns: &str) -> Result<()> {
    let needs_token = match client.apiserver_version().await {
        Ok(info) => info
            .minor
            .trim_end_matches('+')
            .parse::<u32>()
            .is_ok_and(|m| m < 24),
        Err(_) => false,
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    wait_for(
        &accounts,
        "default",
        Duration::from_secs(30),
        "default service account",
        |sa| {
            sa.is_some_and(|sa| !needs_token || sa.secrets.as_ref().is_some_and(|s| !s.is_empty()))
        },
    )
    .await?;
    Ok(())
}

/// Deletes a namespace (foreground: its pods go through graceful deletion) without waiting.
pub async fn delete_namespace(client: &Client, name: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.delete(name, &DeleteParams::foreground()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("deleting namespace {name}")),
    }
}

/// Polls `name` until `cond` holds for it (`None`: the object does not exist) and returns the last object seen.
/// On timeout the error names `what` and shows the last state seen, which is usually the explanation.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    what: &str,
    cond: impl Fn(Option<&K>) -> bool,
) -> Result<Option<K>>
where
    K: Resource + Clone + DeserializeOwned + Debug + serde::Serialize,
{
    let deadline = Instant::now() + timeout;
    loop {
        match api.get_opt(name).await {
            Ok(obj) => {
                if cond(obj.as_ref()) {
                    return Ok(obj);
                }
                if Instant::now() >= deadline {
                    let shown = match &obj {
                        Some(o) => {
                            serde_json::to_string_pretty(o).unwrap_or_else(|_| format!("{o:?}"))
                        }
                        None => "<not found>".into(),
                    };
                    bail!(
                        "timed out after {timeout:?} waiting for {what} ({name}); last state:\n{shown}"
                    );
                }
            }
            Err(e) => {
                if Instant::now() >= deadline {
                    return Err(e).with_context(|| {
                        format!("timed out after {timeout:?} waiting for {what} ({name})")
                    });
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the object is gone.
pub async fn wait_for_deletion<K>(api: &Api<K>, name: &str, timeout: Duration) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug + serde::Serialize,
{
    wait_for(api, name, timeout, "deletion", |o| o.is_none())
        .await
        .map(|_| ())
}

/// Waits until the pod's phase is one of `phases` and returns it.
pub async fn wait_for_pod_phase(
    api: &Api<Pod>,
    name: &str,
    phases: &[&str],
    timeout: Duration,
) -> Result<Pod> {
    let what = format!("pod phase in {phases:?}");
    let pod = wait_for(api, name, timeout, &what, |p| {
        p.and_then(|p| p.status.as_ref()?.phase.as_deref())
            .is_some_and(|ph| phases.contains(&ph))
    })
    .await?;
    pod.context("pod vanished")
}

/// Creates or replaces every CustomResourceDefinition in a (multi-document) YAML file and waits until each is
/// Established. Create/replace rather than server-side apply: older API servers reject unknown schema fields
/// (e.g. `x-kubernetes-validations` on 1.20) under apply, while create/replace drops them.
pub async fn apply_crd_yaml(client: &Client, path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut names = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let value = <serde_yaml::Value as serde::Deserialize>::deserialize(doc)
            .with_context(|| format!("{}: document {i}", path.display()))?;
        if value.is_null() {
            continue;
        }
        let crd: CustomResourceDefinition = serde_yaml::from_value(value)
            .with_context(|| format!("{}: document {i} is not a CRD", path.display()))?;
        names.push(apply_crd(client, &crd).await?);
    }
    if names.is_empty() {
        bail!("{} contains no CustomResourceDefinition", path.display());
    }
    Ok(names)
}

/// Creates or replaces one CRD (e.g. from `MyResource::crd()`) and waits until it is Established.
pub async fn apply_crd(client: &Client, crd: &CustomResourceDefinition) -> Result<String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd
        .metadata
        .name
        .clone()
        .context("CRD has no metadata.name")?;
    match api
        .get_opt(&name)
        .await
        .with_context(|| format!("reading CRD {name}"))?
    {
        None => {
            api.create(&PostParams::default(), crd)
                .await
                .with_context(|| format!("creating CRD {name}"))?;
        }
        Some(existing) => {
            let mut crd = crd.clone();
            crd.metadata.resource_version = existing.metadata.resource_version;
            api.replace(&name, &PostParams::default(), &crd)
                .await
                .with_context(|| format!("replacing CRD {name}"))?;
        }
    }
    wait_for(
        &api,
        &name,
        Duration::from_secs(30),
        "CRD Established",
        |c| {
            c.and_then(|c| c.status.as_ref()?.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        },
    )
    .await?;
    Ok(name)
}

/// Deletes with `propagationPolicy: Background`, as `kubectl delete` does for Jobs.
pub fn background() -> DeleteParams {
    DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    }
}

/// Human-readable pods and events of a namespace, for failure output. Never fails: errors become text.
pub async fn dump_namespace(client: &Client, namespace: &str) -> String {
    let mut out = format!("=== namespace {namespace}\n");
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match pods.list(&ListParams::default()).await {
        Ok(list) => {
            for p in list.items {
                let name = p.metadata.name.clone().unwrap_or_default();
                let node = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_else(|| "<unbound>".into());
                let status = p.status.clone().unwrap_or_default();
                let _ = writeln!(
                    out,
                    "pod {name} node={node} phase={} ip={} deleting={}",
                    status.phase.as_deref().unwrap_or("?"),
                    status.pod_ip.as_deref().unwrap_or("-"),
                    p.metadata.deletion_timestamp.is_some()
                );
                for c in status.conditions.iter().flatten() {
                    let _ = writeln!(
                        out,
                        "  condition {}={} {} {}",
                        c.type_,
                        c.status,
                        c.reason.as_deref().unwrap_or(""),
                        c.message.as_deref().unwrap_or("")
                    );
                }
                for cs in status.container_statuses.iter().flatten() {
                    let _ = writeln!(
                        out,
                        "  container {} restarts={} state={}",
                        cs.name,
                        cs.restart_count,
                        state_text(cs)
                    );
                }
            }
        }
        Err(e) => {
            let _ = writeln!(out, "listing pods failed: {e}");
        }
    }
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    match events.list(&ListParams::default()).await {
        Ok(list) => {
            let mut items = list.items;
            items.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
            for e in items {
                let _ = writeln!(
                    out,
                    "event {} {}/{}: {} {}",
                    e.type_.as_deref().unwrap_or(""),
                    e.involved_object.kind.as_deref().unwrap_or(""),
                    e.involved_object.name.as_deref().unwrap_or(""),
                    e.reason.as_deref().unwrap_or(""),
                    e.message.as_deref().unwrap_or("")
                );
            }
        }
        Err(e) => {
            let _ = writeln!(out, "listing events failed: {e}");
        }
    }
    out
}

fn state_text(cs: &k8s_openapi::api::core::v1::ContainerStatus) -> String {
    let Some(state) = &cs.state else {
        return "?".into();
    };
    if let Some(w) = &state.waiting {
        return format!(
            "waiting({} {})",
            w.reason.as_deref().unwrap_or(""),
            w.message.as_deref().unwrap_or("")
        );
    }
    if state.running.is_some() {
        return "running".into();
    }
    if let Some(t) = &state.terminated {
        return format!(
            "terminated(exit={} reason={} message={:?})",
            t.exit_code,
            t.reason.as_deref().unwrap_or(""),
            t.message.as_deref().unwrap_or("")
        );
    }
    "?".into()
}

/// Pod names in `namespace` matching a label selector.
pub async fn pod_names(client: &Client, namespace: &str, selector: &str) -> Result<Vec<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .context("listing pods")?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect())
}
