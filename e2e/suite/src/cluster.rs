//! The cluster under test: the kube client, kubectl/helm for the user's own
//! paths (apply, exec, rollout), and the waits and look-ups scenarios share.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use mcp_operator::api::McpServer;
use mcp_operator::remediation::ActionRecord;
use mcp_workload::client::{now_ms, Outcome, Session};
use tokio::process::{Child, Command};

use crate::load::LoadFrom;
use crate::measure::{pods_ready, PodSummary, Pods};
use crate::Opts;

pub const NS: &str = "mcp-e2e";
pub const DB_NS: &str = "mcp-e2e-db";
pub const OP_NS: &str = "mcp-system";
pub const RELEASE: &str = "mcp-operator";
pub const OP_SEL: &str =
    "app.kubernetes.io/name=mcp-operator,app.kubernetes.io/instance=mcp-operator";
pub const PG_SEL: &str = "app.kubernetes.io/name=postgres";
pub const PG_POD: &str = "postgres-0";
/// The operator's HTTP port (the chart's `httpPort`): /metrics, probes.
pub const OP_HTTP_PORT: u16 = 8080;
pub const NOTES: &str = "notes";
pub const FRAGILE: &str = "notes-fragile";
pub const DEFAULTS: &str = "notes-defaults";
/// `settle`: calls in a row a fresh server must answer, and for how long to try.
const SETTLE_CALLS: u32 = 20;
const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// `notes` with the database in readiness and no readiness gate (S19).
pub const DBREADY: &str = "notes-dbready";
pub const DESIRED: usize = 3;
pub const ACTION_EVENT_REASONS: [&str; 3] = ["PodEvicted", "RolloutRolledBack", "RolledBack"];

pub fn server_sel(name: &str) -> String {
    format!("mcp.operator.dev/server={name}")
}

pub fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn log(msg: impl AsRef<str>) {
    let t = k8s_openapi::jiff::Zoned::now();
    eprintln!("[{}] e2e: {}", t.strftime("%H:%M:%S"), msg.as_ref());
}

/// The checkout whose chart and manifests the suite applies: the nearest
/// ancestor of the working directory that holds the chart (the scripts run from
/// the repo root), else the checkout the binary was built from. Looked up at run
/// time because a shared CARGO_TARGET_DIR may hold a binary built in another clone.
pub fn repo_root() -> PathBuf {
    let holds_chart = |d: &Path| d.join("charts/mcp-operator/Chart.yaml").is_file();
    std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            cwd.ancestors()
                .find(|d| holds_chart(d))
                .map(Path::to_path_buf)
        })
        .or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .nth(2)
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn manifest(rel: &str) -> PathBuf {
    repo_root().join("e2e/manifests").join(rel)
}

/// A manifest for a cluster that pulls from `repo`: every `image: X` becomes
/// `image: repo/X` (where `e2e/images/build.sh --push=repo` put it), pulled
/// every time, since a pushed tag may have moved.
pub fn with_registry(manifest: &str, repo: &str) -> String {
    let repo = repo.trim_end_matches('/');
    manifest
        .lines()
        .map(|line| {
            let body = line.trim_start();
            let indent = &line[..line.len() - body.len()];
            if let Some(image) = body.strip_prefix("image: ") {
                format!("{indent}image: {repo}/{}", image.trim())
            } else if body.starts_with("imagePullPolicy: ") {
                format!("{indent}imagePullPolicy: Always")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A Service's first port (the MCP port: the operator makes one), 8080 if none.
pub fn service_port(svc: &Service) -> i32 {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|p| p.first())
        .map_or(8080, |p| p.port)
}

/// Poll `f` until it yields `Some`, tolerating errors (a transient API error
/// must not end a wait); the last error is part of the timeout message.
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            let tail = last_err
                .map(|e| format!(" (last error: {e:#})"))
                .unwrap_or_default();
            bail!(
                "timed out after {:.0} s waiting for {what}{tail}",
                timeout.as_secs_f64()
            );
        }
        tokio::time::sleep(every).await;
    }
}

