//! mcp-workload-bench: measures the workload server against the seed figures.
//!
//! Starts a throwaway Postgres (scripts/pg-throwaway.sh) and the real server,
//! then measures: pool acquire latency p95 (100 concurrent tasks, pool max 10,
//! in-process on the same pool code), /readyz p99 and req/s under 100
//! concurrent HTTP clients, put_note req/s under 100 concurrent MCP sessions,
//! and the time from Postgres accepting again (after `pg_ctl -m immediate`)
//! to the first successful tool call. Writes target/bench/workload.json and .md.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use mcp_workload::client::{now_ms, run, LoadOptions};
use mcp_workload::config::WorkloadMode;
use mcp_workload::metrics::Metrics;
use mcp_workload::pool::{Db, DbPhase, PoolSettings};
use mcp_workload::report::percentile;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(name = "mcp-workload-bench")]
struct Args {
    /// Concurrent clients for the throughput phases
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Seconds per throughput phase
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Offered rate of the put_note throughput phase (open loop, capped at
    /// --clients calls in flight; set it above what the server can serve)
    #[arg(long = "put-rate", default_value_t = 10_000.0)]
    put_rate: f64,
    /// Postgres restarts to measure
    #[arg(long, default_value_t = 3)]
    restarts: usize,
    /// Output directory (default: <workspace>/target/bench)
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Server binary (default: next to this binary)
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-throwaway.sh")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Pg {
    dir: PathBuf,
    url: String,
}

impl Pg {
    fn sh(&self, cmd: &str) -> anyhow::Result<()> {
        let st = Command::new(script())
            .args([cmd, &self.dir.to_string_lossy()])
            .status()?;
        anyhow::ensure!(st.success(), "pg-throwaway {cmd} failed");
        Ok(())
    }
    async fn resume_and_wait(&self) -> anyhow::Result<u64> {
        self.sh("resume")?;
        let cfg: tokio_postgres::Config = self.url.parse()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if cfg.connect(tokio_postgres::NoTls).await.is_ok() {
                return Ok(now_ms());
            }
            anyhow::ensure!(Instant::now() < deadline, "postgres did not come back");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", &self.dir.to_string_lossy()])
            .status();
    }
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn acquire_bench(url: &str, clients: usize, secs: f64) -> anyhow::Result<(f64, f64, u64)> {
    let metrics = Arc::new(Metrics::new());
    let settings = PoolSettings {
        min_size: 10,
        max_size: 10,
        acquire_timeout: Duration::from_secs(30),
        max_waiting: clients * 2,
        connect_timeout: Duration::from_secs(2),
        query_timeout: Duration::from_secs(30),
        reconnect_base: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(1000),
        mode: WorkloadMode::Normal,
    };
    let db = Db::new(url.parse()?, settings, metrics)?;
    let sup = tokio::spawn(db.clone().supervise());
    let t0 = Instant::now();
    while db.phase() != DbPhase::Up {
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(30), "pool never came up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < end {
                    let t = Instant::now();
                    if let Ok(c) = db.acquire().await {
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        let _ = c.simple_query("SELECT 1").await;
                    }
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    db.close();
    sup.abort();
    all.sort_by(f64::total_cmp);
    Ok((
        percentile(&all, 95.0),
        percentile(&all, 50.0),
        all.len() as u64,
    ))
}

async fn readyz_bench(
    base: &str,
    clients: usize,
    secs: f64,
    total_rate: Option<f64>,
) -> anyhow::Result<(f64, f64, u64, u64)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let http = http.clone();
            let url = format!("{base}/readyz");
            tokio::spawn(async move {
                let (mut lat, mut bad) = (Vec::new(), 0u64);
                // Open loop at total_rate/clients per client when a rate is given.
                let gap = total_rate.map(|r| Duration::from_secs_f64(clients as f64 / r));
                let mut next = Instant::now();
                while Instant::now() < end {
                    if let Some(g) = gap {
                        tokio::time::sleep_until(next.into()).await;
                        next += g;
                    }
                    let t = Instant::now();
                    match http.get(&url).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        }
                        _ => bad += 1,
                    }
                }
                (lat, bad)
            })
        })
        .collect();
    let (mut all, mut bad) = (Vec::new(), 0);
    for t in tasks {
        let (l, b) = t.await?;
        all.extend(l);
        bad += b;
    }
    let rps = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    Ok((percentile(&all, 99.0), rps, all.len() as u64, bad))
}

