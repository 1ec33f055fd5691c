//! Server configuration from environment variables.
//!
//! Parsing is a pure function of a variable lookup so it can be unit-tested;
//! every error names the variable, shows the (redacted) value and says what is
//! accepted. The server exits with code 2 on any of them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::eras::Eras;
use crate::hosts::HostPolicy;
use crate::redact::{percent_decode, redact_credentials};

/// How the server reacts to losing its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadMode {
    /// Reconnect with backoff and serve again as soon as the database is back.
    Normal,
    /// Once the database connection is lost, never recover (only a restart heals it).
    Fragile,
    /// As `Normal` with the database, but after this long the MCP layer stops
    /// answering while `/healthz` and `/readyz` still pass (see `wedge`).
    WedgedAfter(Duration),
}

impl WorkloadMode {
    /// The name logged and shown by `/readyz`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Fragile => "fragile",
            Self::WedgedAfter(_) => "wedged-after",
        }
    }
}

/// What `/readyz` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// "Can this process serve MCP": ready through a database outage every
    /// server shares (tool calls answer with a retry-after error meanwhile);
    /// unready when its own pool cannot get a connection while the database
    /// accepts fresh ones. The default.
    Process,
    /// The database is part of readiness: unready whenever the pool cannot get
    /// a connection (the classic probe; every pod leaves the Service together
    /// in a shared outage).
    Database,
}

impl Readiness {
    pub fn name(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Database => "database",
        }
    }
}

/// Validated server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The PostgreSQL connection string (contains the secret; never log it raw).
    pub database_url: String,
    /// Parsed form of `database_url`.
    pub pg: tokio_postgres::Config,
    /// Password parsed from the URL, for log scrubbing.
    pub db_password: Option<String>,
    pub pool_min_size: usize,
    pub pool_max_size: usize,
    pub pool_acquire_timeout: Duration,
    /// Bound of the wait queue for a connection; past it calls fail at once.
    pub pool_max_waiting: usize,
    pub db_connect_timeout: Duration,
    pub query_timeout: Duration,
    pub reconnect_base: Duration,
    pub reconnect_max: Duration,
    pub bind_address: String,
    pub port: u16,
    pub mcp_path: String,
    pub shutdown_grace: Duration,
    pub mode: WorkloadMode,
    /// `WEDGE_CLAIM`: with `wedged-after`, only the server that claims this key
    /// first in the database wedges.
    pub wedge_claim: Option<String>,
    /// `MCP_ALLOWED_HOSTS`: which `Host`/`Origin` values the MCP endpoint
    /// serves (DNS-rebinding protection, see `hosts`).
    pub hosts: HostPolicy,
    /// `MCP_ERAS`: which MCP protocol eras the server answers.
    pub eras: Eras,
    pub ready_cache: Duration,
    /// `READINESS`: what `/readyz` answers.
    pub readiness: Readiness,
    pub log_format: LogFormat,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// A configuration error naming the offending variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub var: &'static str,
    pub value: Option<String>,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(
                f,
                "invalid environment variable {}={:?}: {}",
                self.var,
                redact_credentials(v),
                self.problem
            ),
            None => write!(
                f,
                "missing environment variable {}: {}",
                self.var, self.problem
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

fn err(var: &'static str, value: Option<&str>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        value: value.map(str::to_owned),
        problem: problem.into(),
    }
}

fn parse_num<T: FromStr + PartialOrd + fmt::Display + Copy>(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    match lookup(var) {
        None => Ok(default),
        Some(raw) => {
            let t = raw.trim();
            let v: T = t.parse().map_err(|_| {
                err(
                    var,
                    Some(&raw),
                    format!("expected a number between {min} and {max}"),
                )
            })?;
            if v < min || v > max {
                return Err(err(
                    var,
                    Some(&raw),
                    format!("must be between {min} and {max}"),
                ));
            }
            Ok(v)
        }
    }
}

