//! One operator at one N: create, converge, idle, outage fan-out, spec
//! rollout, delete; every figure from outside the operator.
use crate::audit;
use crate::peers::{Peer, DB_NS, DB_SERVICE, DB_SLICE};
use crate::procstat::{Proc, Sample};
use crate::promtext::{self, Histogram};
use anyhow::{bail, Context as _, Result};
use futures::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Client;
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::Command;

#[derive(clap::Args, Debug)]
pub struct Opts {
    #[arg(long, value_enum)]
    peer: Peer,
    /// Servers to create
    #[arg(long)]
    n: usize,
    /// Spread over this many namespaces
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// Where the run's JSON goes
    #[arg(long)]
    out: PathBuf,
    /// The API server's audit log
    #[arg(long)]
    audit_log: PathBuf,
    /// The operator's user as the API server sees it
    #[arg(long)]
    user: String,
    /// The operator's Prometheus endpoint
    #[arg(long)]
    metrics_url: String,
    /// The operator's stdout and stderr
    #[arg(long)]
    operator_log: PathBuf,
    /// KUBECONFIG of the operator (its ServiceAccount's token)
    #[arg(long)]
    operator_kubeconfig: PathBuf,
    /// Seconds after converging before the idle minute starts
    #[arg(long, default_value_t = 10.0)]
    settle_s: f64,
    /// Seconds measured idle
    #[arg(long, default_value_t = 60.0)]
    idle_s: f64,
    /// A directory of `NAME.pid` files (the control plane's and kwok's
    /// processes): each one's CPU while converging goes in the record
    #[arg(long)]
    cluster_pids: Option<PathBuf>,
    /// Give up on any one phase after this long
    #[arg(long, default_value_t = 900.0)]
    timeout_s: f64,
    /// Creates and patches in flight at once
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The operator's version, for the report
    #[arg(long, default_value = "")]
    version: String,
    /// The operator's executable, when the command wraps it (a profiler):
    /// RSS, CPU and the stop signal go to the process running it
    #[arg(long)]
    exe: Option<PathBuf>,
    /// The operator command
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// One run, as report.json carries it; a figure the peer cannot produce is None.
#[derive(Debug, Serialize, serde::Deserialize, Clone, Default)]
pub struct RunRecord {
    pub operator: String,
    pub version: String,
    pub n: usize,
    pub converge_s: Option<f64>,
    pub rss_peak_mib: Option<f64>,
    pub rss_idle_mib: Option<f64>,
    pub cpu_converge_s: Option<f64>,
    pub cpu_idle_s_per_min: Option<f64>,
    pub reads: Option<u64>,
    pub writes: Option<u64>,
    pub idle_reads_per_min: Option<f64>,
    /// Writes other than renewing the leader-election Lease.
    pub idle_writes_per_min: Option<f64>,
    pub idle_lease_writes_per_min: Option<f64>,
    /// What the writes to converge were ("verb resource" -> count).
    #[serde(default)]
    pub writes_by_kind: std::collections::BTreeMap<String, u64>,
    /// What the idle writes were ("verb resource" -> count).
    pub idle_writes_by_kind: std::collections::BTreeMap<String, u64>,
    /// Reconciles from the first create until converged.
    #[serde(default)]
    pub reconciles: Option<f64>,
    /// Of `reconciles`, ours that found the cache behind our own status write
    /// and only looked again later (no work done).
    #[serde(default)]
    pub reconciles_stale: Option<f64>,
    pub idle_reconciles_per_min: Option<f64>,
    pub reconcile_p50_s: Option<f64>,
    pub reconcile_p99_s: Option<f64>,
    pub fanout_s: Option<f64>,
    pub fanout_back_s: Option<f64>,
    /// What the writes from the outage until every server showed it were.
    #[serde(default)]
    pub fanout_writes_by_kind: std::collections::BTreeMap<String, u64>,
    pub spec_rollout_s: Option<f64>,
    /// From the first create to the last (the benchmark's own pace).
    pub create_s: Option<f64>,
    /// From the last create until 2N pods were Ready: the control plane's
    /// and kwok's pace, which bounds `converge_s` from below.
    pub pods_ready_s: Option<f64>,
    /// ClusterIPs the API server allocated while converging, and the seconds
    /// it spent on them: kube-apiserver 1.34 allocates one at a time (its
    /// `MetaAllocator` holds one lock while it creates each IPAddress object
    /// through its own API). How long each takes depends on the load: 92 ms
    /// under ours and 4 ms under ToolHive's at N = 1,000 (2026-12-03).
    #[serde(default)]
    pub cluster_ip_allocations: Option<f64>,
    #[serde(default)]
    pub cluster_ip_allocation_s: Option<f64>,
    /// CPU seconds from just before the first create until converged, by
    /// process: the control plane's and kwok's (`--cluster-pids`), the
    /// operator's and the benchmark client's own. The machine is shared: this
    /// says whose work the converge time was.
    #[serde(default)]
    pub converge_cpu_by_process: std::collections::BTreeMap<String, f64>,
    /// The machine's busy share of all its cores in that window (1 = none idle).
    #[serde(default)]
    pub converge_machine_busy: Option<f64>,
    /// Seconds from the last create until every one of the N (or 2N pods)
    /// reached each stage of the pipeline, in order: where converging goes.
    #[serde(default)]
    pub pipeline: Vec<(String, f64)>,
    pub errors: Vec<String>,
}

fn log(msg: impl AsRef<str>) {
    eprintln!(
        "[{}] bench: {}",
        Timestamp::now().strftime("%H:%M:%S"),
        msg.as_ref()
    );
}

fn ns_name(i: usize) -> String {
    format!("bench-{i:02}")
}

fn server(i: usize, namespaces: usize) -> (String, String) {
    (ns_name(i % namespaces), format!("mcp-{i:05}"))
}

const IMAGE_A: &str = "registry.bench.local/mcp/server:1.0.0";
const IMAGE_B: &str = "registry.bench.local/mcp/server:1.0.1";

pub async fn run(o: Opts) -> Result<()> {
    let client = Client::try_default().await.context("KUBECONFIG")?;
    let mut rec = RunRecord {
        operator: o.peer.name().into(),
        version: o.version.clone(),
        n: o.n,
        ..Default::default()
    };
    setup(&client, o.namespaces).await?;

    let log_file = std::fs::File::create(&o.operator_log)?;
    let mut child = Command::new(&o.command[0])
        .args(&o.command[1..])
        .env("KUBECONFIG", &o.operator_kubeconfig)
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .kill_on_drop(true)
        // a group of its own: a wrapper's children are stopped with it
        .process_group(0)
        .spawn()
        .with_context(|| format!("start {}", o.command[0]))?;
    let group = child.id().context("operator exited at once")?;
    let pid = match &o.exe {
        Some(exe) => operator_pid(group, exe).await?,
        None => group,
    };
    log(format!("{} started (pid {pid})", o.peer.name()));
    let res = measure(&client, &o, pid, &mut rec).await;
    if let Err(e) = &res {
        rec.errors.push(format!("{e:#}"));
    }
    // The kernel's high-water mark over every phase (before the deletes).
    if let Ok(s) = Proc::new(pid).and_then(|p| p.sample()) {
        rec.rss_peak_mib = Some(s.hwm_mib);
    }
    // Stop the operator only after its servers are gone: a peer's finalizers
    // would otherwise hold them (and the namespaces) forever.
    if let Err(e) = delete_all(&client, &o).await {
        rec.errors.push(format!("delete: {e:#}"));
    }
    // The operator first: a profiler around it writes its data when it exits.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    let grace = if o.exe.is_some() { 300 } else { 30 };
    if tokio::time::timeout(Duration::from_secs(grace), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    // whatever of the group is left (usually nothing)
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    std::fs::write(&o.out, serde_json::to_string_pretty(&rec)?)?;
    log(format!("wrote {}", o.out.display()));
    if !rec.errors.is_empty() {
        bail!("run failed: {}", rec.errors.join("; "));
    }
    Ok(())
}

/// The pid running `exe` under the spawned command (a wrapper may take a
/// moment to start it).
async fn operator_pid(root: u32, exe: &std::path::Path) -> Result<u32> {
    for _ in 0..100 {
        if let Some(pid) = crate::procstat::find_in_tree(root, exe) {
            return Ok(pid);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "no process runs {} under pid {root} after 10 s",
        exe.display()
    )
}

async fn setup(client: &Client, namespaces: usize) -> Result<()> {
    let pp = PatchParams::apply("mcp-bench-scale").force();
    let nss: Api<Namespace> = Api::all(client.clone());
    for name in (0..namespaces).map(ns_name).chain([DB_NS.to_string()]) {
        nss.patch(
            &name,
            &pp,
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            ),
        )
        .await?;
        if name != DB_NS {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &name);
            secrets
                .patch(
                    "db",
                    &pp,
                    &Patch::Apply(json!({
                        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                        "stringData": {"url": "postgres://bench@postgres.bench-db.svc:5432/bench"}
                    })),
                )
                .await?;
        }
    }
    let svcs: Api<Service> = Api::namespaced(client.clone(), DB_NS);
    svcs.patch(
        DB_SERVICE,
        &pp,
        &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": DB_SERVICE},
            "spec": {"ports": [{"name": "postgres", "port": 5432}]}
        })),
    )
    .await?;
    set_db_ready(client, true).await
}