fn load_opts(url: &str, rate: f64, conc: usize, secs: f64, prefix: &str) -> LoadOptions {
    LoadOptions {
        url: url.to_string(),
        rate,
        concurrency: conc,
        duration: Duration::from_secs_f64(secs),
        key_prefix: prefix.to_string(),
        call_timeout: Duration::from_secs(10),
        verify_timeout: Duration::from_secs(60),
        bucket_ms: 1000,
        mark_file: None,
        since_ms: None,
        max_in_flight: None,
        verify_url: None,
        era: Default::default(),
    }
}

fn fmt_ok(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let out_dir = args.out_dir.clone().unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
            .join("bench")
    });
    std::fs::create_dir_all(&out_dir)?;
    let server_bin = match args.server_bin.clone() {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("mcp-workload-server"))
            .ok_or_else(|| anyhow::anyhow!("cannot locate mcp-workload-server"))?,
    };
    let pg_port = free_port()?;
    let dir = std::env::temp_dir().join(format!(
        "mcp-workload-bench-{}-{pg_port}",
        std::process::id()
    ));
    let out = Command::new(script())
        .args(["start", &dir.to_string_lossy(), &pg_port.to_string()])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "pg-throwaway start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("DATABASE_URL=").map(str::to_owned))
        .ok_or_else(|| anyhow::anyhow!("no DATABASE_URL from pg-throwaway"))?;
    let pg = Pg { dir, url };

    eprintln!(
        "[bench] acquire latency: {} tasks, pool max 10, {}s",
        args.clients, args.seconds
    );
    let (acq_p95, acq_p50, acq_n) = acquire_bench(&pg.url, args.clients, args.seconds).await?;

    let port = free_port()?;
    let server = Proc(
        Command::new(&server_bin)
            .env("DATABASE_URL", &pg.url)
            .env("PORT", port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("POOL_MIN_SIZE", "10")
            .env("POOL_MAX_SIZE", "10")
            .env("POOL_MAX_WAITING", "400")
            .env("RUST_LOG", "warn,mcp_workload=info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(30), "server not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    eprintln!(
        "[bench] /readyz: {} clients, {}s",
        args.clients, args.seconds
    );
    let (ready_p99, ready_rps, ready_n, ready_bad) =
        readyz_bench(&base, args.clients, args.seconds, None).await?;
    eprintln!(
        "[bench] /readyz: {} clients at 2000 req/s total, {}s",
        args.clients, args.seconds
    );
    let (paced_p99, paced_rps, _, paced_bad) =
        readyz_bench(&base, args.clients, args.seconds, Some(2000.0)).await?;

    eprintln!(
        "[bench] put_note: {} MCP sessions, {} calls in flight at most, {}/s offered, {}s",
        args.clients, args.clients, args.put_rate, args.seconds
    );
    let mcp_url = format!("{base}/mcp");
    // Saturation: the load client is open loop, so offer more than the server
    // can take and cap the calls in flight at --clients; slots due at the cap
    // are not sent (reported apart from the real errors).
    let mut put_opts = load_opts(&mcp_url, args.put_rate, args.clients, args.seconds, "bench");
    put_opts.max_in_flight = Some(args.clients.max(1));
    let load = run(put_opts).await;
    let put_rps = load.acknowledged as f64 / args.seconds;
    let mut put_errors = load.errors.clone();
    let put_not_sent = put_errors
        .remove(mcp_workload::openloop::NOT_SENT_IN_FLIGHT_CAP)
        .unwrap_or(0);

    let mut recoveries = Vec::new();
    let mut lost = load.lost_acked_writes;
    for i in 0..args.restarts {
        eprintln!("[bench] restart {}/{}", i + 1, args.restarts);
        let mark = pg.dir.join(format!("mark-{i}"));
        let mut opts = load_opts(&mcp_url, 100.0, 4, 7.0, &format!("restart{i}"));
        opts.mark_file = Some(mark.clone());
        let h = tokio::spawn(run(opts));
        tokio::time::sleep(Duration::from_secs(2)).await;
        pg.sh("kill")?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let accepted = pg.resume_and_wait().await?;
        std::fs::write(&mark, accepted.to_string())?;
        let r = h.await?;
        lost += r.lost_acked_writes + r.unverified_acked_writes;
        recoveries.push(r.first_success_after_s.unwrap_or(f64::INFINITY));
    }
    let metrics_text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    drop(server);
    let mut sorted = recoveries.clone();
    sorted.sort_by(f64::total_cmp);
    let rec_median = percentile(&sorted, 50.0);
    let rec_max = sorted.last().copied().unwrap_or(f64::INFINITY);
    let server_acquire_count = metrics_text
        .lines()
        .find(|l| l.starts_with("db_pool_acquire_seconds_count"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or("0")
        .to_string();

    let report: Value = json!({
        "generated_unix_ms": now_ms(),
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "clients": args.clients,
        "seconds_per_phase": args.seconds,
        "acquire_latency_ms": {"p95": acq_p95, "p50": acq_p50, "samples": acq_n, "pool_max": 10,
            "seed_target_p95": 10.0, "pass": acq_p95 < 10.0},
        "readyz": {"p99_ms": acq_fmt(ready_p99), "req_per_s": ready_rps, "requests": ready_n, "non_200": ready_bad,
            "seed_target_p99_ms": 10.0, "seed_target_req_per_s": 1000.0,
            "pass": ready_p99 < 10.0 && ready_rps > 1000.0,
            "paced_2000_rps": {"p99_ms": acq_fmt(paced_p99), "req_per_s": paced_rps, "non_200": paced_bad,
                "pass": paced_p99 < 10.0}},
        "put_note": {"req_per_s": put_rps, "acknowledged": load.acknowledged, "errors": put_errors,
            "offered": load.offered, "offered_per_s": args.put_rate, "max_in_flight": load.max_in_flight,
            "not_sent_in_flight_cap": put_not_sent,
            "latency_ms": load.latency_ms, "lost_acked_writes": load.lost_acked_writes},
        "reconnection": {"first_success_after_postgres_accepting_s": recoveries, "median_s": rec_median,
            "max_s": rec_max, "seed_measured_s": 4.2, "seed_target_s": 10.0, "our_goal_s": 1.5,
            "pass_goal": rec_max <= 1.5},
        "lost_acked_writes_total": lost,
        "server_acquire_observations": server_acquire_count,
    });
    let md = format!(
        "# mcp-workload benchmark\n\nBuild: {build}. {clients} concurrent clients, {secs} s per phase, {restarts} Postgres restarts (`pg_ctl -m immediate`).\n\n\
| metric | measured | seed figure / target | result |\n|---|---|---|---|\n\
| pool acquire latency p95 (100 tasks, pool max 10) | {acq_p95:.3} ms | < 10 ms | {a} |\n\
| /readyz p99 under {clients} closed-loop clients (CPU-saturated) | {ready_p99:.3} ms | < 10 ms | {b} |\n\
| /readyz throughput (closed loop, as fast as possible) | {ready_rps:.0} req/s | > 1000 req/s | {c} |\n\
| /readyz p99 at 2000 req/s offered by {clients} clients | {paced_p99:.3} ms ({paced_rps:.0} req/s served) | < 10 ms | {f} |\n\
| put_note throughput ({clients} MCP sessions, {clients} calls in flight) | {put_rps:.0} req/s | (no seed figure) | - |\n\
| reconnection: Postgres accepting -> first successful tool call | median {rec_median:.3} s, max {rec_max:.3} s | seed 4.2 s (target < 10 s); our goal <= 1.5 s | {d} |\n\
| acknowledged writes lost | {lost} | 0 | {e} |\n\n\
Per restart (s): {recoveries:?}\n",
        build = if cfg!(debug_assertions) { "debug" } else { "release" },
        clients = args.clients,
        secs = args.seconds,
        restarts = args.restarts,
        a = fmt_ok(acq_p95 < 10.0),
        b = fmt_ok(ready_p99 < 10.0),
        c = fmt_ok(ready_rps > 1000.0),
        d = fmt_ok(rec_max <= 1.5),
        e = fmt_ok(lost == 0),
        f = fmt_ok(paced_p99 < 10.0),
    );
    std::fs::write(
        out_dir.join("workload.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(out_dir.join("workload.md"), &md)?;
    println!("{md}");
    eprintln!("[bench] wrote {}/workload.{{json,md}}", out_dir.display());
    Ok(())
}

fn acq_fmt(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
