//! The operator process: flags, logging, HTTP endpoints, leader election, controllers.
use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::SignedDuration;
use kube::{Api, Config};
use mcp_operator::apiclient;
use mcp_operator::controller;
use mcp_operator::leader::{self, Elector, Fence, LeaseConfig};
use mcp_operator::telemetry::{health::Health, http, logging, metrics::Metrics};
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
    /// Address of /metrics, /healthz and /readyz (all interfaces: the kubelet
    /// and Prometheus reach the pod IP).
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: String,
    #[arg(long, env = "LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set)]
    leader_election: bool,
    #[arg(long, env = "LEASE_NAME", default_value = "mcp-operator-leader")]
    lease_name: String,
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Lease holder identity, unique per replica; empty: HOSTNAME (the pod
    /// name in Kubernetes); with neither, leader election refuses to start.
    #[arg(long, env = "POD_NAME", default_value = "")]
    identity: String,
    /// A standby takes the lease after seeing it unchanged this long.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    lease_duration_seconds: u64,
    /// The leader stops writing when no renew succeeded for this long.
    #[arg(long, env = "LEASE_RENEW_DEADLINE_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    lease_renew_deadline_seconds: u64,
    #[arg(long, env = "LEASE_RETRY_PERIOD_SECONDS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    lease_retry_period_seconds: u64,
    /// Reconciles in flight at once (per watched namespace). Bounds the
    /// operator's memory and its load on the API server when many McpServers
    /// change at once (a start, a database outage, a spec change to all).
    #[arg(long, env = "MAX_CONCURRENT_RECONCILES", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_reconciles: u16,
    /// Where an McpServer's database may be: `own-namespace` (database.service
    /// and database.probe.host must name a Service of the McpServer's own
    /// namespace), `any`, or `auto` (own-namespace when --namespaces is set).
    #[arg(long, env = "DEPENDENCY_SCOPE", default_value = "auto")]
    dependency_scope: controller::dependency::DependencyScope,
    /// Every API request must be answered (headers) within this many seconds.
    #[arg(long, env = "API_REQUEST_TIMEOUT_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    api_request_timeout_seconds: u64,
    /// Tests only: shift the wall clock used for Lease times (the election
    /// never reads it; the clock-skew test proves that).
    #[arg(
        long,
        env = "TEST_WALL_CLOCK_OFFSET_SECONDS",
        default_value_t = 0,
        hide = true
    )]
    test_wall_clock_offset_seconds: i64,
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