/// The database's one endpoint, ready or not (what the EndpointSlice
/// controller writes when Postgres' readiness probe fails).
async fn set_db_ready(client: &Client, ready: bool) -> Result<()> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), DB_NS);
    slices
        .patch(DB_SLICE, &PatchParams::apply("mcp-bench-scale").force(), &Patch::Apply(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": DB_SLICE, "labels": {"kubernetes.io/service-name": DB_SERVICE}},
            "addressType": "IPv4",
            "ports": [{"name": "postgres", "port": 5432, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.254.0.10"], "conditions": {"ready": ready}}]
        })))
        .await?;
    Ok(())
}

async fn scrape(url: &str) -> Result<String> {
    let out = Command::new("curl")
        .args(["-fsS", "--max-time", "5", url])
        .output()
        .await?;
    if !out.status.success() {
        bail!("GET {url}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The API server's ClusterIP allocations so far: (count, seconds).
async fn cluster_ip_allocations(client: &Client) -> Result<(f64, f64)> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    let name = "kube_apiserver_clusterip_allocator_allocation_duration_seconds";
    Ok((
        promtext::counter(&text, &format!("{name}_count"), &[]),
        promtext::counter(&text, &format!("{name}_sum"), &[]),
    ))
}

/// CPU seconds so far of each process named by a `NAME.pid` file in `dir`, and
/// of this benchmark client itself. A process gone or unreadable is left out.
fn cluster_cpu(
    dir: Option<&std::path::Path>,
    ticks: f64,
) -> std::collections::BTreeMap<String, f64> {
    let listed = dir
        .and_then(|d| std::fs::read_dir(d).ok())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".pid")?.to_string();
            let pid: u32 = std::fs::read_to_string(e.path())
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some((name, pid))
        });
    listed
        .chain([("benchmark client".to_string(), std::process::id())])
        .filter_map(|(name, pid)| Some((name, crate::procstat::cpu_s(pid, ticks).ok()?)))
        .collect()
}