fn parse_secs(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: f64,
    min: f64,
    max: f64,
) -> Result<Duration, ConfigError> {
    let v = parse_num(lookup, var, default, min, max)?;
    if !v.is_finite() {
        return Err(err(
            var,
            lookup(var).as_deref(),
            "must be a finite number of seconds",
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Extract the password from a `postgres://user:pw@host` URL, if any.
pub fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let userinfo = &authority[..authority.rfind('@')?];
    let pw = userinfo.split_once(':')?.1;
    (!pw.is_empty()).then(|| percent_decode(pw))
}

impl Config {
    /// Read the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Read the configuration through `lookup` (variable name -> value).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let database_url = lookup("DATABASE_URL")
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                err(
                    "DATABASE_URL",
                    None,
                    "set it to a PostgreSQL URL such as postgres://user:password@host:5432/dbname",
                )
            })?;
        let pg = tokio_postgres::Config::from_str(database_url.trim()).map_err(|e| {
            err(
                "DATABASE_URL",
                Some(&database_url),
                format!(
                    "not a valid PostgreSQL connection string ({}); expected postgres://user:password@host:5432/dbname",
                    redact_credentials(&e.to_string())
                ),
            )
        })?;
        if pg.get_hosts().is_empty() {
            return Err(err(
                "DATABASE_URL",
                Some(&database_url),
                "no host given; expected postgres://user:password@host:5432/dbname",
            ));
        }
        let db_password = pg
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .or_else(|| url_password(&database_url));

        let pool_max_size = parse_num(lookup, "POOL_MAX_SIZE", 10usize, 1, 1000)?;
        let pool_min_size = parse_num(lookup, "POOL_MIN_SIZE", 2usize.min(pool_max_size), 0, 1000)?;
        if pool_min_size > pool_max_size {
            return Err(err(
                "POOL_MIN_SIZE",
                lookup("POOL_MIN_SIZE").as_deref(),
                format!("must not exceed POOL_MAX_SIZE ({pool_max_size})"),
            ));
        }
        let pool_acquire_timeout =
            parse_secs(lookup, "POOL_ACQUIRE_TIMEOUT_SECONDS", 30.0, 0.001, 3600.0)?;
        let pool_max_waiting =
            parse_num(lookup, "POOL_MAX_WAITING", pool_max_size * 4, 0, 100_000)?;
        let db_connect_timeout =
            parse_secs(lookup, "DB_CONNECT_TIMEOUT_SECONDS", 2.0, 0.05, 300.0)?;
        let query_timeout = parse_secs(lookup, "QUERY_TIMEOUT_SECONDS", 30.0, 0.05, 3600.0)?;
        let reconnect_base = Duration::from_millis(parse_num(
            lookup,
            "RECONNECT_BACKOFF_BASE_MS",
            50u64,
            1,
            60_000,
        )?);
        let reconnect_max = Duration::from_millis(parse_num(
            lookup,
            "RECONNECT_BACKOFF_MAX_MS",
            1000u64,
            1,
            600_000,
        )?);
        let port = parse_num(lookup, "PORT", 8080u16, 1, 65535)?;
        let bind_address = lookup("BIND_ADDRESS").unwrap_or_else(|| "0.0.0.0".to_string());
        if bind_address.parse::<std::net::IpAddr>().is_err() {
            return Err(err(
                "BIND_ADDRESS",
                Some(&bind_address),
                "expected an IP address such as 0.0.0.0 or 127.0.0.1",
            ));
        }
        let mcp_path = lookup("MCP_PATH").unwrap_or_else(|| "/mcp".to_string());
        if !mcp_path.starts_with('/')
            || mcp_path.len() < 2
            || matches!(mcp_path.as_str(), "/healthz" | "/readyz" | "/metrics")
        {
            return Err(err(
                "MCP_PATH",
                Some(&mcp_path),
                "must start with '/', not be '/' alone, and not clash with /healthz, /readyz or /metrics",
            ));
        }
        let shutdown_grace = parse_secs(lookup, "SHUTDOWN_GRACE_SECONDS", 20.0, 0.0, 3600.0)?;
        let mode = match lookup("WORKLOAD_MODE").as_deref().map(str::trim) {
            None | Some("") | Some("normal") => WorkloadMode::Normal,
            Some("fragile") => WorkloadMode::Fragile,
            Some(other) => match other.strip_prefix("wedged-after=").map(str::parse::<f64>) {
                Some(Ok(s)) if s.is_finite() && (0.0..=86400.0).contains(&s) => {
                    WorkloadMode::WedgedAfter(Duration::from_secs_f64(s))
                }
                _ => return Err(err(
                    "WORKLOAD_MODE",
                    Some(other),
                    "expected \"normal\", \"fragile\" or \"wedged-after=<seconds>\" (0 to 86400)",
                )),
            },
        };
        let wedge_claim = lookup("WEDGE_CLAIM")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let hosts = HostPolicy::from_setting(lookup("MCP_ALLOWED_HOSTS").as_deref());
        let eras = match lookup("MCP_ERAS") {
            None => Eras::default(),
            Some(raw) => Eras::parse(&raw).ok_or_else(|| {
                err(
                    "MCP_ERAS",
                    Some(&raw),
                    "expected \"both\" (the default), \"2026\" (server/discover and stateless requests only) or \"legacy\" (initialize and sessions only)",
                )
            })?,
        };
        let ready_cache =
            Duration::from_millis(parse_num(lookup, "READY_CACHE_MS", 1000u64, 0, 1000)?);
        let readiness = match lookup("READINESS").as_deref().map(str::trim) {
            None | Some("") | Some("process") => Readiness::Process,
            Some("database") => Readiness::Database,
            Some(other) => {
                return Err(err(
                    "READINESS",
                    Some(other),
                    "expected \"process\" or \"database\"",
                ))
            }
        };
        let log_format = match lookup("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("") | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(err(
                    "LOG_FORMAT",
                    Some(other),
                    "expected \"json\" or \"text\"",
                ))
            }
        };
        Ok(Self {
            database_url,
            pg,
            db_password,
            pool_min_size,
            pool_max_size,
            pool_acquire_timeout,
            pool_max_waiting,
            db_connect_timeout,
            query_timeout,
            reconnect_base,
            reconnect_max,
            bind_address,
            port,
            mcp_path,
            shutdown_grace,
            mode,
            wedge_claim,
            hosts,
            eras,
            ready_cache,
            readiness,
            log_format,
        })
    }

    /// The database URL with its password masked.
    pub fn redacted_database_url(&self) -> String {
        redact_credentials(&self.database_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(&move |k| map.get(k).cloned())
    }

    const URL: &str = "postgres://app:hunter22@db.example:5432/notes";

    #[test]
    fn defaults() {
        let c = parse(&[("DATABASE_URL", URL)]).expect("valid");
        assert_eq!(c.pool_min_size, 2);
        assert_eq!(c.pool_max_size, 10);
        assert_eq!(c.pool_acquire_timeout, Duration::from_secs(30));
        assert_eq!(c.pool_max_waiting, 40);
        assert_eq!(c.port, 8080);
        assert_eq!(c.mcp_path, "/mcp");
        assert_eq!(c.shutdown_grace, Duration::from_secs(20));
        assert_eq!(c.mode, WorkloadMode::Normal);
        assert_eq!(c.reconnect_max, Duration::from_millis(1000));
        assert_eq!(c.db_password.as_deref(), Some("hunter22"));
        assert_eq!(c.hosts, HostPolicy::default());
        assert_eq!(c.eras, Eras::Both);
        assert_eq!(
            c.redacted_database_url(),
            "postgres://app:***@db.example:5432/notes"
        );
    }

    #[test]
    fn missing_database_url_names_variable() {
        let e = parse(&[]).expect_err("must fail");
        assert_eq!(e.var, "DATABASE_URL");
        assert!(e.to_string().contains("DATABASE_URL"));
    }

    #[test]
    fn bad_database_url_is_redacted_in_message() {
        let e =
            parse(&[("DATABASE_URL", "postgres://app:hunter22@db:notaport/x")]).expect_err("bad");
        assert_eq!(e.var, "DATABASE_URL");
        let msg = e.to_string();
        assert!(!msg.contains("hunter22"), "{msg}");
        assert!(msg.contains("app:***@"), "{msg}");
    }

    #[test]
    fn pool_values_are_validated() {
        for (var, val) in [
            ("POOL_MAX_SIZE", "0"),
            ("POOL_MAX_SIZE", "ten"),
            ("POOL_MIN_SIZE", "-1"),
            ("POOL_ACQUIRE_TIMEOUT_SECONDS", "0"),
            ("POOL_ACQUIRE_TIMEOUT_SECONDS", "abc"),
            ("PORT", "70000"),
            ("SHUTDOWN_GRACE_SECONDS", "NaN"),
            ("WORKLOAD_MODE", "brittle"),
            ("WORKLOAD_MODE", "wedged-after=-1"),
            ("WORKLOAD_MODE", "wedged-after=soon"),
            ("MCP_PATH", "mcp"),
            ("MCP_ERAS", "2025"),
        ] {
            let e = parse(&[("DATABASE_URL", URL), (var, val)]).expect_err(var);
            assert_eq!(e.var, var, "{e}");
            assert!(e.to_string().contains(var));
        }
    }

    #[test]
    fn min_above_max_is_rejected_naming_min() {
        let e = parse(&[
            ("DATABASE_URL", URL),
            ("POOL_MIN_SIZE", "5"),
            ("POOL_MAX_SIZE", "3"),
        ])
        .expect_err("min > max");
        assert_eq!(e.var, "POOL_MIN_SIZE");
        assert!(e.to_string().contains("POOL_MAX_SIZE"));
    }

    #[test]
    fn wedged_mode() {
        let c = parse(&[
            ("DATABASE_URL", URL),
            ("WORKLOAD_MODE", "wedged-after=2.5"),
            ("WEDGE_CLAIM", " run-1 "),
        ])
        .expect("valid");
        assert_eq!(
            c.mode,
            WorkloadMode::WedgedAfter(Duration::from_millis(2500))
        );
        assert_eq!(c.wedge_claim.as_deref(), Some("run-1"));
    }

    #[test]
    fn explicit_values() {
        let c = parse(&[
            ("DATABASE_URL", "host=localhost user=u password=pw dbname=d"),
            ("POOL_MIN_SIZE", "1"),
            ("POOL_MAX_SIZE", "3"),
            ("POOL_ACQUIRE_TIMEOUT_SECONDS", "0.5"),
            ("WORKLOAD_MODE", "fragile"),
            ("MCP_ALLOWED_HOSTS", "svc.ns, localhost"),
            ("MCP_ERAS", "2026"),
            ("PORT", "9000"),
        ])
        .expect("valid");
        assert_eq!(c.pool_max_size, 3);
        assert_eq!(c.pool_max_waiting, 12);
        assert_eq!(c.pool_acquire_timeout, Duration::from_millis(500));
        assert_eq!(c.mode, WorkloadMode::Fragile);
        assert_eq!(c.wedge_claim, None);
        assert_eq!(c.db_password.as_deref(), Some("pw"));
        assert_eq!(
            c.hosts,
            HostPolicy::Checked {
                extra: vec!["svc.ns".to_string(), "localhost".to_string()]
            }
        );
        assert_eq!(c.eras, Eras::Current);
    }

    #[test]
    fn small_max_lowers_default_min() {
        let c = parse(&[("DATABASE_URL", URL), ("POOL_MAX_SIZE", "1")]).expect("valid");
        assert_eq!(c.pool_min_size, 1);
    }

    #[test]
    fn url_password_extraction() {
        assert_eq!(
            url_password("postgres://u:p%40ss@h/db").as_deref(),
            Some("p@ss")
        );
        assert_eq!(url_password("postgres://u@h/db"), None);
        assert_eq!(url_password("host=h"), None);
    }
}
