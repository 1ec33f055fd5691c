//! mcp-loadclient: an open-loop load of put_note calls through a pool of real
//! MCP sessions (call k is sent at start + k/rate, whatever happened to earlier
//! calls), then a read-back of every acknowledged write. Prints the JSON report
//! (see README) and writes it to --out.
//! With --events it prints instead `{"report":…,"events":[…]}` cut into lines
//! `mcp-load-result <i>/<n> <piece>` (runtimes split long log lines),
//! for a caller that runs it elsewhere (the e2e suite's load from inside the
//! cluster). With --control-port it answers `GET /stop` (stop offering calls,
//! verify, report) on that port; SIGTERM does the same.
//! Exit code: 0 ok, 3 acknowledged writes lost, 4 some could not be verified, 2 bad flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use mcp_workload::client::{now_ms, result_lines, run_until, ClientEra, LoadOptions, LoadResult};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "mcp-loadclient",
    about = "MCP load and verify client for the mcp-workload server"
)]
struct Args {
    /// MCP endpoint, e.g. http://127.0.0.1:8080/mcp
    #[arg(long, env = "MCP_URL")]
    url: String,
    /// Protocol era: `2026` (2026-07-28: server/discover, then stateless
    /// requests) or `legacy` (initialize, then Mcp-Session-Id sessions)
    #[arg(long, env = "MCP_CLIENT_ERA", default_value = "2026", value_parser = parse_era)]
    era: ClientEra,
    /// Offered put_note calls per second (open loop: the schedule never waits
    /// for earlier calls)
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// MCP sessions in the pool; calls are assigned round-robin
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Most calls in flight at once; a call due at the cap is not sent and
    /// counts as an error `not_sent_in_flight_cap` (default: rate × call timeout)
    #[arg(long = "max-in-flight")]
    max_in_flight: Option<usize>,
    /// How long to offer calls, in seconds
    #[arg(long = "duration-s", default_value_t = 30.0)]
    duration_s: f64,
    /// Prefix of the unique keys (default: lc-<unix-ms>)
    #[arg(long = "key-prefix")]
    key_prefix: Option<String>,
    /// Write the JSON report to this file as well as stdout
    #[arg(long)]
    out: Option<PathBuf>,
    /// File with unix-ms timestamps (one per line) of instants of interest,
    /// e.g. written by the e2e suite when Postgres accepts again; read at the end
    #[arg(long = "mark-file")]
    mark_file: Option<PathBuf>,
    /// An instant of interest as unix ms (alternative to --mark-file)
    #[arg(long)]
    since: Option<u64>,
    /// Per-call timeout in seconds
    #[arg(long = "call-timeout-s", default_value_t = 10.0)]
    call_timeout_s: f64,
    /// How long the read-back may keep retrying, in seconds
    #[arg(long = "verify-timeout-s", default_value_t = 60.0)]
    verify_timeout_s: f64,
    /// Timeline bucket width in milliseconds
    #[arg(long = "bucket-ms", default_value_t = 1000)]
    bucket_ms: u64,
    /// Do not print the report to stdout
    #[arg(long)]
    quiet: bool,
    /// Print the report and every call's event as one line (see above)
    #[arg(long)]
    events: bool,
    /// Answer GET /stop on this port (0.0.0.0): stop offering calls early
    #[arg(long = "control-port")]
    control_port: Option<u16>,
}

/// Stop on SIGTERM, and on `GET /stop` when a control port is given.
async fn stop_on_request(port: Option<u16>, stop: CancellationToken) {
    let term = stop.clone();
    tokio::spawn(async move {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            eprintln!("SIGTERM: stopping the load");
            term.cancel();
        }
    });
    let Some(port) = port else { return };
    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on port {port}: {e}");
            std::process::exit(2);
        }
    };
    let on_stop = stop.clone();
    let app = axum::Router::new().route(
        "/stop",
        axum::routing::get(move || {
            let stop = on_stop.clone();
            async move {
                stop.cancel();
                "stopping\n"
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("control port: {e}");
        }
    });
}

fn parse_era(v: &str) -> Result<ClientEra, String> {
    ClientEra::parse(v).ok_or_else(|| format!("{v:?}: expected \"2026\" or \"legacy\""))
}

fn secs(name: &str, v: f64) -> Duration {
    if !v.is_finite() || v < 0.0 {
        eprintln!("error: --{name} must be a non-negative number of seconds");
        std::process::exit(2);
    }
    Duration::from_secs_f64(v)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if !(args.rate.is_finite() && args.rate > 0.0) || args.concurrency == 0 {
        eprintln!("error: --rate must be > 0 and --concurrency >= 1");
        std::process::exit(2);
    }
    if args.max_in_flight == Some(0) {
        eprintln!("error: --max-in-flight must be >= 1");
        std::process::exit(2);
    }
    let opts = LoadOptions {
        url: args.url,
        rate: args.rate,
        concurrency: args.concurrency,
        duration: secs("duration-s", args.duration_s),
        key_prefix: args
            .key_prefix
            .unwrap_or_else(|| format!("lc-{}", now_ms())),
        call_timeout: secs("call-timeout-s", args.call_timeout_s),
        verify_timeout: secs("verify-timeout-s", args.verify_timeout_s),
        bucket_ms: args.bucket_ms.max(1),
        mark_file: args.mark_file,
        since_ms: args.since,
        max_in_flight: args.max_in_flight,
        verify_url: None,
        era: args.era,
    };
    let stop = CancellationToken::new();
    stop_on_request(args.control_port, stop.clone()).await;
    let (report, events) = run_until(opts, stop).await;
    if args.events {
        let result = LoadResult {
            report: report.clone(),
            events,
        };
        match serde_json::to_string(&result) {
            Ok(json) => {
                for line in result_lines(&json) {
                    println!("{line}");
                }
            }
            Err(e) => {
                eprintln!("error: cannot encode the result: {e}");
                std::process::exit(1);
            }
        }
    }
    let text = match serde_json::to_string_pretty(&report) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot encode report: {e}");
            std::process::exit(1);
        }
    };
    if let Some(out) = &args.out {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(out, &text) {
            eprintln!("error: cannot write {}: {e}", out.display());
            std::process::exit(1);
        }
    }
    if !args.quiet && !args.events {
        println!("{text}");
    }
    eprintln!(
        "era={} offered={} calls={} acknowledged={} errors={} session_losses={} longest_outage_s={:.3} first_success_after_s={:?} lost_acked_writes={} unverified={}",
        report.era,
        report.offered,
        report.calls,
        report.acknowledged,
        report.errors_total,
        report.session_losses,
        report.longest_outage_s,
        report.first_success_after_s,
        report.lost_acked_writes,
        report.unverified_acked_writes
    );
    let code = if report.lost_acked_writes > 0 {
        3
    } else if report.unverified_acked_writes > 0 {
        4
    } else {
        0
    };
    std::process::exit(code);
}