/// Ours: reconciles that skipped a stale cache so far (ToolHive has none).
fn stale_reconciles(peer: Peer, text: &str) -> Option<f64> {
    matches!(peer, Peer::McpOperator).then(|| {
        promtext::counter(
            text,
            "mcp_operator_reconciles_total",
            &[("result", "stale")],
        )
    })
}

/// The operator's reconcile histogram and reconcile count.
fn reconcile_metrics(peer: Peer, text: &str) -> (Histogram, f64) {
    match peer {
        Peer::McpOperator => (
            promtext::histogram(text, "mcp_operator_reconcile_duration_seconds", &[]),
            promtext::counter(text, "mcp_operator_reconciles_total", &[]),
        ),
        Peer::Toolhive => (
            promtext::histogram(
                text,
                "controller_runtime_reconcile_time_seconds",
                &[("controller", "mcpserver")],
            ),
            promtext::counter(
                text,
                "controller_runtime_reconcile_total",
                &[("controller", "mcpserver")],
            ),
        ),
    }
}

type Store<K> = reflector::Store<K>;

/// A cache of every `K` in the cluster, kept by a watch of its own. `writer`
/// carries the type's dynamic part (a custom resource's group and kind).
fn spawn_store<K>(writer: reflector::store::Writer<K>, api: Api<K>) -> Store<K>
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let reader = writer.as_reader();
    let stream = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        stream.for_each(|_| async {}).await;
    });
    reader
}

