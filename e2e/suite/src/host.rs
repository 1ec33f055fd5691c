//! The local cluster as its host sees it: the API server's audit log, a pod's
//! processes, the control-plane daemons. Only the HA scenarios use these, and
//! only on the local cluster (`E2E_CLUSTER_DIR`, exported by run-suite.sh).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::cluster::{log, repo_root};

/// The local cluster's directory (logs/audit.log, run/*.pid), or why not.
pub fn cluster_dir() -> Result<PathBuf> {
    let dir = std::env::var_os("E2E_CLUSTER_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| {
            anyhow!("needs the local cluster (E2E_CLUSTER_DIR unset: not run by run-suite.sh on the local cluster)")
        })?;
    if !dir.join("logs/audit.log").is_file() {
        bail!(
            "{} has no logs/audit.log: the API server runs without the audit policy (restart it: e2e/cluster/local/daemon.sh stop kube-apiserver && e2e/cluster/local/daemon.sh start)",
            dir.display()
        );
    }
    Ok(dir)
}

/// One write the API server audited.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AuditWrite {
    pub t_ms: u64,
    pub verb: String,
    /// The replica, from the user agent's `(pod=NAME)`.
    pub pod: Option<String>,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub code: u16,
}

impl AuditWrite {
    pub fn of(v: &Value) -> Option<Self> {
        let s = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        if s("/stage") != "ResponseComplete" {
            return None;
        }
        let received: Timestamp = s("/requestReceivedTimestamp").parse().ok()?;
        Some(Self {
            t_ms: u64::try_from(received.as_millisecond()).ok()?,
            verb: s("/verb"),
            pod: pod_of_agent(&s("/userAgent")).map(str::to_string),
            resource: s("/objectRef/resource"),
            subresource: s("/objectRef/subresource"),
            namespace: s("/objectRef/namespace"),
            name: s("/objectRef/name"),
            code: v
                .pointer("/responseStatus/code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(0),
        })
    }
}

/// `mcp-operator/0.1.0 (pod=NAME)` -> NAME.
pub fn pod_of_agent(ua: &str) -> Option<&str> {
    let rest = &ua[ua.find("(pod=")? + 5..];
    Some(&rest[..rest.find(')')?])
}

/// Every audited write received at or after `since_ms` that carries a replica's
/// user agent.
pub fn operator_writes(since_ms: u64) -> Result<Vec<AuditWrite>> {
    let path = cluster_dir()?.join("logs/audit.log");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| AuditWrite::of(&v))
        .filter(|w| w.t_ms >= since_ms && w.pod.is_some())
        .collect())
}

/// Host pids of the processes named `comm` in the pod with this uid (found by
/// the pod uid in their cgroup path).
pub fn pids_of_pod(uid: &str, comm: &str) -> Vec<i32> {
    let alt = uid.replace('-', "_");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let read =
                |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
            read("comm").trim() == comm && {
                let cg = read("cgroup");
                cg.contains(uid) || cg.contains(&alt)
            }
        })
        .collect()
}

fn signal(pids: &[i32], sig: &str) -> Result<()> {
    for pid in pids {
        let st = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .context("cannot run kill")?;
        if !st.success() {
            bail!("kill {sig} {pid} failed");
        }
    }
    Ok(())
}

/// Processes stopped with SIGSTOP; resumed (SIGCONT) by `thaw` or on drop,
/// so a failing scenario never leaves a replica frozen.
pub struct Frozen {
    pids: Vec<i32>,
}

impl Frozen {
    pub fn freeze(pids: Vec<i32>) -> Result<Self> {
        if pids.is_empty() {
            bail!("no process to freeze");
        }
        signal(&pids, "-STOP")?;
        Ok(Self { pids })
    }

    pub fn thaw(&mut self) -> Result<()> {
        let pids = std::mem::take(&mut self.pids);
        signal(&pids, "-CONT")
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if !self.pids.is_empty() {
            if let Err(e) = self.thaw() {
                log(format!("warning: could not resume frozen processes: {e:#}"));
            }
        }
    }
}

/// `e2e/cluster/local/daemon.sh ARGS`, bounded.
pub async fn daemon(args: &[&str], timeout: Duration) -> Result<()> {
    let script = repo_root().join("e2e/cluster/local/daemon.sh");
    let out = tokio::time::timeout(
        timeout,
        tokio::process::Command::new(&script)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| anyhow!("daemon.sh {} timed out", args.join(" ")))??;
    if !out.status.success() {
        bail!(
            "daemon.sh {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_write_is_read_from_an_audit_event() {
        let v = json!({
            "stage": "ResponseComplete", "verb": "create",
            "userAgent": "mcp-operator/0.1.0 (pod=mcp-operator-7c9-abcde)",
            "requestReceivedTimestamp": "2026-11-24T07:00:00.123456Z",
            "objectRef": {"resource": "pods", "subresource": "eviction", "namespace": "mcp-e2e", "name": "p-1"},
            "responseStatus": {"code": 201}
        });
        let w = AuditWrite::of(&v);
        assert_eq!(
            w.as_ref().and_then(|w| w.pod.clone()).as_deref(),
            Some("mcp-operator-7c9-abcde")
        );
        assert_eq!(w.as_ref().map(|w| w.code), Some(201));
        assert_eq!(w.as_ref().map(|w| w.subresource.as_str()), Some("eviction"));
        assert_eq!(w.map(|w| w.t_ms % 1000), Some(123));
        let mut started = v.clone();
        started["stage"] = json!("ResponseStarted");
        assert_eq!(AuditWrite::of(&started), None);
    }

    #[test]
    fn the_pod_comes_from_the_user_agent() {
        assert_eq!(pod_of_agent("mcp-operator/0.1.0 (pod=x-1)"), Some("x-1"));
        assert_eq!(pod_of_agent("kubectl/v1.34.4 (linux/amd64)"), None);
    }
}
