//! Prints the McpServer CRD as YAML; `crds/` and the chart's copy must equal this output.
use kube::CustomResourceExt;

fn main() -> std::process::ExitCode {
    match serde_yaml::to_string(&mcp_operator::api::McpServer::crd()) {
        Ok(y) => {
            print!("{y}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crdgen: cannot serialise the CRD: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
