//! Test harness: throwaway Postgres clusters (via scripts/pg-throwaway.sh),
//! the real server binary, and real rmcp client sessions.
//!
//! Every test creates its own cluster in its own temp directory on its own
//! port and deletes it afterwards; nothing else is touched. Without
//! PostgreSQL binaries the tests are skipped with a loud message, unless
//! `MCP_REQUIRE_PG=1`, in which case they fail.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_mcp-workload-server");
pub const CLIENT_BIN: &str = env!("CARGO_BIN_EXE_mcp-loadclient");

pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-throwaway.sh")
}

pub fn pg_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PG_BIN") {
        let p = PathBuf::from(p);
        if p.join("initdb").exists() {
            return Some(p);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

/// `Some(bin)` when Postgres is available; `None` (skip) otherwise, or a panic
/// under `MCP_REQUIRE_PG=1`.
pub fn require_pg(test: &str) -> Option<PathBuf> {
    match pg_bin() {
        Some(b) => Some(b),
        None => {
            if std::env::var("MCP_REQUIRE_PG").as_deref() == Ok("1") {
                panic!("{test}: MCP_REQUIRE_PG=1 but no PostgreSQL binaries found (set PG_BIN or install postgresql-15)");
            }
            eprintln!("\n\n*** SKIPPING {test}: no PostgreSQL binaries (set PG_BIN; MCP_REQUIRE_PG=1 makes this fatal) ***\n");
            None
        }
    }
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind ephemeral port");
    l.local_addr().expect("local addr").port()
}

pub struct PgCluster {
    pub dir: PathBuf,
    pub port: u16,
    pub url: String,
    pub password: String,
}

impl PgCluster {
    pub fn start(name: &str) -> PgCluster {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "mcp-workload-test-{name}-{}-{port}",
            std::process::id()
        ));
        let password = format!("pw{}x{}Zq", std::process::id(), port);
        let out = Command::new(script())
            .args(["start", dir.to_str().expect("utf8 dir"), &port.to_string()])
            .env("PG_THROWAWAY_PASSWORD", &password)
            .output()
            .expect("run pg-throwaway.sh");
        assert!(
            out.status.success(),
            "pg-throwaway start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let url = stdout
            .lines()
            .find_map(|l| l.strip_prefix("DATABASE_URL="))
            .expect("DATABASE_URL printed")
            .trim()
            .to_string();
        PgCluster {
            dir,
            port,
            url,
            password,
        }
    }

    fn run(&self, cmd: &str) {
        let out = Command::new(script())
            .args([cmd, self.dir.to_str().expect("utf8 dir")])
            .output()
            .expect("run pg-throwaway.sh");
        assert!(
            out.status.success(),
            "pg-throwaway {cmd} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// pg_ctl stop -m immediate.
    pub fn kill(&self) {
        self.run("kill");
    }

    /// Start again and return the instant (and unix ms) Postgres accepted a login.
    pub async fn resume_and_wait(&self) -> (Instant, u64) {
        self.run("resume");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let cfg: tokio_postgres::Config = self.url.parse().expect("url");
            if let Ok((_c, conn)) = cfg.connect(tokio_postgres::NoTls).await {
                drop(conn);
                return (Instant::now(), mcp_workload::client::now_ms());
            }
            assert!(Instant::now() < deadline, "postgres did not come back");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", self.dir.to_str().unwrap_or("/nonexistent")])
            .output();
    }
}

pub struct Server {
    pub child: Child,
    pub port: u16,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn spawn(db_url: &str, extra: &[(&str, &str)]) -> Server {
        let port = free_port();
        Self::spawn_on(db_url, port, extra)
    }

    pub fn spawn_on(db_url: &str, port: u16, extra: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(SERVER_BIN);
        cmd.env_clear()
            .env("DATABASE_URL", db_url)
            .env("PORT", port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env(
                "RUST_LOG",
                "debug,hyper=info,h2=info,reqwest=info,tokio_postgres=info",
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn server");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(mut g) = lines.lock() {
                        g.push(line);
                    }
                }
            });
        }
        Server { child, port, lines }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base())
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        match reqwest::Client::new()
            .get(format!("{}{path}", self.base()))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(r) => {
                let code = r.status().as_u16();
                (code, r.text().await.unwrap_or_default())
            }
            Err(_) => (0, String::new()),
        }
    }

    pub async fn wait_status(&self, path: &str, want: u16, limit: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self.get(path).await.0 == want {
                return Some(t0.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Wait until `/readyz` says "ready": 200 and serving from the database
    /// (a 200 "degraded" is ready for the Service but not serving).
    pub async fn wait_ready(&self) {
        assert!(
            self.wait_serving(Duration::from_secs(30)).await.is_some(),
            "server never became ready; logs:\n{}",
            self.logs().join("\n")
        );
    }

    /// How long until `/readyz` answers 200 with `"status":"ready"`.
    pub async fn wait_serving(&self, limit: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            let (code, body) = self.get("/readyz").await;
            if code == 200 && body.contains("\"status\":\"ready\"") {
                return Some(t0.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub fn logs(&self) -> Vec<String> {
        self.lines.lock().map(|g| g.clone()).unwrap_or_default()
    }

    pub fn sigterm(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