/// Wait until `pred` holds, checking every 200 ms; the seconds it took.
async fn wait_for(
    what: &str,
    timeout: f64,
    sampler: &Sampler,
    mut pred: impl FnMut() -> bool,
) -> Result<f64> {
    let t0 = Instant::now();
    loop {
        if pred() {
            return Ok(t0.elapsed().as_secs_f64());
        }
        sampler.alive()?;
        if t0.elapsed().as_secs_f64() > timeout {
            bail!("{what}: not after {timeout} s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Samples the process every 500 ms so a crash is noticed while waiting.
#[derive(Clone)]
struct Sampler {
    proc_: Arc<Proc>,
    last: Arc<Mutex<Result<Sample, String>>>,
}

impl Sampler {
    fn start(pid: u32) -> Result<Self> {
        let proc_ = Arc::new(Proc::new(pid)?);
        let first = proc_.sample()?;
        let s = Sampler {
            proc_,
            last: Arc::new(Mutex::new(Ok(first))),
        };
        let bg = s.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let v = bg.proc_.sample().map_err(|e| format!("{e:#}"));
                let gone = v.is_err();
                if let Ok(mut l) = bg.last.lock() {
                    *l = v;
                }
                if gone {
                    break;
                }
            }
        });
        Ok(s)
    }

    fn alive(&self) -> Result<()> {
        match self.last.lock().map(|l| l.clone()) {
            Ok(Err(e)) => bail!("the operator died: {e}"),
            _ => Ok(()),
        }
    }

    fn now(&self) -> Result<Sample> {
        self.proc_.sample()
    }
}

async fn measure(client: &Client, o: &Opts, pid: u32, rec: &mut RunRecord) -> Result<()> {
    let sampler = Sampler::start(pid)?;
    let timeout = o.timeout_s;
    // The operator is up when its metrics answer.
    let t0 = Instant::now();
    let base_text = loop {
        sampler.alive()?;
        if let Ok(t) = scrape(&o.metrics_url).await {
            break t;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("{} never served {}", o.peer.name(), o.metrics_url);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let (hist0, reconciles0) = reconcile_metrics(o.peer, &base_text);
    let stale0 = stale_reconciles(o.peer, &base_text);
    let s0 = sampler.now()?;
    let ips0 = cluster_ip_allocations(client).await?;
    let ticks = crate::procstat::ticks_per_s()?;
    let cpu0 = cluster_cpu(o.cluster_pids.as_deref(), ticks);
    let machine0 = crate::procstat::machine_cpu_s(ticks)?;

    let ar = o.peer.resource();
    let servers: Store<DynamicObject> = spawn_store(
        reflector::store::Writer::new(ar.clone()),
        Api::all_with(client.clone(), &ar),
    );
    let deployments: Store<Deployment> = spawn_store(Default::default(), Api::all(client.clone()));
    // Pods only as far as a Ready count goes (2N of them at N = 3,000).
    let pods: Store<Pod> = spawn_store(Default::default(), Api::all(client.clone()));
    servers.wait_until_ready().await?;
    deployments.wait_until_ready().await?;
    pods.wait_until_ready().await?;

    // Create.
    let t_first = Timestamp::now();
    let started = Instant::now();
    log(format!("creating {} {}s", o.n, ar.kind));
    stream::iter(0..o.n)
        .map(|i| {
            let (ns, name) = server(i, o.namespaces);
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
            let manifest = o.peer.manifest(&ns, &name, IMAGE_A);
            let stand_in = o.peer.runner_stand_in(&ns, &name);
            let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
            async move {
                if let Some(s) = stand_in {
                    sts.create(&PostParams::default(), &serde_json::from_value(s)?)
                        .await?;
                }
                let obj: DynamicObject = serde_json::from_value(manifest)?;
                api.create(&PostParams::default(), &obj).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(o.concurrency)
        .try_collect::<()>()
        .await
        .context("create")?;
    rec.create_s = Some(started.elapsed().as_secs_f64());
    log(format!(
        "created in {:.1} s; waiting for all to converge",
        started.elapsed().as_secs_f64()
    ));
    let n = o.n;
    let peer = o.peer;
    let all = |pred: &dyn Fn(&DynamicObject) -> bool| {
        let st = servers.state();
        st.len() == n && st.iter().all(|x| pred(x))
    };
    let created = Instant::now();
    let pipeline = Mutex::new(Pipeline::default());
    let converge = wait_for("converge", timeout, &sampler, || {
        let counts = Counts::take(&servers.state(), &deployments.state(), &pods.state(), peer);
        if let Ok(mut p) = pipeline.lock() {
            p.see(&counts, n, created.elapsed().as_secs_f64());
        }
        counts.converged >= n
    })
    .await;
    rec.pipeline = pipeline.into_inner().map(|p| p.reached).unwrap_or_default();
    rec.pods_ready_s = rec
        .pipeline
        .iter()
        .find(|(stage, _)| stage == "pods Ready")
        .map(|(_, s)| *s);
    let converge = converge?;
    let t_conv = Timestamp::now();
    rec.converge_s = Some(converge);
    let s1 = sampler.now()?;
    rec.cpu_converge_s = Some(s1.cpu_s - s0.cpu_s);
    let cpu1 = cluster_cpu(o.cluster_pids.as_deref(), ticks);
    let machine1 = crate::procstat::machine_cpu_s(ticks)?;
    rec.converge_cpu_by_process = cpu1
        .iter()
        .filter_map(|(name, c1)| Some((name.clone(), c1 - cpu0.get(name)?)))
        .chain([(o.peer.name().to_string(), s1.cpu_s - s0.cpu_s)])
        .collect();
    rec.converge_machine_busy =
        Some((machine1.0 - machine0.0) / (machine1.1 - machine0.1).max(1e-9));
    let text1 = scrape(&o.metrics_url).await?;
    let (hist1, reconciles1) = reconcile_metrics(o.peer, &text1);
    let during = hist1.since(&hist0);
    rec.reconciles = Some(reconciles1 - reconciles0);
    rec.reconciles_stale = stale_reconciles(o.peer, &text1)
        .zip(stale0)
        .map(|(a, b)| a - b);
    let ips1 = cluster_ip_allocations(client).await?;
    rec.cluster_ip_allocations = Some(ips1.0 - ips0.0);
    rec.cluster_ip_allocation_s = Some(ips1.1 - ips0.1);
    rec.reconcile_p50_s = during.quantile(0.5);
    rec.reconcile_p99_s = during.quantile(0.99);
    log(format!(
        "converged {converge:.1} s after the last create; CPU {:.1} s, RSS {:.0} MiB (peak {:.0})",
        s1.cpu_s - s0.cpu_s,
        s1.rss_mib,
        s1.hwm_mib
    ));

    // Idle.
    tokio::time::sleep(Duration::from_secs_f64(o.settle_s)).await;
    let (_, rec_i0) = reconcile_metrics(o.peer, &scrape(&o.metrics_url).await?);
    let si0 = sampler.now()?;
    let t_i0 = Timestamp::now();
    let idle_started = Instant::now();
    log(format!("idle for {} s", o.idle_s));
    while idle_started.elapsed().as_secs_f64() < o.idle_s {
        sampler.alive()?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let idle_min = idle_started.elapsed().as_secs_f64() / 60.0;
    let t_i1 = Timestamp::now();
    let si1 = sampler.now()?;
    let (_, rec_i1) = reconcile_metrics(o.peer, &scrape(&o.metrics_url).await?);
    rec.cpu_idle_s_per_min = Some((si1.cpu_s - si0.cpu_s) / idle_min);
    rec.rss_idle_mib = Some(si1.rss_mib);
    rec.idle_reconciles_per_min = Some((rec_i1 - rec_i0) / idle_min);

    // API requests, from the audit log (written: both windows are over), now
    // so that a later phase's failure keeps them.
    let conv = audit::count(&o.audit_log, &o.user, t_first, t_conv)?;
    let idle = audit::count(&o.audit_log, &o.user, t_i0, t_i1)?;
    rec.reads = Some(conv.reads);
    rec.writes = Some(conv.writes);
    rec.idle_reads_per_min = Some(idle.reads as f64 / idle_min);
    rec.idle_writes_per_min = Some(idle.writes as f64 / idle_min);
    rec.idle_lease_writes_per_min = Some(idle.lease_writes as f64 / idle_min);
    rec.idle_writes_by_kind = idle.writes_by_kind;
    rec.writes_by_kind = conv.writes_by_kind;
    log(format!(
        "requests to converge: {} reads, {} writes; idle per min: {:.0} reads, {:.1} writes",
        conv.reads,
        conv.writes,
        idle.reads as f64 / idle_min,
        idle.writes as f64 / idle_min
    ));

    // Outage fan-out: the database's endpoint goes not-ready, then comes back.
    if o.peer
        .dependency_up(
            servers
                .state()
                .first()
                .map(|x| x.as_ref())
                .context("no servers")?,
        )
        .is_some()
    {
        let t_f0 = Timestamp::now();
        set_db_ready(client, false).await?;
        let down = wait_for("fan-out (down)", timeout, &sampler, || {
            all(&|x| peer.dependency_up(x) == Some(false))
        })
        .await?;
        rec.fanout_s = Some(down);
        let fan = audit::count(&o.audit_log, &o.user, t_f0, Timestamp::now())?;
        log(format!(
            "outage reached all {n} in {down:.2} s; writes meanwhile: {:?}",
            fan.writes_by_kind
        ));
        rec.fanout_writes_by_kind = fan.writes_by_kind;
        set_db_ready(client, true).await?;
        let back = wait_for("fan-out (back)", timeout, &sampler, || {
            all(&|x| peer.dependency_up(x) == Some(true) && peer.converged(x))
        })
        .await?;
        rec.fanout_back_s = Some(back);
        log(format!("recovery reached all {n} in {back:.2} s"));
    }

    // A spec change to all N: time from the last patch until every Deployment has it.
    let patch = o.peer.image_patch(IMAGE_B);
    let t_p = Instant::now();
    stream::iter(0..o.n)
        .map(|i| {
            let (ns, name) = server(i, o.namespaces);
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
            let patch = patch.clone();
            async move {
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(o.concurrency)
        .try_collect::<()>()
        .await
        .context("patch")?;
    log(format!(
        "patched all in {:.1} s",
        t_p.elapsed().as_secs_f64()
    ));
    let rollout = wait_for("spec rollout", timeout, &sampler, || {
        deployments
            .state()
            .iter()
            .filter(|d| peer.deployment_runs(d, IMAGE_B))
            .count()
            >= n
    })
    .await?;
    rec.spec_rollout_s = Some(rollout);
    log(format!(
        "every Deployment updated {rollout:.1} s after the last patch"
    ));

    Ok(())
}

fn pod_condition(p: &Pod, type_: &str) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// How far the N servers and their 2N pods got, stage by stage.
#[derive(Debug, Default)]
struct Counts {
    deployments: usize,
    pods: usize,
    scheduled: usize,
    /// kwok's verdict (ContainersReady): what the simulated kubelet decided.
    containers_ready: usize,
    ready: usize,
    converged: usize,
}

impl Counts {
    fn take(
        servers: &[Arc<DynamicObject>],
        deployments: &[Arc<Deployment>],
        pods: &[Arc<Pod>],
        peer: Peer,
    ) -> Self {
        let mut c = Counts {
            deployments: deployments.len(),
            pods: pods.len(),
            converged: servers.iter().filter(|x| peer.converged(x)).count(),
            ..Default::default()
        };
        for p in pods {
            c.scheduled += usize::from(p.spec.as_ref().is_some_and(|s| s.node_name.is_some()));
            c.containers_ready += usize::from(pod_condition(p, "ContainersReady"));
            c.ready += usize::from(pod_condition(p, "Ready"));
        }
        c
    }
}

/// The first time each stage held for all, and a progress line every 15 s.
#[derive(Default)]
struct Pipeline {
    reached: Vec<(String, f64)>,
    last_log: f64,
}

impl Pipeline {
    fn see(&mut self, c: &Counts, n: usize, t: f64) {
        for (stage, count, of) in [
            ("Deployments created", c.deployments, n),
            ("pods created", c.pods, 2 * n),
            ("pods scheduled", c.scheduled, 2 * n),
            ("pods ContainersReady", c.containers_ready, 2 * n),
            ("pods Ready", c.ready, 2 * n),
            ("servers Ready", c.converged, n),
        ] {
            if count >= of && !self.reached.iter().any(|(s, _)| s == stage) {
                self.reached.push((stage.to_string(), t));
            }
        }
        if t - self.last_log >= 15.0 {
            self.last_log = t;
            log(format!(
                "{t:.0} s: {} Deployments, {} pods, {} scheduled, {} ContainersReady, {} Ready; {} of {n} servers converged",
                c.deployments, c.pods, c.scheduled, c.containers_ready, c.ready, c.converged
            ));
        }
    }
}

/// Delete every server and wait until they are gone (finalizers included).
/// One DELETE per server, `concurrency` at a time: a delete-collection of 300
/// servers outlasted the API server's request timeout at N = 3,000 (it closed
/// the connection, "connection closed before message completed", and each
/// retry started over). A request that fails is sent again until the deadline
/// (0.2 s per server, at least 300 s: a peer's finalizers clean up children
/// first); a server already gone counts as deleted.
async fn delete_all(client: &Client, o: &Opts) -> Result<()> {
    let ar = o.peer.resource();
    let t0 = Instant::now();
    let deadline = Duration::from_secs((o.n as u64 / 5).max(300));
    let names: Vec<(String, String)> = (0..o.n).map(|i| server(i, o.namespaces)).collect();
    stream::iter(names)
        .map(|(ns, name)| {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
            async move {
                loop {
                    match api.delete(&name, &DeleteParams::default()).await {
                        Ok(_) => return Ok(()),
                        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                        Err(e) if t0.elapsed() > deadline => {
                            return Err(e).context(format!("delete {ns}/{name}"))
                        }
                        Err(e) => {
                            log(format!("delete {ns}/{name}: {e}; again in 1 s"));
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }
        })
        .buffer_unordered(o.concurrency)
        .try_collect::<()>()
        .await?;
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    loop {
        match all.list_metadata(&ListParams::default().limit(1)).await {
            Ok(left) if left.items.is_empty() => return Ok(()),
            Ok(_) => {}
            Err(e) => log(format!("list after delete: {e}; again in 1 s")),
        }
        if t0.elapsed() > deadline {
            bail!(
                "servers still there {} s after deleting them",
                deadline.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
