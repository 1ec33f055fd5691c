//! S17: a node lost. The network of a node holding MCP pods (not Postgres's)
//! is cut on this host (its veth down) for longer than the node-monitor grace
//! period, with the host's client pinned to a pod there. The operator's MCP
//! checks find that pod unreachable while its siblings answer and evict it
//! after `health.mcp.unhealthyAfterSeconds`, before the node controller marks
//! the node NotReady (grace 50 s) and the taint manager evicts after the
//! pods' toleration. The operator must neither evict in a storm nor hold the
//! pool below capacity; measured: time to full capacity elsewhere, and the
//! calls that failed.

use std::process::Command as StdCommand;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use kube::api::EvictParams;
use serde_json::json;

use crate::cluster::{
    eventually, log, server_sel, Ctx, DB_NS, DESIRED, NOTES, NS, OP_NS, OP_SEL, PG_SEL,
};
use crate::measure as m;
use crate::model::{Mark, Scenario, Threshold};
use crate::run::{measured_run_with, Disruption, LoadVia};
use mcp_workload::client::now_ms;
use mcp_workload::eras::ClientEra;

/// Full capacity on the other nodes within this many seconds of the cut: the
/// later bound, node-monitor grace period (50 s, upstream default) + the pods'
/// not-ready/unreachable toleration (10 s in the e2e McpServer) + a start.
pub const S17_CAPACITY_S: f64 = 90.0;

/// The host end of a local-cluster node's link (e2e/cluster/local/nodes.sh):
/// node `mcp-e2e-node-K` has veth `mcpnK`.
fn link_of(node: &str) -> Option<String> {
    let k = node.strip_prefix("mcp-e2e-node-")?;
    k.parse::<u8>().ok().map(|k| format!("mcpn{k}"))
}

