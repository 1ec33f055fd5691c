//! mcp-e2e: the mcp-operator e2e suite, against the cluster in KUBECONFIG.
//!
//! Setup is the real user path: the CRDs and the operator from the Helm
//! chart, then Postgres (a StatefulSet on a PV) and a 3-replica McpServer of
//! the workload server. Every scenario disrupts something while open-loop MCP
//! load writes through the Service, then checks the client's numbers and the
//! operator's status and Events against asserted thresholds. Writes
//! report.json, report.md and timeline.svg; exits 1 if a check or threshold
//! failed, 2 if setup failed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use kube::Client;

mod cluster;
mod host;
mod load;
mod measure;
mod model;
mod report;
mod route;
mod run;
mod scenarios;
mod watch;

pub use cluster::Ctx;
use cluster::{log, manifest, repo_root, FRAGILE, NOTES, NS, OP_NS, OP_SEL, RELEASE};
use load::LoadFrom;
use model::{Meta, Report, Settings};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "mcp-e2e",
    about = "mcp-operator e2e suite (cluster in KUBECONFIG)"
)]
pub struct Opts {
    /// Comma-separated scenario ids (default: every scenario but SOAK)
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Report directory
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// S3: number of kills (its p95 needs at least 20)
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub repeat: u32,
    /// S19: number of kills of the database-in-readiness variant
    #[arg(long = "compare-repeat", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub compare_repeat: u32,
    /// SOAK: number of kills (S1 and S2 alternately)
    #[arg(long = "soak-runs", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub soak_runs: u32,
    /// Seconds of load before each disruption
    #[arg(long = "warmup-s", default_value_t = 4.0)]
    pub warmup_s: f64,
    /// S1-S3, S13-S15: seconds measured after each kill
    #[arg(long = "window-s", default_value_t = 15.0)]
    pub window_s: f64,
    /// S3, S19, SOAK: seconds measured after each of many kills (each still
    /// runs until at least 5 s after Postgres is ready)
    #[arg(long = "repeat-window-s", default_value_t = 8.0)]
    pub repeat_window_s: f64,
    /// S4/S6: seconds Postgres stays down
    #[arg(long = "outage-s", default_value_t = 20.0)]
    pub outage_s: f64,
    /// S4/S6: seconds measured after Postgres is back
    #[arg(long = "heal-window-s", default_value_t = 70.0)]
    pub heal_window_s: f64,
    /// S6: do not kill the operator a second time right after its first eviction
    #[arg(long = "no-s6-second-kill", action = clap::ArgAction::SetFalse)]
    pub s6_second_kill: bool,
    /// S5: seconds measured for the drain
    #[arg(long = "drain-window-s", default_value_t = 60.0)]
    pub drain_window_s: f64,
    /// S8: seconds measured for the rollout
    #[arg(long = "rollout-window-s", default_value_t = 100.0)]
    pub rollout_window_s: f64,
    /// S8: wait for the rollback at most this long
    #[arg(long = "rollback-timeout-s", default_value_t = 90.0)]
    pub rollback_timeout_s: f64,
    /// S17: seconds a node's network stays cut at most (it is healed as
    /// soon as the node is NotReady and the pool is back to full capacity)
    #[arg(long = "node-loss-s", default_value_t = 150.0)]
    pub node_loss_s: f64,
    /// S13: seconds Postgres is partitioned
    #[arg(long = "partition-s", default_value_t = 20.0)]
    pub partition_s: f64,
    /// Offered load, calls per second (open loop: sent on schedule whatever happened before)
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// MCP sessions the load is spread over
    #[arg(long, default_value_t = 4)]
    pub sessions: usize,
    /// Per-call timeout, seconds
    #[arg(long = "call-timeout-s", default_value_t = 5.0)]
    pub call_timeout_s: f64,
    /// Workaround: sessionAffinity ClientIP on the MCP Services (MCP sessions are per pod)
    #[arg(long = "session-affinity")]
    pub session_affinity: bool,
    /// Do not run helm (the operator is already installed)
    #[arg(long = "skip-install")]
    pub skip_install: bool,
    /// Roll the operator Deployment after install (images re-imported under the same tag)
    #[arg(long = "restart-operator")]
    pub restart_operator: bool,
    /// Reuse an existing Ready McpServer instead of recreating it
    #[arg(long = "keep-workloads")]
    pub keep_workloads: bool,
    /// Pull every image from this registry prefix (pushed there by
    /// `e2e/images/build.sh --push=REPO`): the operator's, and the manifests'
    /// `image: X` become `REPO/X`, pulled Always
    #[arg(long = "image-repository", env = "E2E_IMAGE_REPOSITORY")]
    pub image_repository: Option<String>,
    /// Where the MCP client runs: `host` (this process, through the Service's
    /// ClusterIP), `cluster` (a pod running mcp-loadclient, through the
    /// Service's DNS name: works on any cluster), `auto` (host when it reaches
    /// the ClusterIP)
    #[arg(long = "load-from", value_enum, default_value_t = LoadFrom::Auto, env = "E2E_LOAD_FROM")]
    pub load_from: LoadFrom,
    /// Extra helm --set (repeatable)
    #[arg(long = "helm-set")]
    pub helm_set: Vec<String>,
    /// The official MCP conformance suite's results (conformance.json from
    /// hack/conformance.sh), shown in the report when the file exists
    #[arg(long = "conformance-json", env = "E2E_CONFORMANCE_JSON")]
    pub conformance_json: Option<PathBuf>,
    /// Re-render report.md and timeline.svg from this report.json and exit
    #[arg(long)]
    pub render: Option<PathBuf>,
    /// Log every kubectl command
    #[arg(short, long)]
    pub verbose: bool,
}

