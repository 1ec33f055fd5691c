//! Wiring: logging, pool, HTTP server, signals, graceful shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, LogFormat, WorkloadMode};
use crate::eras::Eras;
use crate::health::{self, HealthState};
use crate::hosts::{self, HostPolicy};
use crate::metrics::Metrics;
use crate::pool::{Db, PoolSettings};
use crate::redact::{RedactingMakeWriter, Redactor};
use crate::tools::{InFlight, Shared, Workload};
use crate::wedge::{self, Wedge};

/// Exit code for configuration errors.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code for a port that cannot be bound.
pub const EXIT_BIND: i32 = 1;

/// Install the JSON (or text) log subscriber with credential redaction.
pub fn init_logging(format: LogFormat, redactor: Redactor) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let writer = RedactingMakeWriter::new(redactor);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true);
    let res = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    if let Err(e) = res {
        eprintln!("logging already initialised: {e}");
    }
}

async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "ctrl-c"
    }
}

/// rmcp's streamable-HTTP settings for `eras`. Host checks are ours
/// ([`hosts`]): rmcp's list cannot say "any IP literal".
pub fn streamable_http_config(eras: Eras, stop: CancellationToken) -> StreamableHttpServerConfig {
    StreamableHttpServerConfig::default()
        .with_cancellation_token(stop)
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .disable_allowed_hosts()
        // A 2026-only server keeps no sessions: every request is served
        // statelessly, so `initialize` and `ping` reach the handler (and its -32601).
        .with_legacy_session_mode(eras != Eras::Current)
}

/// The MCP endpoint at `path`: rmcp's streamable-HTTP service for
/// `shared.eras`, behind the wedge (innermost) and the Host/Origin check.
/// `stop` ends its sessions.
pub fn mcp_router(
    path: &str,
    shared: Arc<Shared>,
    hosts: HostPolicy,
    wedge: Arc<Wedge>,
    stop: CancellationToken,
) -> axum::Router {
    let config = streamable_http_config(shared.eras, stop);
    let service: StreamableHttpService<Workload, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(Workload::new(shared.clone())),
        Default::default(),
        config,
    );
    let service = tower::Layer::layer(
        &axum::middleware::from_fn_with_state(wedge, wedge::hang_when_wedged),
        service,
    );
    axum::Router::new()
        .nest_service(path, service)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(hosts),
            hosts::refuse_foreign,
        ))
}

/// Run the server until a signal; returns the process exit code.
pub async fn run(cfg: Config) -> i32 {
    let metrics = Arc::new(Metrics::new());
    let db = match Db::new(cfg.pg.clone(), PoolSettings::from(&cfg), metrics.clone()) {
        Ok(db) => db,
        Err(e) => {
            tracing::error!(event = "startup_failed", error = %e, "cannot build the connection pool");
            return EXIT_CONFIG;
        }
    };
    let addr = format!("{}:{}", cfg.bind_address, cfg.port);
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                format!(
                    "port {} is already in use on {}: stop the process using it (e.g. `ss -ltnp 'sport = :{}'`) or set PORT to a free port",
                    cfg.port, cfg.bind_address, cfg.port
                )
            } else {
                format!("cannot listen on {addr}: {e}; check PORT and BIND_ADDRESS")
            };
            tracing::error!(event = "bind_failed", port = cfg.port, error = %e, "{hint}");
            eprintln!("error: {hint}");
            return EXIT_BIND;
        }
    };
    let mode = cfg.mode.name();
    tracing::info!(
        event = "starting",
        listen = %addr,
        mcp_path = %cfg.mcp_path,
        database = %cfg.redacted_database_url(),
        pool_min = cfg.pool_min_size,
        pool_max = cfg.pool_max_size,
        pool_max_waiting = cfg.pool_max_waiting,
        acquire_timeout_ms = cfg.pool_acquire_timeout.as_millis() as u64,
        mode,
        eras = cfg.eras.name(),
        "mcp-workload-server starting"
    );

    let supervisor = tokio::spawn(db.clone().supervise());
    let inflight = Arc::new(InFlight::default());
    let shared = Arc::new(Shared {
        db: db.clone(),
        metrics: metrics.clone(),
        inflight: inflight.clone(),
        eras: cfg.eras,
    });
    let mcp_ct = CancellationToken::new();
    let shutting_down = Arc::new(AtomicBool::new(false));
    let health = HealthState::new(
        db.clone(),
        metrics.clone(),
        shutting_down.clone(),
        cfg.ready_cache,
        mode,
        cfg.readiness,
    );
    let wedge = Wedge::new(mcp_ct.child_token());
    if let WorkloadMode::WedgedAfter(after) = cfg.mode {
        tokio::spawn(
            wedge
                .clone()
                .arm(after, cfg.wedge_claim.clone(), db.clone()),
        );
    }
    let app = health::router(health).merge(mcp_router(
        &cfg.mcp_path,
        shared,
        cfg.hosts.clone(),
        wedge,
        mcp_ct.child_token(),
    ));

    let http_stop = CancellationToken::new();
    let server = tokio::spawn({
        let stop = http_stop.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        }
    });

    let signal = wait_for_signal().await;
    let started = Instant::now();
    let grace = cfg.shutdown_grace;
    tracing::info!(
        event = "shutdown_started",
        signal,
        inflight = inflight.count(),
        grace_ms = grace.as_millis() as u64,
        "stopping: no new connections, finishing in-flight calls"
    );
    shutting_down.store(true, Ordering::SeqCst);
    http_stop.cancel();
    // Leave a little of the grace period for closing sessions and the pool.
    let margin = Duration::from_millis(500).min(grace / 4);
    let drained = inflight.wait_idle(grace.saturating_sub(margin)).await;
    if !drained {
        tracing::warn!(
            event = "shutdown_inflight_abandoned",
            inflight = inflight.count(),
            "grace period over with calls still running"
        );
    }
    // A finished tool call still has its response to flush through the
    // session to the HTTP stream: give open connections up to 1 s to finish
    // on their own before closing the MCP sessions (which ends idle SSE streams).
    let mut server = server;
    let settle = Duration::from_secs(1).min(grace.saturating_sub(started.elapsed()));
    let early = tokio::time::timeout(settle, &mut server).await;
    mcp_ct.cancel();
    let remaining = grace.saturating_sub(started.elapsed());
    let finished = match early {
        Ok(res) => Ok(res),
        Err(_) => tokio::time::timeout(remaining, server).await,
    };
    match finished {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => {
            tracing::warn!(event = "http_server_error", error = %e, "HTTP server ended with an error")
        }
        Ok(Err(e)) => {
            tracing::warn!(event = "http_server_error", error = %e, "HTTP server task failed")
        }
        Err(_) => tracing::warn!(
            event = "shutdown_timeout",
            "connections still open at the end of the grace period"
        ),
    }
    db.close();
    supervisor.abort();
    tracing::info!(
        event = "shutdown_complete",
        elapsed_ms = started.elapsed().as_millis() as u64,
        drained,
        "bye"
    );
    0
}
