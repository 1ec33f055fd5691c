//! The operator process: flags, logging, HTTP endpoints, leader election, controllers.
use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Api, Client};
use mcp_operator::controller;
use mcp_operator::leader::{self, LeaseConfig};
use mcp_operator::telemetry::{http, logging, metrics::Metrics};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(
    name = "mcp-operator",
    version,
    about = "Keeps MCP servers serving through database restarts, wedged pools, bad rollouts and drains"
)]
struct Args {
    /// Namespaces to watch, comma-separated; empty means all.
    #[arg(
        long,
        env = "WATCH_NAMESPACES",
        default_value = "",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// json or text
    #[arg(long, env = "LOG_FORMAT", default_value = "json", value_parser = ["json", "text"])]
    log_format: String,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: String,
    #[arg(long, env = "LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set)]
    leader_election: bool,
    #[arg(long, env = "LEASE_NAME", default_value = "mcp-operator-leader")]
    lease_name: String,
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    #[arg(long, env = "POD_NAME", default_value = "")]
    identity: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Err(e) = logging::init(&args.log_level, &args.log_format) {
        eprintln!("mcp-operator: {e}");
        return std::process::ExitCode::from(2);
    }
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %mcp_operator::redact::redact(&format!("{e:#}")), "operator stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(&args.http_addr)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} ({e}); set --http-addr/HTTP_ADDR to a free address",
                args.http_addr
            )
        })?;
    let router = http::router(http::HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    });

    // One shutdown signal fans out to the HTTP server, the lease holder and every controller.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; finishing in-flight reconciles");
        let _ = stop_tx.send(true);
    });
    let mut http_stop = stop_rx.clone();
    let http_task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await;
    });

    let client = Client::try_default()
        .await
        .map_err(|e| anyhow::anyhow!("cannot build a Kubernetes client: {e}"))?;
    let identity = if args.identity.is_empty() {
        format!("mcp-operator-{}", std::process::id())
    } else {
        args.identity.clone()
    };

    let leases: Api<Lease> = Api::namespaced(client.clone(), &args.lease_namespace);
    let lease_cfg = LeaseConfig {
        name: args.lease_name.clone(),
        identity: identity.clone(),
        lease_duration: Duration::from_secs(15),
        retry_period: Duration::from_secs(3),
    };
    // Ready means "client built and serving HTTP": a standby replica is ready too, or
    // rollouts and drains of the operator itself would stall behind the lease.
    ready.store(true, Ordering::Relaxed);
    if args.leader_election {
        let mut s = stop_rx.clone();
        tokio::select! {
            _ = leader::acquire(&leases, &lease_cfg) => {}
            _ = s.wait_for(|s| *s) => { let _ = http_task.await; return Ok(()); }
        }
    }
    metrics.leader.set(1);

    let reporter = Reporter {
        controller: "mcp-operator".into(),
        instance: Some(identity),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let namespaces: Vec<Option<String>> = {
        let ns: Vec<String> = args
            .namespaces
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if ns.is_empty() {
            vec![None]
        } else {
            ns.into_iter().map(Some).collect()
        }
    };
    tracing::info!(namespaces = ?namespaces, leader_election = args.leader_election, "starting controllers");

    // Losing the lease stops the controllers exactly like a signal would.
    let (ctl_tx, ctl_rx) = watch::channel(false);
    let mut sig = stop_rx.clone();
    let lost = Arc::new(AtomicBool::new(false));
    let lost2 = lost.clone();
    let elect = args.leader_election;
    let hold_leases = leases.clone();
    let hold_cfg = lease_cfg.clone();
    tokio::spawn(async move {
        let (leases, lease_cfg) = (hold_leases, hold_cfg);
        if elect {
            tokio::select! {
                _ = leader::hold(&leases, &lease_cfg) => { lost2.store(true, Ordering::Relaxed); }
                _ = sig.wait_for(|s| *s) => {}
            }
        } else {
            let _ = sig.wait_for(|s| *s).await;
        }
        let _ = ctl_tx.send(true);
    });
    let runs = namespaces.into_iter().map(|ns| {
        let mut rx = ctl_rx.clone();
        controller::run(
            client.clone(),
            recorder.clone(),
            metrics.clone(),
            ns,
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
        )
    });
    futures::future::join_all(runs).await;
    metrics.leader.set(0);
    ready.store(false, Ordering::Relaxed);
    if lost.load(Ordering::Relaxed) {
        // Exit non-zero so the kubelet restarts us as a follower; never keep reconciling without the lease.
        anyhow::bail!("leadership lost");
    }
    if args.leader_election {
        if let Err(e) = leader::release(&leases, &lease_cfg).await {
            tracing::warn!(error = %e, "could not release the lease; a standby takes over when it expires");
        }
    }
    let _ = http_task.await;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
