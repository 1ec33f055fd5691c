//! API requests made by one user, counted from the API server's audit log
//! (one event per request: the policy keeps only the RequestReceived stage).
use anyhow::{Context as _, Result};
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

#[derive(Deserialize)]
struct Event {
    verb: String,
    user: User,
    #[serde(rename = "requestReceivedTimestamp")]
    received: Timestamp,
    #[serde(rename = "objectRef", default)]
    object: Option<ObjectRef>,
}

#[derive(Deserialize)]
struct User {
    username: String,
}

#[derive(Deserialize)]
struct ObjectRef {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: Option<String>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Counts {
    pub reads: u64,
    /// Writes other than renewing a leader-election Lease.
    pub writes: u64,
    /// Lease writes: leader election's heartbeat (every retry period while
    /// leading), counted apart so `writes` shows what the work costs.
    pub lease_writes: u64,
    /// "verb resource[/subresource]" -> count, for the writes (what a quiet
    /// operator should not be doing).
    pub writes_by_kind: BTreeMap<String, u64>,
}

pub fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

/// Requests by `user` received in [from, to).
pub fn count(log: &Path, user: &str, from: Timestamp, to: Timestamp) -> Result<Counts> {
    let f = std::fs::File::open(log).with_context(|| format!("open {}", log.display()))?;
    let mut c = Counts::default();
    for line in std::io::BufReader::new(f).lines() {
        let line = line?;
        // Cheap filter before parsing: most lines are another user's.
        if !line.contains(user) {
            continue;
        }
        let Ok(e) = serde_json::from_str::<Event>(&line) else {
            continue;
        };
        if e.user.username != user || e.received < from || e.received >= to {
            continue;
        }
        if is_write(&e.verb) && e.object.as_ref().is_some_and(|o| o.resource == "leases") {
            c.lease_writes += 1;
        } else if is_write(&e.verb) {
            c.writes += 1;
            let what = e
                .object
                .map(|o| match o.subresource {
                    Some(s) => format!("{}/{}", o.resource, s),
                    None => o.resource,
                })
                .unwrap_or_default();
            *c.writes_by_kind
                .entry(format!("{} {}", e.verb, what))
                .or_default() += 1;
        } else {
            c.reads += 1;
        }
    }
    Ok(c)
}