/// An Event about an McpServer, with its times in unix ms.
#[derive(Clone, Debug)]
pub struct EventRec {
    pub reason: String,
    pub type_: String,
    pub note: String,
    /// Last seen (series) or event time.
    pub t_ms: u64,
    /// First seen.
    pub t_first_ms: u64,
    pub count: u64,
}

fn ms(t: &k8s_openapi::jiff::Timestamp) -> u64 {
    u64::try_from(t.as_millisecond()).unwrap_or(0)
}

/// How the host reaches an McpServer's Service: its ClusterIP directly
/// (kube-proxy makes ClusterIPs routable from the node, as on the local
/// cluster), else a `kubectl port-forward` (pins one pod: weaker, kind).
pub struct Endpoint {
    pub url: String,
    pub mode: &'static str,
    _forward: Option<Child>,
}

pub async fn tcp_ok(addr: SocketAddr, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

pub struct Ctx {
    pub client: Client,
    pub kubectl: String,
    pub helm: String,
    pub out: PathBuf,
    pub opts: Opts,
    endpoints: Mutex<BTreeMap<String, (String, &'static str)>>,
    forwards: Mutex<Vec<Child>>,
    settings: Mutex<BTreeMap<String, serde_json::Value>>,
    /// What `settle` saw per McpServer, until a measured run reports it.
    settled: Mutex<BTreeMap<String, serde_json::Value>>,
    /// The load runs in a pod in the cluster, not on the host (`--load-from`).
    load_in_cluster: AtomicBool,
}

impl Ctx {
    pub fn new(client: Client, kubectl: String, helm: String, out: PathBuf, opts: Opts) -> Self {
        let opts_load_in_cluster = opts.load_from == LoadFrom::Cluster;
        Self {
            client,
            kubectl,
            helm,
            out,
            opts,
            endpoints: Mutex::new(BTreeMap::new()),
            forwards: Mutex::new(Vec::new()),
            settings: Mutex::new(BTreeMap::new()),
            settled: Mutex::new(BTreeMap::new()),
            load_in_cluster: AtomicBool::new(opts_load_in_cluster),
        }
    }

    pub fn load_in_cluster(&self) -> bool {
        self.load_in_cluster.load(Ordering::Relaxed)
    }

    /// `--load-from auto`: decided once the first Service is reached (or not).
    pub fn set_load_in_cluster(&self, v: bool) {
        self.load_in_cluster.store(v, Ordering::Relaxed);
    }

    /// Remember the settings an McpServer ran with, for the report.
    pub fn note_settings(&self, name: &str, v: serde_json::Value) {
        if let Ok(mut s) = self.settings.lock() {
            s.insert(name.to_string(), v);
        }
    }

    pub fn settings(&self) -> BTreeMap<String, serde_json::Value> {
        self.settings.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn mcps_api(&self) -> Api<McpServer> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub fn pods_api(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    // -- commands: the user's own tools -----------------------------------

    async fn tool(
        &self,
        tool: &str,
        args: &[&str],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<(bool, String, String)> {
        if self.opts.verbose {
            log(format!("$ {tool} {}", args.join(" ")));
        }
        let mut cmd = Command::new(tool);
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| format!("cannot run {tool}"))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use tokio::io::AsyncWriteExt;
            pipe.write_all(text.as_bytes()).await?;
        }
        let out = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| {
                anyhow!(
                    "{tool} {} timed out after {:.0} s",
                    args.join(" "),
                    timeout.as_secs_f64()
                )
            })??;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// kubectl; an error carries its stderr.
    pub async fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_t(args, Duration::from_secs(60)).await
    }

    pub async fn kubectl_t(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let (ok, out, err) = self.tool(&self.kubectl, args, None, timeout).await?;
        if !ok {
            bail!("kubectl {} failed: {}", args.join(" "), err.trim());
        }
        Ok(out)
    }

    /// kubectl whose failure is an outcome, not an error: (ok, stdout+stderr).
    pub async fn kubectl_try(&self, args: &[&str]) -> (bool, String) {
        self.kubectl_try_t(args, Duration::from_secs(60)).await
    }

    pub async fn kubectl_try_t(&self, args: &[&str], timeout: Duration) -> (bool, String) {
        match self.tool(&self.kubectl, args, None, timeout).await {
            Ok((ok, out, err)) => (ok, format!("{err}{out}").trim().to_string()),
            Err(e) => (false, format!("{e:#}")),
        }
    }

    /// The `--set`s every install and upgrade of the chart gets: the local
    /// image (or the registry's, pulled Always) and the user's `--helm-set`s.
    fn helm_sets(&self) -> Vec<String> {
        let mut sets = match &self.opts.image_repository {
            None => vec!["image.pullPolicy=IfNotPresent".to_string()],
            Some(repo) => {
                let repo = repo.trim_end_matches('/');
                vec![
                    format!("image.repository={repo}/mcp-operator"),
                    "image.tag=dev".to_string(),
                    "image.pullPolicy=Always".to_string(),
                ]
            }
        };
        sets.extend(self.opts.helm_set.iter().cloned());
        sets.into_iter()
            .flat_map(|s| ["--set".to_string(), s])
            .collect()
    }

    /// `helm <verb> RELEASE CHART` in the operator's namespace, with `values`
    /// and [`Self::helm_sets`], waiting at most `wait` for the release.
    pub async fn helm_release(
        &self,
        verb: &[&str],
        chart: &Path,
        values: Option<&Path>,
        wait: Duration,
    ) -> Result<String> {
        let chart = chart.to_string_lossy();
        let timeout = format!("{}s", wait.as_secs());
        let mut args: Vec<String> = verb.iter().map(|v| v.to_string()).collect();
        args.extend(
            [
                RELEASE,
                &chart,
                "-n",
                OP_NS,
                "--create-namespace",
                "--wait",
                "--timeout",
                &timeout,
            ]
            .map(String::from),
        );
        if let Some(v) = values {
            args.extend(["-f".to_string(), v.to_string_lossy().into_owned()]);
        }
        args.extend(self.helm_sets());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.helm(&refs, wait + Duration::from_secs(60)).await
    }

    pub async fn helm(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let (ok, out, err) = self.tool(&self.helm, args, None, timeout).await?;
        if !ok {
            bail!("helm {} failed: {}", args.join(" "), err.trim());
        }
        Ok(out)
    }

    /// `kubectl apply` of a manifest; with `--image-repository` its images
    /// are the registry's (see [`with_registry`]).
    pub async fn apply(&self, path: &Path) -> Result<String> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let text = match self.opts.image_repository.as_deref() {
            Some(repo) => with_registry(&text, repo),
            None => text,
        };
        let (ok, out, err) = self
            .tool(
                &self.kubectl,
                &["apply", "-f", "-"],
                Some(&text),
                Duration::from_secs(60),
            )
            .await?;
        if !ok {
            bail!("kubectl apply -f {} failed: {}", path.display(), err.trim());
        }
        Ok(out)
    }

    // -- look-ups --------------------------------------------------------

    pub async fn pods(&self, ns: &str, sel: &str) -> Result<Pods> {
        let list = self
            .pods_api(ns)
            .list(&ListParams::default().labels(sel))
            .await?;
        Ok(list
            .items
            .iter()
            .map(|p| (p.name_any(), PodSummary::of(p)))
            .collect())
    }

    /// Pod name -> the node it is bound to (pods not scheduled yet are left out).
    pub async fn pod_nodes(&self, ns: &str, sel: &str) -> Result<BTreeMap<String, String>> {
        let list = self
            .pods_api(ns)
            .list(&ListParams::default().labels(sel))
            .await?;
        Ok(list
            .items
            .iter()
            .filter_map(|p| {
                let node = p.spec.as_ref()?.node_name.clone()?;
                Some((p.name_any(), node))
            })
            .collect())
    }

    /// The nodes that are Ready and schedulable (not cordoned), by name.
    pub async fn schedulable_nodes(&self) -> Result<Vec<String>> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        Ok(nodes
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|n| {
                n.spec.as_ref().and_then(|s| s.unschedulable) != Some(true) && node_ready(n)
            })
            .map(|n| n.name_any())
            .collect())
    }

    /// Whether `node` is Ready (None: it does not exist).
    pub async fn node_is_ready(&self, node: &str) -> Result<Option<bool>> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        Ok(nodes.get_opt(node).await?.map(|n| node_ready(&n)))
    }

    pub async fn operator_pods(&self) -> Result<Pods> {
        self.pods(OP_NS, OP_SEL).await
    }

    /// The operator pod in `ns` whose /metrics says it leads, and that text,
    /// read through the API server's pod proxy (works wherever the suite runs).
    pub async fn leader_metrics(&self, ns: &str) -> Result<Option<(String, String)>> {
        for pod in self.pods(ns, OP_SEL).await?.keys() {
            let path = format!("/api/v1/namespaces/{ns}/pods/{pod}:{OP_HTTP_PORT}/proxy/metrics");
            let (ok, text) = self.kubectl_try(&["get", "--raw", &path]).await;
            if ok && text.lines().any(|l| l.trim() == "mcp_operator_leader 1") {
                return Ok(Some((pod.clone(), text)));
            }
        }
        Ok(None)
    }

    pub async fn mcps(&self, name: &str) -> Result<Option<McpServer>> {
        Ok(self.mcps_api().get_opt(name).await?)
    }

    /// Events regarding McpServer `name` at or after `since_ms`, oldest first.
    pub async fn events_for(&self, name: &str, since_ms: u64) -> Result<Vec<EventRec>> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), NS);
        let mut out = Vec::new();
        for ev in api.list(&ListParams::default()).await?.items {
            let Some(reg) = ev.regarding.as_ref() else {
                continue;
            };
            if reg.kind.as_deref() != Some("McpServer") || reg.name.as_deref() != Some(name) {
                continue;
            }
            let first = ev
                .event_time
                .as_ref()
                .map(|t| ms(&t.0))
                .or_else(|| ev.deprecated_first_timestamp.as_ref().map(|t| ms(&t.0)))
                .or_else(|| ev.metadata.creation_timestamp.as_ref().map(|t| ms(&t.0)))
                .unwrap_or(0);
            let last = ev
                .series
                .as_ref()
                .map(|s| ms(&s.last_observed_time.0))
                .or_else(|| ev.deprecated_last_timestamp.as_ref().map(|t| ms(&t.0)))
                .unwrap_or(first);
            if last < since_ms {
                continue;
            }
            out.push(EventRec {
                reason: ev.reason.clone().unwrap_or_default(),
                type_: ev.type_.clone().unwrap_or_default(),
                note: ev.note.clone().unwrap_or_default(),
                t_ms: last,
                t_first_ms: first,
                count: ev
                    .series
                    .as_ref()
                    .map_or(1, |s| u64::try_from(s.count).unwrap_or(1)),
            });
        }
        out.sort_by_key(|e| e.t_ms);
        Ok(out)
    }

    /// Remediation actions recorded in status at or after `since_ms`
    /// (metav1.Time has second precision: the truncated second counts).
    pub fn actions_since(obj: Option<&McpServer>, since_ms: u64) -> Vec<ActionRecord> {
        obj.and_then(|o| o.status.as_ref())
            .and_then(|s| s.remediation.as_ref())
            .map(|r| {
                r.recent_actions
                    .iter()
                    .filter(|a| ms(&a.time.0) + 1000 >= since_ms)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn endpoint(&self, name: &str) -> Result<(String, &'static str)> {
        if let Some(e) = self
            .endpoints
            .lock()
            .ok()
            .and_then(|m| m.get(name).cloned())
        {
            return Ok(e);
        }
        if self.opts.session_affinity {
            // workaround, off by default: pin each client to one pod
            let svc: Api<Service> = Api::namespaced(self.client.clone(), NS);
            svc.patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"sessionAffinity": "ClientIP"}})),
            )
            .await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let ep = self.open_endpoint(name).await?;
        if let Ok(mut m) = self.endpoints.lock() {
            m.insert(name.to_string(), (ep.url.clone(), ep.mode));
        }
        if let (Some(child), Ok(mut f)) = (ep._forward, self.forwards.lock()) {
            f.push(child);
        }
        Ok((ep.url, ep.mode))
    }

    /// The Service of McpServer `name` (it has the McpServer's name).
    pub async fn service(&self, name: &str) -> Result<Service> {
        let svc: Api<Service> = Api::namespaced(self.client.clone(), NS);
        svc.get(name)
            .await
            .with_context(|| format!("Service {NS}/{name}"))
    }

    async fn open_endpoint(&self, name: &str) -> Result<Endpoint> {
        let s = self.service(name).await?;
        let port = service_port(&s);
        let spec = s.spec.unwrap_or_default();
        // With --load-from cluster the host may not reach a ClusterIP at all
        // (kind): the suite's own few calls (settle) go through a port-forward.
        let try_cluster_ip = self.opts.load_from != LoadFrom::Cluster;
        if let Some(ip) = spec.cluster_ip.filter(|ip| ip != "None" && try_cluster_ip) {
            if let Ok(addr) = format!("{ip}:{port}").parse::<SocketAddr>() {
                // A new Service may take kube-proxy a few seconds to program:
                // wait rather than fall back to a port-forward that pins one pod.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                while tokio::time::Instant::now() < deadline {
                    if tcp_ok(addr, Duration::from_secs(1)).await {
                        return Ok(Endpoint {
                            url: format!("http://{addr}/mcp"),
                            mode: "clusterip",
                            _forward: None,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        let local = 18000 + (name.bytes().map(u16::from).sum::<u16>() % 1000);
        let child = Command::new(&self.kubectl)
            .args([
                "port-forward",
                "-n",
                NS,
                &format!("svc/{name}"),
                &format!("{local}:{port}"),
                "--address",
                "127.0.0.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let addr: SocketAddr = format!("127.0.0.1:{local}").parse()?;
        for _ in 0..50 {
            if tcp_ok(addr, Duration::from_millis(200)).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        log(if try_cluster_ip {
            format!("ClusterIP of {name} not reachable from this host; using kubectl port-forward (pins one pod)")
        } else {
            format!("{name}: the suite's own calls go through kubectl port-forward (--load-from cluster)")
        });
        Ok(Endpoint {
            url: format!("http://{addr}/mcp"),
            mode: "port-forward",
            _forward: Some(child),
        })
    }

    fn forget_endpoint(&self, name: &str) {
        if let Ok(mut m) = self.endpoints.lock() {
            m.remove(name);
        }
    }

    // -- Postgres ----------------------------------------------------------

    pub async fn wait_pg_ready(&self, timeout: Duration) -> Result<()> {
        let api = self.pods_api(DB_NS);
        eventually(
            "Postgres ready",
            timeout,
            Duration::from_millis(500),
            || async {
                let p = api.get_opt(PG_POD).await?;
                Ok(p.map(|p| PodSummary::of(&p))
                    .filter(|s| s.ready && !s.deleting)
                    .map(|_| ()))
            },
        )
        .await
    }

    pub async fn scale_pg(&self, n: i32) -> Result<()> {
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), DB_NS);
        api.patch_scale(
            "postgres",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": n}})),
        )
        .await?;
        Ok(())
    }

    pub async fn force_delete_pg(&self) -> Result<()> {
        self.pods_api(DB_NS)
            .delete(PG_POD, &DeleteParams::default().grace_period(0))
            .await?;
        Ok(())
    }

    /// Delete with the pod's own grace period: the kubelet sends SIGTERM, which
    /// the image turns into Postgres' fast shutdown.
    pub async fn delete_pg(&self) -> Result<()> {
        self.pods_api(DB_NS)
            .delete(PG_POD, &DeleteParams::default())
            .await?;
        Ok(())
    }

    pub async fn kill9_pg(&self) -> Result<()> {
        self.kubectl_t(
            &[
                "exec", "-n", DB_NS, PG_POD, "-c", "postgres", "--", "pkill", "-KILL", "-o", "-x",
                "postgres",
            ],
            Duration::from_secs(20),
        )
        .await?;
        Ok(())
    }

    pub async fn pg_pod_ip(&self) -> Result<String> {
        let p = self.pods_api(DB_NS).get(PG_POD).await?;
        p.status
            .and_then(|s| s.pod_ip)
            .ok_or_else(|| anyhow!("{PG_POD} has no IP"))
    }

    // -- McpServers --------------------------------------------------------

    pub async fn wait_mcps_ready(&self, name: &str, timeout: Duration) -> Result<()> {
        let cond = |o: Option<&McpServer>| {
            o.is_some_and(|o| {
                o.status.as_ref().is_some_and(|s| {
                    s.phase.map(|p| p.as_str()) == Some("Ready")
                        && usize::try_from(s.ready_replicas).unwrap_or(0) >= DESIRED
                        && s.observed_generation == o.metadata.generation
                })
            })
        };
        tokio::time::timeout(timeout, await_condition(self.mcps_api(), name, cond))
            .await
            .map_err(|_| {
                anyhow!(
                    "timed out after {:.0} s waiting for McpServer {name} phase Ready",
                    timeout.as_secs_f64()
                )
            })??;
        self.wait_pods_ready(name, Duration::from_secs(60)).await
    }

    /// All `DESIRED` pods of the McpServer ready, none terminating.
    pub async fn wait_pods_ready(&self, name: &str, timeout: Duration) -> Result<()> {
        let sel = server_sel(name);
        eventually(
            &format!("{DESIRED} ready pods of {name}"),
            timeout,
            Duration::from_millis(500),
            || async { Ok(pods_ready(&self.pods(NS, &sel).await?, DESIRED).then_some(())) },
        )
        .await
    }

    pub async fn delete_mcps(&self, name: &str, timeout: Duration) -> Result<()> {
        self.forget_endpoint(name); // a re-created Service gets a new ClusterIP
        let api = self.mcps_api();
        let Some(obj) = api.get_opt(name).await? else {
            return Ok(());
        };
        api.delete(name, &DeleteParams::default()).await?;
        let uid = obj.uid().unwrap_or_default();
        tokio::time::timeout(
            timeout,
            await_condition(api, name, conditions::is_deleted(&uid)),
        )
        .await
        .map_err(|_| anyhow!("timed out waiting for McpServer {name} to go"))??;
        let sel = server_sel(name);
        eventually(
            &format!("pods of {name} gone"),
            timeout,
            Duration::from_secs(1),
            || async { Ok(self.pods(NS, &sel).await?.is_empty().then_some(())) },
        )
        .await
    }

    pub async fn fresh_mcps(&self, name: &str, manifest: &Path) -> Result<()> {
        if self.mcps(name).await?.is_some() {
            log(format!("deleting McpServer {name} for a fresh start"));
            self.delete_mcps(name, Duration::from_secs(90)).await?;
        }
        self.apply(manifest).await?;
        log(format!("waiting for McpServer {name} to be Ready"));
        self.wait_mcps_ready(name, Duration::from_secs(180)).await?;
        self.settle(name).await
    }

    /// A server just turned Ready: call it through its Service until
    /// `SETTLE_CALLS` in a row succeed (at most `SETTLE_LIMIT`), so a measured
    /// baseline starts from a serving server. What failed on the way is kept
    /// for the next measured run's report (`info.settle`), not hidden.
    async fn settle(&self, name: &str) -> Result<()> {
        let (url, _) = self.endpoint(name).await?;
        let started = tokio::time::Instant::now();
        let mut session = Session::new(&url, Duration::from_secs(5));
        let (mut streak, mut calls) = (0u32, 0u32);
        let mut failed: Vec<String> = Vec::new();
        while streak < SETTLE_CALLS && started.elapsed() < SETTLE_LIMIT {
            calls += 1;
            let key = format!("e2e-settle-{name}-{}-{calls}", now_ms());
            match session
                .call(
                    "put_note",
                    serde_json::json!({"key": key, "value": "settle"}),
                )
                .await
            {
                Outcome::Ok(_) => streak += 1,
                Outcome::Err { kind, message, .. } => {
                    streak = 0;
                    failed.push(format!(
                        "{kind} at +{:.2} s: {}",
                        started.elapsed().as_secs_f64(),
                        message.chars().take(200).collect::<String>()
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        session.close().await;
        let took = started.elapsed().as_secs_f64();
        if !failed.is_empty() {
            log(format!(
                "{name}: {} of {calls} settle calls failed after Ready: {}",
                failed.len(),
                failed.join("; ")
            ));
        }
        if let Ok(mut m) = self.settled.lock() {
            m.insert(
                name.to_string(),
                serde_json::json!({"calls": calls, "failed": failed, "s": took}),
            );
        }
        if streak < SETTLE_CALLS {
            bail!("McpServer {name} Ready but not serving: {SETTLE_CALLS} calls in a row did not succeed within {SETTLE_LIMIT:?}");
        }
        Ok(())
    }

    /// What `settle` saw for `name` since the last call (taken once).
    pub fn take_settled(&self, name: &str) -> Option<serde_json::Value> {
        self.settled.lock().ok().and_then(|mut m| m.remove(name))
    }

    /// Diagnostics of a failed scenario; never fails the run.
    pub async fn diag(&self, sid: &str) {
        let d = self.out.join("diag").join(sid);
        let _ = std::fs::create_dir_all(&d);
        let items: [(&str, Vec<&str>); 5] = [
            ("mcps.yaml", vec!["get", "mcps", "-n", NS, "-o", "yaml"]),
            ("pods.txt", vec!["get", "pods", "-A", "-o", "wide"]),
            (
                "events.txt",
                vec!["get", "events", "-n", NS, "--sort-by=.lastTimestamp"],
            ),
            (
                "operator.log",
                vec![
                    "logs",
                    "-n",
                    OP_NS,
                    "-l",
                    OP_SEL,
                    "--tail=400",
                    "--all-containers",
                ],
            ),
            (
                "operator-previous.log",
                vec![
                    "logs",
                    "-n",
                    OP_NS,
                    "-l",
                    OP_SEL,
                    "--tail=200",
                    "--previous",
                ],
            ),
        ];
        for (file, args) in items {
            let (_, text) = self.kubectl_try(&args).await;
            let _ = std::fs::write(d.join(file), text);
        }
    }

    /// Stop port-forwards.
    pub fn close(&self) {
        if let Ok(mut f) = self.forwards.lock() {
            for c in f.iter_mut() {
                let _ = c.start_kill();
            }
            f.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_registry;

    #[test]
    fn images_come_from_the_registry_and_are_pulled_every_time() {
        let m = "spec:\n  image: mcp-workload:dev\n  imagePullPolicy: IfNotPresent\n  containers:\n    - name: pg\n      image: mcp-e2e/postgres:15\n      imagePullPolicy: IfNotPresent\n  port: 8080\n";
        let out = with_registry(m, "127.0.0.1:5000/mcp/");
        assert_eq!(
            out,
            "spec:\n  image: 127.0.0.1:5000/mcp/mcp-workload:dev\n  imagePullPolicy: Always\n  containers:\n    - name: pg\n      image: 127.0.0.1:5000/mcp/mcp-e2e/postgres:15\n      imagePullPolicy: Always\n  port: 8080\n"
        );
    }
}
