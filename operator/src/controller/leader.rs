//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas never both act on a sweep. The lease is
//! taken and renewed with optimistic concurrency (`replace` with the read `resourceVersion`): of two replicas
//! racing for it, exactly one write succeeds.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub name: String,
    pub identity: String,
    /// A lease not renewed for this long may be taken over.
    pub duration: Duration,
    /// How often the holder renews it (well below `duration`).
    pub renew_every: Duration,
    /// How often a standby replica tries to take it.
    pub retry_every: Duration,
}

pub struct LeaderElection {
    api: Api<Lease>,
    settings: LeaseSettings,
}

impl LeaderElection {
    pub fn new(api: Api<Lease>, settings: LeaseSettings) -> Self {
        LeaderElection { api, settings }
    }

    /// Returns once this replica holds the lease.
    pub async fn acquire(&self) {
        let mut announced = false;
        loop {
            match self.try_take().await {
                Ok(true) => return,
                Ok(false) if !announced => {
                    tracing::info!(
                        lease = %self.settings.name,
                        "another replica holds the lease; standing by"
                    );
                    announced = true;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(lease = %self.settings.name, "taking the lease: {e}"),
            }
            tokio::time::sleep(self.settings.retry_every).await;
        }
    }

    /// Renews the lease until it is lost; returns why. A holder that cannot renew for a whole lease duration
    /// must assume another replica has taken over.
    pub async fn hold(&self) -> String {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.settings.renew_every).await;
            match self.try_take().await {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => return "another replica holds the lease".into(),
                Err(e) if renewed.elapsed() >= self.settings.duration => {
                    return format!(
                        "the lease could not be renewed for a whole lease duration: {e}"
                    );
                }
                Err(e) => tracing::warn!(lease = %self.settings.name, "renewing the lease: {e}"),
            }
        }
    }

    /// Gives the lease up (when this replica still holds it), so a standby takes over at its next try instead of
    /// waiting the lease out: what client-go's `ReleaseOnCancel` does. Called on a clean shutdown.
    pub async fn release(&self) -> kube::Result<bool> {
        let s = &self.settings;
        let Some(lease) = self.api.get_opt(&s.name).await? else {
            return Ok(false);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(s.identity.as_str()) {
            return Ok(false);
        }
        let released = Lease {
            metadata: lease.metadata.clone(),
            spec: Some(LeaseSpec {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                renew_time: Some(MicroTime(Timestamp::now())),
                ..spec
            }),
        };
        conflict_is_false(
            self.api
                .replace(&s.name, &PostParams::default(), &released)
                .await,
        )
    }

    /// Takes or renews the lease when it is free, expired or already ours. `Ok(false)`: someone else holds it
    /// (or won a race for it).
    async fn try_take(&self) -> kube::Result<bool> {
        let s = &self.settings;
        let now = Timestamp::now();
        let secs = s.duration.as_secs().max(1) as i32;
        let Some(lease) = self.api.get_opt(&s.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(s.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(s.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return conflict_is_false(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(s.identity.as_str());
        let held_for =
            SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(secs)));
        let expired = spec
            .renew_time
            .as_ref()
            .is_none_or(|t| t.0.checked_add(held_for).is_ok_and(|end| end < now));
        let free = spec.holder_identity.as_deref().unwrap_or("").is_empty();
        if !(ours || free || expired) {
            return Ok(false);
        }
        let taken = Lease {
            metadata: lease.metadata.clone(),
            spec: Some(LeaseSpec {
                holder_identity: Some(s.identity.clone()),
                lease_duration_seconds: Some(secs),
                acquire_time: if ours {
                    spec.acquire_time.clone()
                } else {
                    Some(MicroTime(now))
                },
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(
                    spec.lease_transitions.unwrap_or(0) + if ours { 0 } else { 1 },
                ),
                ..spec
            }),
        };
        if !ours {
            tracing::info!(lease = %s.name, previous = ?spec_holder(&lease), "taking the lease");
        }
        conflict_is_false(
            self.api
                .replace(&s.name, &PostParams::default(), &taken)
                .await,
        )
    }
}

fn spec_holder(lease: &Lease) -> Option<String> {
    lease.spec.as_ref()?.holder_identity.clone()
}

fn conflict_is_false(result: kube::Result<Lease>) -> kube::Result<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