/// The holder identity and lease settings, checked before anything starts.
fn lease_config(args: &Args, hostname: Option<&str>) -> anyhow::Result<(String, LeaseConfig)> {
    let identity = match leader::identity(Some(&args.identity), hostname) {
        Ok(id) => id,
        Err(e) if args.leader_election => anyhow::bail!("leader election: {e}"),
        // Without election the identity only names this replica in user agents and Events.
        Err(_) => "mcp-operator".to_string(),
    };
    let cfg = LeaseConfig {
        lease_duration: Duration::from_secs(args.lease_duration_seconds),
        renew_deadline: Duration::from_secs(args.lease_renew_deadline_seconds),
        retry_period: Duration::from_secs(args.lease_retry_period_seconds),
        wall_clock_offset: SignedDuration::from_secs(args.test_wall_clock_offset_seconds),
        ..LeaseConfig::new(args.lease_name.clone(), identity.clone())
    };
    if args.leader_election {
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("leader election: {e}"))?;
    }
    Ok((identity, cfg))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (identity, lease_cfg) = lease_config(&args, std::env::var("HOSTNAME").ok().as_deref())?;
    let metrics = Arc::new(Metrics::default());
    metrics.preset(
        &controller::error::Error::METRIC_LABELS,
        &mcp_operator::remediation::reason::ACTION_LABELS,
    );
    let health = Arc::new(Health::default());
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
        health: health.clone(),
    });

    // One shutdown signal fans out to the HTTP server, the lease holder and every controller.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; finishing in-flight reconciles");
        let _ = stop_tx.send(true);
    });
    let mut http_stop = stop_rx.clone();
    let http_task = tokio::spawn(http::serve(
        listener,
        router,
        http::Limits::default(),
        async move {
            let _ = http_stop.wait_for(|s| *s).await;
        },
    ));

    // Without election this replica always may write; with it, only while its
    // lease is within the renew deadline.
    let fence = if args.leader_election {
        Fence::closed()
    } else {
        Fence::open()
    };
    let config = Config::infer()
        .await
        .map_err(|e| anyhow::anyhow!("cannot build a Kubernetes client: {e}"))?;
    let request_timeout = Duration::from_secs(args.api_request_timeout_seconds);
    let client = apiclient::build(
        config.clone(),
        &identity,
        request_timeout,
        Some(fence.clone()),
    )
    .map_err(|e| anyhow::anyhow!("cannot build a Kubernetes client: {e}"))?;
    // The Lease has its own client: its writes are the ones that open the fence.
    let lease_client = apiclient::build(config, &identity, lease_cfg.renew_deadline, None)
        .map_err(|e| anyhow::anyhow!("cannot build a Kubernetes client: {e}"))?;
    let leases: Api<Lease> = Api::namespaced(lease_client, &args.lease_namespace);
    let mut elector = Elector::new(leases, lease_cfg, fence.clone());

    // Ready once the API server answered; a standby is ready too, or rollouts
    // and drains of the operator itself would stall behind the lease.
    let ready_task = tokio::spawn({
        let (client, health) = (client.clone(), health.clone());
        async move {
            apiclient::wait_until_answered(&client, Duration::from_secs(1)).await;
            health.set_ready(true);
        }
    });

    let recorder = controller::events::recorder(client.clone(), Some(identity));
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

    // Each term: wait for the lease, reconcile until it is lost or a signal
    // comes. A lost lease closes the fence first (no write leaves this replica
    // after its renew deadline), then the controllers stop and the replica
    // goes back to standing by, without a restart.
    loop {
        if args.leader_election {
            let mut s = stop_rx.clone();
            tokio::select! {
                _ = elector.acquire() => {}
                _ = s.wait_for(|s| *s) => break,
            }
            metrics.leader_transitions.inc();
        }
        metrics.leader.set(1);
        tracing::info!(namespaces = ?namespaces, leader_election = args.leader_election, "starting controllers");
        // `ctl` stops the controllers (a signal, or a lost lease); `drained`
        // says they are done. On a signal the lease is renewed until then, so
        // their last writes pass the fence and no standby starts beside them.
        let (ctl_tx, ctl_rx) = watch::channel(false);
        let (drained_tx, drained_rx) = watch::channel(false);
        let elect = args.leader_election;
        let term = tokio::spawn({
            let (mut sig, ctl) = (stop_rx.clone(), ctl_tx.clone());
            let (mut drained, mut drained_after_loss) = (drained_rx.clone(), drained_rx.clone());
            async move {
                let until_drained = async move {
                    let _ = sig.wait_for(|s| *s).await;
                    let _ = ctl.send(true);
                    let _ = drained.wait_for(|d| *d).await;
                };
                let lost = if elect {
                    elector.hold_until(until_drained).await
                } else {
                    until_drained.await;
                    None
                };
                if lost.is_some() {
                    let _ = ctl_tx.send(true);
                    let _ = drained_after_loss.wait_for(|d| *d).await;
                }
                (elector, lost)
            }
        });
        let mut watched = vec![health.watch("leader elector", &term, Some(drained_rx))];
        let mut runs = Vec::new();
        for ns in namespaces.iter().cloned() {
            let mut rx = ctl_rx.clone();
            let run = tokio::spawn(controller::run(
                client.clone(),
                recorder.clone(),
                metrics.clone(),
                health.clone(),
                controller::Scope {
                    namespace: ns,
                    concurrency: args.max_concurrent_reconciles,
                    dependency_scope: args.dependency_scope,
                },
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                },
            ));
            watched.push(health.watch("controller", &run, Some(ctl_rx.clone())));
            runs.push(run);
        }
        let died = futures::future::join_all(runs)
            .await
            .into_iter()
            .filter(Result::is_err)
            .count();
        let _ = drained_tx.send(true);
        metrics.leader.set(0);
        metrics.forget_objects();
        let (back, lost) = term
            .await
            .map_err(|e| anyhow::anyhow!("lease task failed: {e}"))?;
        drop(watched);
        elector = back;
        if died > 0 {
            if args.leader_election {
                let _ = elector.release().await;
            }
            anyhow::bail!("{died} controller task(s) failed");
        }
        match lost {
            Some(why) => tracing::warn!(reason = ?why, "leadership lost; standing by"),
            None => {
                if args.leader_election {
                    if let Err(e) = elector.release().await {
                        tracing::warn!(error = %e, "could not release the lease; a standby takes over when it expires");
                    }
                }
                break;
            }
        }
    }
    ready_task.abort();
    health.set_ready(false);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(flags: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("mcp-operator").chain(flags.iter().copied()))
    }

    #[test]
    fn zero_durations_are_refused_at_parse() {
        for flag in [
            "--lease-retry-period-seconds=0",
            "--lease-renew-deadline-seconds=0",
            "--lease-duration-seconds=0",
            "--api-request-timeout-seconds=0",
        ] {
            assert!(args(&[flag]).is_err(), "{flag} was accepted");
        }
    }

    #[test]
    fn inconsistent_lease_timings_are_refused_with_a_message() {
        let cases = [
            (&["--lease-retry-period-seconds=10"][..], "retry period"),
            (&["--lease-renew-deadline-seconds=15"][..], "renew deadline"),
            (
                &[
                    "--lease-duration-seconds=5",
                    "--lease-renew-deadline-seconds=8",
                ][..],
                "renew deadline",
            ),
        ];
        for (flags, want) in cases {
            let mut all = vec!["--leader-election=true", "--identity=a"];
            all.extend_from_slice(flags);
            let Ok(a) = args(&all) else {
                panic!("{flags:?} did not parse");
            };
            let err = lease_config(&a, None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(want), "{flags:?}: {err}");
        }
    }

    #[test]
    fn leader_election_needs_a_unique_identity() {
        let Ok(a) = args(&["--leader-election=true", "--identity="]) else {
            panic!("did not parse");
        };
        let err = lease_config(&a, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("POD_NAME"), "{err}");
        assert_eq!(
            lease_config(&a, Some("op-7d9-x"))
                .ok()
                .map(|(id, _)| id)
                .as_deref(),
            Some("op-7d9-x")
        );
        let Ok(no_election) = args(&["--identity="]) else {
            panic!("did not parse");
        };
        let id = lease_config(&no_election, None).ok().map(|(id, _)| id);
        assert_eq!(id.as_deref(), Some("mcp-operator"), "never a PID");
    }
}