fn ip_link(args: &[&str]) -> Result<()> {
    let out = StdCommand::new("ip").arg("link").args(args).output()?;
    if !out.status.success() {
        bail!(
            "ip link {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn link_exists(link: &str) -> bool {
    ip_link(&["show", link]).is_ok()
}

/// The node's link is down while this lives.
struct Cut {
    link: String,
}

impl Cut {
    fn start(link: &str) -> Result<Self> {
        ip_link(&["set", link, "down"])?;
        Ok(Cut {
            link: link.to_string(),
        })
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        if let Err(e) = ip_link(&["set", &self.link, "up"]) {
            log(format!(
                "warning: could not bring {} back up: {e:#}",
                self.link
            ));
        }
    }
}

/// Bring links an interrupted run left down back up.
pub fn heal_cuts() {
    for k in 2..10 {
        let link = format!("mcpn{k}");
        if link_exists(&link) {
            let _ = ip_link(&["set", &link, "up"]);
        }
    }
}

/// The host's kube-proxy keeps a Service's ClientIP affinity in one xt_recent
/// list per endpoint chain. Pin this host's calls to `pod_ip` by putting this
/// host's address in that endpoint's list only, so the client's pod is the one
/// on the lost node: the worst case for it, not the luck of the draw.
fn pin_client(cluster_ip: &str, pod_ip: &str) -> Result<()> {
    let route = StdCommand::new("ip")
        .args(["-o", "route", "get", cluster_ip])
        .output()?;
    let route = String::from_utf8_lossy(&route.stdout);
    let src = route
        .split_whitespace()
        .skip_while(|w| *w != "src")
        .nth(1)
        .ok_or_else(|| anyhow!("no source address toward {cluster_ip}: {route}"))?
        .to_string();
    let chains = endpoint_chains()?;
    if !chains.iter().any(|(_, ip)| ip == pod_ip) {
        bail!("no kube-proxy endpoint chain of {NS}/{NOTES} for {pod_ip}: {chains:?}");
    }
    for (chain, ip) in &chains {
        let sign = if ip == pod_ip { '+' } else { '-' };
        // Removing an address that is not in a list fails; that is fine.
        let _ = std::fs::write(
            format!("/proc/net/xt_recent/{chain}"),
            format!("{sign}{src}\n"),
        );
    }
    Ok(())
}

/// kube-proxy's endpoint chains of the `notes` Service on this host, with
/// the pod address each leads to.
fn endpoint_chains() -> Result<Vec<(String, String)>> {
    let save = StdCommand::new("iptables-save")
        .args(["-t", "nat"])
        .output()?;
    let comment = format!("\"{NS}/{NOTES}:");
    Ok(String::from_utf8_lossy(&save.stdout)
        .lines()
        .filter(|l| l.starts_with("-A KUBE-SEP-") && l.contains(&comment))
        .filter_map(|l| {
            let chain = l.split_whitespace().nth(1)?.to_string();
            let dest = l.split("--to-destination ").nth(1)?;
            let ip = dest.split(':').next()?.to_string();
            Some((chain, ip))
        })
        .collect())
}

/// kube-proxy keeps ClientIP affinity in one xt_recent list per endpoint
/// chain; the lists exist once it has programmed the affinity.
fn affinity_programmed() -> bool {
    endpoint_chains().is_ok_and(|c| {
        !c.is_empty()
            && c.iter().all(|(chain, _)| {
                std::path::Path::new(&format!("/proc/net/xt_recent/{chain}")).exists()
            })
    })
}

/// The pods the host's established connections to `cluster_ip:port` go to
/// (the reply source of each conntrack entry).
fn client_backends(cluster_ip: &str, port: &str) -> Vec<String> {
    let Ok(out) = StdCommand::new("conntrack")
        .args([
            "-L",
            "-p",
            "tcp",
            "--orig-dst",
            cluster_ip,
            "--dport",
            port,
            "--state",
            "ESTABLISHED",
        ])
        .output()
    else {
        return Vec::new();
    };
    let mut ips: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.strip_prefix("src="))
                .nth(1)
                .map(String::from)
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// Pods of `NOTES` per node.
async fn on_node(ctx: &Ctx, node: &str) -> Result<usize> {
    Ok(ctx
        .pod_nodes(NS, &server_sel(NOTES))
        .await?
        .values()
        .filter(|n| *n == node)
        .count())
}

/// Make sure `node` holds a pod of `NOTES`: evict one from elsewhere (the PDB
/// allows one at a time) and let the scheduler's spread place its
/// replacement, at most three times.
pub async fn ensure_pod_on(ctx: &Ctx, node: &str) -> Result<()> {
    let sel = server_sel(NOTES);
    for _ in 0..3 {
        if on_node(ctx, node).await? > 0 {
            return Ok(());
        }
        let pods = ctx.pod_nodes(NS, &sel).await?;
        let Some(pod) = pods.keys().next() else {
            bail!("{NOTES} has no pods");
        };
        log(format!(
            "S17: no {NOTES} pod on {node}; evicting {pod} so one lands there"
        ));
        ctx.pods_api(NS).evict(pod, &EvictParams::default()).await?;
        // Until the evicted pod is gone, not only its replacement Ready: a
        // measured run that starts with it would see it disappear.
        eventually(
            &format!("{pod} gone and {DESIRED} ready pods of {NOTES}"),
            Duration::from_secs(90),
            Duration::from_millis(500),
            || async {
                let pods = ctx.pods(NS, &sel).await?;
                Ok((!pods.contains_key(pod)
                    && pods.len() == DESIRED
                    && m::pods_ready(&pods, DESIRED))
                .then_some(()))
            },
        )
        .await?;
    }
    if on_node(ctx, node).await? == 0 {
        bail!("could not get a {NOTES} pod onto {node}");
    }
    Ok(())
}

pub async fn s17(ctx: &Ctx) -> Result<Scenario> {
    ctx.wait_pg_ready(Duration::from_secs(180)).await?;
    ctx.wait_mcps_ready(NOTES, Duration::from_secs(120)).await?;
    // The pin below is kube-proxy's ClientIP affinity; the operator gives a
    // stateless (2026-07-28) server none, so ask for it.
    set_affinity(ctx, Some("ClientIP")).await?;
    let res = s17_pinned(ctx).await;
    if let Err(e) = set_affinity(ctx, None).await {
        log(format!("S17: sessionAffinity not reset: {e:#}"));
    }
    res
}

/// Sets (or clears) `spec.sessionAffinity` of the McpServer and waits until
/// its Service has the affinity that follows.
async fn set_affinity(ctx: &Ctx, affinity: Option<&str>) -> Result<()> {
    crate::scenarios::patch_spec(ctx, json!({ "sessionAffinity": affinity })).await?;
    let Some(want) = affinity else { return Ok(()) };
    let svcs: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(ctx.client.clone(), NS);
    crate::cluster::eventually(
        "the Service's sessionAffinity",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let svc = svcs.get(NOTES).await?;
            let now = svc.spec.and_then(|s| s.session_affinity);
            // The Service says so before kube-proxy has acted on it.
            Ok((now.as_deref() == Some(want) && affinity_programmed()).then_some(()))
        },
    )
    .await
}

async fn s17_pinned(ctx: &Ctx) -> Result<Scenario> {
    let pg_node = ctx
        .pod_nodes(DB_NS, PG_SEL)
        .await?
        .into_values()
        .next()
        .ok_or_else(|| anyhow!("the Postgres pod is on no node"))?;
    let nodes = ctx.schedulable_nodes().await?;
    let (victim, link) = nodes
        .iter()
        .filter(|n| **n != pg_node)
        .find_map(|n| link_of(n).filter(|l| link_exists(l)).map(|l| (n.clone(), l)))
        .ok_or_else(|| {
            anyhow!("S17 needs a second node of the local cluster (NODES=2): no node but {pg_node} (Postgres) has a link on this host; nodes: {nodes:?}")
        })?;
    ensure_pod_on(ctx, &victim).await?;
    let sel = server_sel(NOTES);
    let before = ctx.pod_nodes(NS, &sel).await?;
    // The host's client sticks to one pod (ClientIP affinity): make it one of
    // the lost node's.
    let (url, _) = ctx.endpoint(NOTES).await?;
    let (hostport, path) = url
        .trim_start_matches("http://")
        .split_once('/')
        .unwrap_or((url.trim_start_matches("http://"), "mcp"));
    let (cluster_ip, port) = hostport
        .split_once(':')
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .ok_or_else(|| anyhow!("the MCP endpoint {url} has no host:port"))?;
    let pods = ctx
        .pods_api(NS)
        .list(&kube::api::ListParams::default().labels(&sel))
        .await?;
    let pod_named = |name: &str| {
        pods.items
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
    };
    let ip_of = |name: &str| pod_named(name).and_then(|p| p.status.as_ref()?.pod_ip.clone());
    let pinned = before
        .iter()
        .find(|(_, n)| **n == victim)
        .and_then(|(p, _)| ip_of(p).map(|ip| (p.clone(), ip)));
    let pinned = match pinned {
        Some((pod, ip)) => match pin_client(&cluster_ip, &ip) {
            Ok(()) => Some((pod, ip)),
            Err(e) => {
                log(format!("S17: could not pin the client to {pod}: {e:#}"));
                None
            }
        },
        None => None,
    };
    // The writes are read back through a pod on a node that stays: the
    // host's path to the Service is the one this scenario pinned to the lost
    // node, and the read-back is not what S17 measures.
    let verify_url = before
        .iter()
        .filter(|(_, n)| **n != victim)
        .find_map(|(p, _)| {
            let pod = pod_named(p)?;
            let ip = pod.status.as_ref()?.pod_ip.as_ref()?;
            let port = pod
                .spec
                .as_ref()?
                .containers
                .first()?
                .ports
                .as_ref()?
                .first()?
                .container_port;
            Some(format!("http://{ip}:{port}/{path}"))
        });
    let on_victim = before.values().filter(|n| **n == victim).count();
    let operator_nodes = ctx.pod_nodes(OP_NS, OP_SEL).await?;
    log(format!(
        "S17: cutting {victim} ({link}): {on_victim} of {} {NOTES} pods there; Postgres on {pg_node}; operator pods {operator_nodes:?}",
        before.len()
    ));
    let cap_s = ctx.opts.node_loss_s;
    let window = cap_s + 90.0;
    // A legacy client holds its session's connection, so its calls stay on
    // the pod it is pinned to: the client the pin is about.
    let via = LoadVia {
        verify_url: verify_url.clone(),
        era: ClientEra::Legacy,
    };
    let measured = measured_run_with(ctx, "S17", NOTES, window, false, via, |t0| {
        let (victim, link, sel) = (victim.clone(), link.clone(), sel.clone());
        let (cluster_ip, port) = (cluster_ip.clone(), port.clone());
        async move {
            let backends = client_backends(&cluster_ip, &port);
            let cut = Cut::start(&link)?;
            let (mut t_notready, mut t_full) = (None, None);
            let deadline = t0 + (cap_s * 1000.0) as u64;
            while now_ms() < deadline && (t_notready.is_none() || t_full.is_none()) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if t_notready.is_none() && ctx.node_is_ready(&victim).await? == Some(false) {
                    t_notready = Some(now_ms());
                    log(format!(
                        "S17: {victim} NotReady after {:.1} s",
                        (now_ms() - t0) as f64 / 1000.0
                    ));
                }
                if t_full.is_none() {
                    let where_ = ctx.pod_nodes(NS, &sel).await?;
                    let ready_elsewhere = ctx
                        .pods(NS, &sel)
                        .await?
                        .iter()
                        .filter(|(n, p)| p.ready && !p.deleting && where_.get(*n) != Some(&victim))
                        .count();
                    if ready_elsewhere >= DESIRED {
                        t_full = Some(now_ms());
                        log(format!(
                            "S17: {DESIRED} ready pods off {victim} after {:.1} s",
                            (now_ms() - t0) as f64 / 1000.0
                        ));
                    }
                }
            }
            drop(cut);
            let t_heal = now_ms();
            let back = eventually(
                &format!("{victim} Ready again"),
                Duration::from_secs(90),
                Duration::from_millis(500),
                || async { Ok((ctx.node_is_ready(&victim).await? == Some(true)).then_some(())) },
            )
            .await;
            let t_back = back.is_ok().then(now_ms);
            ctx.wait_pods_ready(NOTES, Duration::from_secs(90)).await?;
            let mut d = Disruption {
                end_ms: Some(t_heal),
                stop_load_at: Some(now_ms() + 5_000),
                ..Disruption::default()
            };
            for (name, t) in [
                ("node NotReady", t_notready),
                ("full capacity", t_full),
                ("link up", Some(t_heal)),
                ("node Ready", t_back),
            ] {
                if let Some(t) = t {
                    d.marks.push(Mark::other(name, t));
                }
            }
            for (k, t) in [
                ("node_not_ready_s", t_notready),
                ("full_capacity_s", t_full),
                ("healed_s", Some(t_heal)),
                ("node_ready_again_s", t_back),
            ] {
                d.info.insert(k.into(), json!(m::secs(t, t0)));
            }
            d.info.insert("client_backends".into(), json!(backends));
            Ok(d)
        }
    })
    .await?;
    let mut run = measured.run;
    let f = |k: &str| run.info.get(k).and_then(|v| v.as_f64());
    let (not_ready, full, back) = (
        f("node_not_ready_s"),
        f("full_capacity_s"),
        f("node_ready_again_s"),
    );
    run.info.insert("lost_node".into(), json!(victim));
    run.info.insert("postgres_node".into(), json!(pg_node));
    run.info.insert("pods_before".into(), json!(before));
    run.info
        .insert("operator_pods".into(), json!(operator_nodes));
    run.info.insert("client_pinned_to".into(), json!(pinned));
    run.info
        .insert("read_back_through".into(), json!(verify_url));
    let backends: Vec<String> = run
        .info
        .get("client_backends")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let pinned_ip = pinned.as_ref().map(|(_, ip)| ip.clone());
    run.check(
        "the client's calls went to the lost node's pod when the link was cut",
        !backends.is_empty() && backends.iter().all(|b| Some(b) == pinned_ip.as_ref()),
        format!("connections to {backends:?}; pinned to {pinned:?}"),
    );
    run.check(
        format!("{victim} went NotReady while cut"),
        not_ready.is_some(),
        m::fmt(not_ready),
    );
    run.thresholds.push(Threshold::at_most(
        format!("{DESIRED} ready pods on the other nodes after the cut"),
        full,
        S17_CAPACITY_S,
        "s",
        "node-monitor grace 50 s + toleration 10 s + a pod start",
    ));
    let (a, r) = (run.remediation_actions, run.mcp_pods_replaced);
    run.check(
        format!("no eviction storm: remediation actions <= the {on_victim} pods lost"),
        a <= on_victim as u64,
        format!("actions={a} replaced={r}"),
    );
    run.check(
        format!("{victim} Ready again after the link came back"),
        back.is_some(),
        m::fmt(back),
    );
    run.check(
        format!("all {DESIRED} replicas ready after the heal"),
        run.mcp_ready_s.is_some(),
        m::fmt(run.mcp_ready_s),
    );
    run.finish();
    let mut sc = Scenario::with_runs(vec![run]);
    sc.notes.push(format!(
        "{victim}'s link is cut on this host (`ip link set {link} down`) while the client (on the host, ClientIP affinity) is pinned to the pod there, the worst case for it: calls to it time out until it leaves the Service's endpoints (evicted by the operator, or the node marked NotReady after its 50 s grace); the errors are reported, not failed on; the acknowledged writes are read back through a pod on a node that stays"
    ));
    Ok(sc)
}