fn find_tool(name: &str, env: &str) -> Result<String> {
    if let Ok(v) = std::env::var(env) {
        if !v.is_empty() {
            return Ok(v);
        }
    }
    if let Some(p) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
    {
        return Ok(p.to_string_lossy().into_owned());
    }
    bail!("{name} not found: set {env} or put it on PATH")
}

async fn setup(ctx: &Ctx) -> Result<()> {
    ctx.kubectl_t(&["get", "--raw", "/readyz"], Duration::from_secs(15))
        .await?;
    let chart = repo_root().join("charts/mcp-operator");
    if !ctx.opts.skip_install {
        log("installing the CRDs and the operator with Helm");
        ctx.helm_release(
            &["upgrade", "--install"],
            &chart,
            None,
            Duration::from_secs(300),
        )
        .await?;
        // Helm installs crds/ only on first install; keep them current on upgrades.
        let crds = chart.join("crds");
        ctx.kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &crds.to_string_lossy(),
        ])
        .await?;
    }
    if ctx.opts.restart_operator {
        log("restarting the operator (new image under the same tag)");
        let sel = format!("app.kubernetes.io/instance={RELEASE}");
        ctx.kubectl(&["rollout", "restart", "deployment", "-n", OP_NS, "-l", &sel])
            .await?;
        ctx.kubectl_t(
            &[
                "rollout",
                "status",
                "deployment",
                "-n",
                OP_NS,
                "-l",
                &sel,
                "--timeout=180s",
            ],
            Duration::from_secs(200),
        )
        .await?;
    }
    cluster::eventually(
        "operator pod ready",
        Duration::from_secs(180),
        Duration::from_secs(1),
        || async {
            Ok(ctx
                .pods(OP_NS, OP_SEL)
                .await?
                .values()
                .any(|p| p.ready)
                .then_some(()))
        },
    )
    .await?;
    log("deploying Postgres");
    for f in ["namespaces.yaml", "postgres.yaml", "db-secret.yaml"] {
        ctx.apply(&manifest(f)).await?;
    }
    ctx.kubectl_t(
        &[
            "rollout",
            "status",
            "statefulset/postgres",
            "-n",
            cluster::DB_NS,
            "--timeout=300s",
        ],
        Duration::from_secs(320),
    )
    .await?;
    ctx.wait_pg_ready(Duration::from_secs(180)).await?;
    scenarios::kill::clear_partitions();
    scenarios::node_loss::heal_cuts();
    // leftovers of an interrupted run
    for name in [FRAGILE, cluster::DEFAULTS, "bad-missing-secret"] {
        ctx.delete_mcps(name, Duration::from_secs(90)).await?;
    }
    if ctx.opts.keep_workloads && ctx.mcps(NOTES).await?.is_some() {
        ctx.apply(&manifest("mcpserver.yaml")).await?;
        ctx.wait_mcps_ready(NOTES, Duration::from_secs(180)).await?;
    } else {
        ctx.fresh_mcps(NOTES, &manifest("mcpserver.yaml")).await?;
    }
    let (url, mode) = ctx.endpoint(NOTES).await?;
    log(format!(
        "McpServer {NOTES} Ready in {NS}; MCP endpoint {url} (via {mode})"
    ));
    if ctx.opts.load_from == LoadFrom::Auto {
        ctx.set_load_in_cluster(mode != "clusterip");
    }
    log(if ctx.load_in_cluster() {
        "the load runs in a pod in the cluster (mcp-loadclient)"
    } else {
        "the load runs on the host"
    });
    Ok(())
}

async fn cluster_meta(client: &Client) -> Meta {
    let mut meta = Meta::default();
    if let Ok(v) = client.apiserver_version().await {
        meta.k8s_version = Some(v.git_version);
    }
    meta
}

