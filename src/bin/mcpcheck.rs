//! Runs the operator's MCP health check ([`mcp_operator::mcpcheck::Checker`])
//! once against a URL and prints the outcome: exit 0 when it passes, 1 when
//! it fails, 2 on bad arguments. The conformance suite's client scenarios run
//! it as their client (`hack/conformance.sh`); it also checks a server by hand
//! the way the operator would.
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mcp_operator::api::Transport;
use mcp_operator::mcpcheck::{Checker, Target};

#[derive(Parser, Debug)]
#[command(about = "One MCP health check, as the operator's prober makes it")]
struct Opts {
    /// The MCP endpoint, e.g. http://127.0.0.1:8080/mcp
    url: String,
    /// The 2024-11-05 HTTP+SSE transport instead of streamable HTTP
    #[arg(long)]
    sse: bool,
    /// `tools/list` as the request after the handshake (legacy: instead of `ping`)
    #[arg(long = "list-tools")]
    list_tools: bool,
    /// The whole check's deadline
    #[arg(long = "timeout-ms", default_value_t = 3000)]
    timeout_ms: u64,
}

/// `host:port` of an http(s) URL, for the prober's connect step.
fn addr_of(url: &str) -> Result<String, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {url}: {e}"))?;
    let host = u.host_str().ok_or_else(|| format!("no host in {url}"))?;
    let port = u
        .port_or_known_default()
        .ok_or_else(|| format!("no port in {url}"))?;
    // `host_str` keeps an IPv6 literal's brackets, as `host:port` wants them.
    Ok(format!("{host}:{port}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let opts = Opts::parse();
    let addr = match addr_of(&opts.url) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mcpcheck: {e}");
            return ExitCode::from(2);
        }
    };
    let checker = match Checker::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcpcheck: cannot build the HTTP client: {e}");
            return ExitCode::from(2);
        }
    };
    let target = Target {
        url: opts.url.clone(),
        addr,
        transport: if opts.sse {
            Transport::Sse
        } else {
            Transport::StreamableHttp
        },
        timeout: Duration::from_millis(opts.timeout_ms),
        list_tools: opts.list_tools,
    };
    let outcome = checker.check(&target).await;
    // A legacy session is closed (DELETE) by a detached task: give it the
    // moment it needs before the runtime goes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    match outcome {
        Ok(f) => {
            let opt = |v: &Option<String>| v.as_deref().unwrap_or("-").to_string();
            println!(
                "ok: era={} protocol={} server={} {} tools={}",
                f.era.label(),
                opt(&f.protocol_version),
                opt(&f.server_name),
                opt(&f.server_version),
                f.tools.map_or_else(|| "-".to_string(), |n| n.to_string()),
            );
            ExitCode::SUCCESS
        }
        Err(f) => {
            println!("fail: {}: {}", f.kind.reason(), f.detail);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::addr_of;

    #[test]
    fn the_connect_address_comes_from_the_url() {
        assert_eq!(
            addr_of("http://127.0.0.1:3000/mcp").as_deref(),
            Ok("127.0.0.1:3000")
        );
        assert_eq!(
            addr_of("http://localhost/mcp").as_deref(),
            Ok("localhost:80")
        );
        assert_eq!(addr_of("http://[::1]:9/").as_deref(), Ok("[::1]:9"));
        assert!(addr_of("not a url").is_err());
    }
}
