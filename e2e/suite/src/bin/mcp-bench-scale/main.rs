//! mcp-bench-scale: N servers on a simulated cluster (kwok nodes, real control
//! plane), one operator at a time, measured from outside the operator: time to
//! converge, the process's CPU and memory from /proc, its API requests from the
//! API server's audit log, its reconcile latency from its own metrics, the
//! time a database outage takes to reach every server's status, and the time
//! a spec change takes to reach every Deployment.
//!
//! `run` measures one operator at one N (it starts the operator command given
//! after `--` and stops it after its servers are deleted); `report` renders
//! every run into report.json and report.md and checks the thresholds.
//! bench/scale/run.sh sets up the cluster and calls both.

mod audit;
mod peers;
mod procstat;
mod promtext;
mod report;
mod run;

use anyhow::Result;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "mcp-bench-scale", about = "scale benchmark of MCP operators")]
enum Cmd {
    /// Measure one operator at one N (the cluster in KUBECONFIG)
    Run(Box<run::Opts>),
    /// Render every run into report.json and report.md; check the thresholds
    Report(report::Opts),
}

#[tokio::main]
async fn main() {
    let res: Result<bool> = match Cmd::parse() {
        Cmd::Run(o) => run::run(*o).await.map(|()| true),
        Cmd::Report(o) => report::report(&o),
    };
    match res {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("mcp-bench-scale: {e:#}");
            std::process::exit(2);
        }
    }
}