async fn run(opts: Opts) -> Result<i32> {
    let out = opts.out.clone().unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"));
        target.join("e2e")
    });
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    if let Some(src) = &opts.render {
        let doc: Report = serde_json::from_slice(&std::fs::read(src)?)?;
        let dir = src.parent().map(PathBuf::from).unwrap_or_default();
        std::fs::write(dir.join("report.md"), report::markdown(&doc))?;
        std::fs::write(dir.join("timeline.svg"), report::svg(&doc))?;
        println!("{}", dir.join("report.md").display());
        return Ok(0);
    }
    let ids: Vec<String> = if opts.scenarios.is_empty() {
        scenarios::SCENARIOS
            .iter()
            .filter(|s| s.2)
            .map(|s| s.0.to_string())
            .collect()
    } else {
        opts.scenarios
            .iter()
            .map(|s| s.trim().to_uppercase())
            .filter(|s| !s.is_empty())
            .collect()
    };
    if let Some(bad) = ids.iter().find(|i| scenarios::name_of(i).is_none()) {
        bail!(
            "unknown scenario {bad}; known: {}",
            scenarios::SCENARIOS.map(|s| s.0).join(",")
        );
    }
    let mut config = kube::Config::infer()
        .await
        .context("no cluster: set KUBECONFIG")?;
    // kube's default client retries 429/503/504 by itself: an eviction the PDB
    // refuses would be retried until allowed, and S5 would never see the 429.
    // The suite's waits poll and tolerate errors instead.
    config.default_retry = false;
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config)?;
    let ctx = Ctx::new(
        client.clone(),
        find_tool("kubectl", "KUBECTL")?,
        find_tool("helm", "HELM")?,
        out.clone(),
        opts.clone(),
    );
    let started = Instant::now();
    let mut doc = Report {
        meta: cluster_meta(&client).await,
        settings: Settings {
            rate: opts.rate,
            sessions: opts.sessions,
            call_timeout_s: opts.call_timeout_s,
            warmup_s: opts.warmup_s,
            window_s: opts.window_s,
            repeat_window_s: opts.repeat_window_s,
            image_repository: opts.image_repository.clone(),
            ..Settings::default()
        },
        conformance: opts
            .conformance_json
            .as_deref()
            .and_then(model::Conformance::read),
        ..Report::default()
    };
    doc.meta.server = Some(server);
    doc.meta.session_affinity_workaround = opts.session_affinity;
    doc.meta.started = k8s_openapi::jiff::Timestamp::now().to_string();

    let set_up = setup(&ctx).await;
    doc.settings.load_from = Some(
        if ctx.load_in_cluster() {
            "cluster"
        } else {
            "host"
        }
        .into(),
    );
    if let Err(e) = set_up {
        log(format!("setup failed: {e:#}"));
        doc.setup_error = Some(format!("{e:#}"));
        doc.meta.duration_s = started.elapsed().as_secs_f64();
        let paths = report::write_all(&out, &doc)?;
        eprintln!("setup failed: {e:#}\nreport: {}", paths.json.display());
        ctx.close();
        return Ok(2);
    }
    for id in &ids {
        log(format!(
            "=== {id}: {}",
            scenarios::name_of(id).unwrap_or_default()
        ));
        let mut sc = scenarios::run_scenario(&ctx, id).await;
        if id == "S19" {
            if let Some(s3) = doc.scenarios.iter().find(|s| s.id == "S3") {
                scenarios::kill::compare_variants(s3, &mut sc);
            }
        }
        log(format!(
            "=== {id}: {} in {:.0} s",
            if sc.passed { "PASS" } else { "FAIL" },
            sc.duration_s
        ));
        for line in sc.failures() {
            log(format!("    {line}"));
        }
        doc.scenarios.push(sc);
        doc.settings.mcpservers = ctx.settings();
        doc.meta.duration_s = started.elapsed().as_secs_f64();
        doc.passed = doc.scenarios.iter().all(|s| s.passed);
        report::write_all(&out, &doc)?; // keep partial results
        scenarios::restore_baseline(&ctx).await;
    }
    ctx.close();
    doc.meta.duration_s = started.elapsed().as_secs_f64();
    doc.passed = !doc.scenarios.is_empty() && doc.scenarios.iter().all(|s| s.passed);
    let paths = report::write_all(&out, &doc)?;
    print!("{}", report::markdown(&doc));
    let (ok, bad) = doc.verdicts();
    println!("e2e checks: {ok} passed, {bad} failed");
    for sc in &doc.scenarios {
        for line in sc.failures() {
            println!("e2e {}: {line}", sc.id);
        }
    }
    println!(
        "report: {}\n        {}\n        {}",
        paths.json.display(),
        paths.md.display(),
        paths.svg.display()
    );
    Ok(if doc.passed { 0 } else { 1 })
}

#[tokio::main]
async fn main() {
    let opts = Opts::parse();
    let code = match run(opts).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcp-e2e: {e:#}");
            2
        }
    };
    std::process::exit(code);
}
