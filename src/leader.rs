//! Leader election on a coordination.k8s.io Lease, with optimistic concurrency
//! (resourceVersion) so two replicas can never both believe they lead.
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub retry_period: Duration,
}

/// Outcome of one attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    Leading,
    Following { holder: String },
}

/// Whether a lease held by someone else may be taken over at `now`.
pub fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let holder_empty = spec.holder_identity.as_deref().unwrap_or("").is_empty();
    let Some(renew) = spec.renew_time.as_ref() else {
        return true;
    };
    let dur = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    holder_empty || renew.0 + SignedDuration::from_secs(dur) < now
}

pub async fn try_acquire_or_renew(api: &Api<Lease>, cfg: &LeaseConfig) -> kube::Result<Attempt> {
    let now = Timestamp::now();
    let dur_s = i32::try_from(cfg.lease_duration.as_secs()).unwrap_or(15);
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(cfg.identity.clone()),
                    lease_duration_seconds: Some(dur_s),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Following {
                    holder: "unknown".into(),
                }),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.clone().unwrap_or_default();
            let holder = spec.holder_identity.clone().unwrap_or_default();
            let mine = holder == cfg.identity;
            if !mine && !expired(&spec, now) {
                return Ok(Attempt::Following { holder });
            }
            let mut next = spec.clone();
            if !mine {
                next.holder_identity = Some(cfg.identity.clone());
                next.acquire_time = Some(MicroTime(now));
                next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            next.renew_time = Some(MicroTime(now));
            next.lease_duration_seconds = Some(dur_s);
            lease.spec = Some(next);
            // replace carries resourceVersion: a concurrent writer makes this a 409, not a split brain.
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Following { holder }),
                Err(e) => Err(e),
            }
        }
    }
}

/// Block until this process holds the lease.
pub async fn acquire(api: &Api<Lease>, cfg: &LeaseConfig) {
    let mut last_holder = String::new();
    loop {
        match try_acquire_or_renew(api, cfg).await {
            Ok(Attempt::Leading) => {
                tracing::info!(lease = %cfg.name, identity = %cfg.identity, "acquired leadership");
                return;
            }
            Ok(Attempt::Following { holder }) => {
                if holder != last_holder {
                    tracing::info!(lease = %cfg.name, %holder, "waiting for leadership");
                    last_holder = holder;
                }
            }
            Err(e) => tracing::warn!(lease = %cfg.name, error = %e, "lease acquire failed"),
        }
        tokio::time::sleep(cfg.retry_period).await;
    }
}

/// Renew until leadership is lost (returns) — the caller then stops reconciling.
pub async fn hold(api: &Api<Lease>, cfg: &LeaseConfig) {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(cfg.retry_period).await;
        match try_acquire_or_renew(api, cfg).await {
            Ok(Attempt::Leading) => last_ok = tokio::time::Instant::now(),
            Ok(Attempt::Following { holder }) => {
                tracing::warn!(lease = %cfg.name, %holder, "leadership lost");
                return;
            }
            Err(e) => {
                tracing::warn!(lease = %cfg.name, error = %e, "lease renew failed");
                // Give up before the lease can expire under us, so another replica never overlaps.
                if last_ok.elapsed() + cfg.retry_period >= cfg.lease_duration {
                    tracing::warn!(lease = %cfg.name, "could not renew within the lease duration; stepping down");
                    return;
                }
            }
        }
    }
}

/// Hand the lease back on a clean shutdown so a standby takes over at once
/// instead of waiting out the lease duration.
pub async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> kube::Result<()> {
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: i64, dur: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).expect("ts"))),
            lease_duration_seconds: Some(dur),
            ..Default::default()
        }
    }

    #[test]
    fn lease_expiry() {
        let now = Timestamp::from_second(1_000).expect("ts");
        assert!(!expired(&spec("a", 990, 15), now));
        assert!(expired(&spec("a", 980, 15), now));
        assert!(expired(&spec("", 999, 15), now));
        assert!(expired(&LeaseSpec::default(), now));
    }
}
