//! mcp-workload-server: see e2e/workload/README.md for the environment interface.

use mcp_workload::config::Config;
use mcp_workload::redact::Redactor;
use mcp_workload::server::{init_logging, run, EXIT_CONFIG};

fn main() {
    let cfg = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            // Logging is not set up yet; the message is already redacted.
            let line = serde_json::json!({
                "level": "ERROR",
                "event": "invalid_configuration",
                "variable": e.var,
                "message": e.to_string(),
            });
            println!("{line}");
            eprintln!("error: {e}");
            std::process::exit(EXIT_CONFIG);
        }
    };
    init_logging(cfg.log_format, Redactor::new(cfg.db_password.clone()));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(run(cfg));
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    std::process::exit(code);
}
