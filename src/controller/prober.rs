//! TCP probes of databases outside the cluster (`database.probe`), run apart from
//! the reconcile: a reconcile only reads the last verdict, and a changed verdict
//! wakes the McpServers that use that address. One probe per address however many
//! McpServers share it, a bounded number at once, on a jittered period.
use crate::api::McpServer;
use crate::remediation::DependencyObs;
use futures::StreamExt;
use kube::runtime::reflector::{ObjectRef, Store};
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often each address is probed.
pub const PERIOD: Duration = Duration::from_secs(5);
/// Probes in flight at once, across all addresses.
const CONCURRENCY: usize = 16;

/// `host:port` and the connect timeout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub addr: String,
    pub timeout_ms: u64,
}

/// The last verdict per address.
#[derive(Clone, Default)]
pub struct Verdicts(Arc<Mutex<HashMap<Target, bool>>>);

impl Verdicts {
    /// None until the address was probed once.
    pub fn get(&self, t: &Target) -> Option<bool> {
        self.0.lock().ok().and_then(|m| m.get(t).copied())
    }

    /// Record a verdict; true when it changed (or is the first).
    pub fn set(&self, t: &Target, up: bool) -> bool {
        match self.0.lock() {
            Ok(mut m) => m.insert(t.clone(), up) != Some(up),
            Err(_) => false,
        }
    }

    fn retain(&self, keep: &HashSet<Target>) {
        if let Ok(mut m) = self.0.lock() {
            m.retain(|t, _| keep.contains(t));
        }
    }
}

pub fn target(mcp: &McpServer) -> Option<Target> {
    let p = mcp.spec.database.as_ref()?.probe.as_ref()?;
    Some(Target {
        addr: format!("{}:{}", p.host, p.port),
        timeout_ms: u64::try_from(p.timeout_ms).unwrap_or(500),
    })
}

/// Pure: the dependency as the last verdict says.
pub fn observe(t: &Target, verdict: Option<bool>) -> DependencyObs {
    match verdict {
        Some(true) => DependencyObs::up_because(
            "ProbeSucceeded",
            format!("TCP connect to {} succeeded", t.addr),
        ),
        Some(false) => DependencyObs::down(format!(
            "TCP connect to {} failed within {}ms",
            t.addr, t.timeout_ms
        ))
        .because("ProbeFailed"),
        None => DependencyObs {
            state: crate::remediation::DependencyState::Unknown,
            since: None,
            message: Some(format!("TCP probe of {} has not run yet", t.addr)),
            reason: Some("ProbePending".into()),
        },
    }
}

async fn probe(t: &Target) -> bool {
    let timeout = Duration::from_millis(t.timeout_ms);
    matches!(
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&t.addr)).await,
        Ok(Ok(_))
    )
}

/// Probe every address the McpServers in `store` name, for ever; send the
/// McpServers of an address whose verdict changed.
pub async fn run(
    store: Store<McpServer>,
    verdicts: Verdicts,
    wake: mpsc::Sender<ObjectRef<McpServer>>,
) {
    loop {
        let servers = store.state();
        let mut users: HashMap<Target, Vec<ObjectRef<McpServer>>> = HashMap::new();
        for m in &servers {
            if let Some(t) = target(m) {
                users
                    .entry(t)
                    .or_default()
                    .push(ObjectRef::from_obj(m.as_ref()));
            }
        }
        verdicts.retain(&users.keys().cloned().collect());
        let changed: Vec<Target> = futures::stream::iter(users.keys().cloned())
            .map(|t| async move {
                let up = probe(&t).await;
                (t, up)
            })
            .buffer_unordered(CONCURRENCY)
            .filter_map(|(t, up)| {
                let v = verdicts.clone();
                async move { v.set(&t, up).then_some(t) }
            })
            .collect()
            .await;
        for t in changed {
            for r in users.get(&t).into_iter().flatten() {
                if wake.send(r.clone()).await.is_err() {
                    return;
                }
            }
        }
        // Jitter, so many operators (or restarts) do not probe in lockstep.
        let jitter = rand::rng().random_range(0.8..1.2);
        tokio::time::sleep(PERIOD.mul_f64(jitter)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_report_changes_only() {
        let v = Verdicts::default();
        let t = Target {
            addr: "db.example:5432".into(),
            timeout_ms: 500,
        };
        assert_eq!(v.get(&t), None);
        assert!(v.set(&t, true), "first verdict");
        assert!(!v.set(&t, true), "same verdict");
        assert!(v.set(&t, false), "changed");
        assert_eq!(
            observe(&t, v.get(&t)).reason.as_deref(),
            Some("ProbeFailed")
        );
        assert_eq!(
            observe(&t, None).state,
            crate::remediation::DependencyState::Unknown
        );
    }

    #[tokio::test]
    async fn probes_a_real_listener() {
        let Ok(l) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            return;
        };
        let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let t = Target {
            addr,
            timeout_ms: 500,
        };
        assert!(probe(&t).await);
        drop(l);
        assert!(!probe(&t).await);
    }
}
