//! Prometheus metrics of the operator.
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub kind: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub kind: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusWriteLabels {
    /// `intent` (before acting) or `report` (after).
    pub step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct McpFailureLabels {
    /// `connect`, `timeout`, `http_status` or `protocol`.
    pub reason: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<ResultLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub remediation_actions: Family<ActionLabels, Counter>,
    pub remediation_blocked: Family<ObjectLabels, Gauge>,
    pub incident_duration: Histogram,
    pub dependency_up: Family<ObjectLabels, Gauge>,
    pub writes_skipped: Counter,
    pub events_dropped: Counter,
    pub child_writes: Family<WriteLabels, Counter>,
    pub status_writes: Family<StatusWriteLabels, Counter>,
    pub leader: Gauge,
    pub leader_transitions: Counter,
    pub mcp_check_duration: Histogram,
    pub mcp_check_failures: Family<McpFailureLabels, Counter>,
    pub mcp_wedged_pods: Family<ObjectLabels, Gauge>,
    pub mcpserver_ready: Family<ObjectLabels, Gauge>,
    pub pool_budget_clamped: Family<ObjectLabels, Gauge>,
    pub incident_open: Family<ObjectLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mcp_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciliations by result",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconcile errors by kind",
            reconcile_errors.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            reconcile_duration.clone(),
        );
        let remediation_actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "remediation_actions",
            "Remediation actions taken",
            remediation_actions.clone(),
        );
        let remediation_blocked = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "remediation_blocked",
            "1 while an McpServer's remediation is blocked by its churn budget",
            remediation_blocked.clone(),
        );
        let incident_duration = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "incident_duration_seconds",
            "Incident duration, first unready to recovered",
            incident_duration.clone(),
        );
        let dependency_up = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "dependency_up",
            "1 when an McpServer's database is reachable",
            dependency_up.clone(),
        );
        let writes_skipped = Counter::default();
        registry.register(
            "writes_skipped",
            "Child applies skipped because nothing changed",
            writes_skipped.clone(),
        );
        let events_dropped = Counter::default();
        registry.register(
            "events_dropped",
            "Events not published: the queue was full, or the lease fence refused them (this replica no longer led)",
            events_dropped.clone(),
        );
        let child_writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "child_writes",
            "Child applies by kind and reason (missing, changed, drifted, release_replicas)",
            child_writes.clone(),
        );
        let status_writes = Family::<StatusWriteLabels, Counter>::default();
        registry.register(
            "status_writes",
            "McpServer status writes by step (intent before acting, report after)",
            status_writes.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        let leader_transitions = Counter::default();
        registry.register(
            "leader_acquisitions",
            "Times this replica acquired the leader lease",
            leader_transitions.clone(),
        );
        let mcp_check_duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "mcp_check_duration_seconds",
            "Duration of one MCP check of one pod (connect, session, ping or tools/list)",
            mcp_check_duration.clone(),
        );
        let mcp_check_failures = Family::<McpFailureLabels, Counter>::default();
        registry.register(
            "mcp_check_failures",
            "Failed MCP checks by reason (connect, timeout, http_status, protocol)",
            mcp_check_failures.clone(),
        );
        let mcp_wedged_pods = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "mcp_wedged_pods",
            "Ready pods of an McpServer whose MCP layer has not answered for health.mcp.unhealthyAfterSeconds",
            mcp_wedged_pods.clone(),
        );
        let mcpserver_ready = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "mcpserver_ready",
            "1 while an McpServer's status says Ready=True (all desired replicas ready)",
            mcpserver_ready.clone(),
        );
        let pool_budget_clamped = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "pool_budget_clamped",
            "1 while database.maxConnections forces an McpServer's pool below what it asks (PoolBudgetExceeded=True)",
            pool_budget_clamped.clone(),
        );
        let incident_open = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "incident_open",
            "1 while an McpServer's status.lastIncident is open (started, not recovered)",
            incident_open.clone(),
        );
        Self {
            mcpserver_ready,
            pool_budget_clamped,
            incident_open,
            mcp_check_duration,
            mcp_check_failures,
            mcp_wedged_pods,
            leader,
            leader_transitions,
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            remediation_actions,
            remediation_blocked,
            incident_duration,
            dependency_up,
            writes_skipped,
            events_dropped,
            child_writes,
            status_writes,
        }
    }
}

/// The closed label sets of the counters, created at 0 so a counter exists
/// (and `rate()` is 0, not absent) before its first event.
/// `stale`: skipped, the cache had not yet seen our own last status write.
const RECONCILE_RESULTS: [&str; 3] = ["ok", "error", "stale"];
const MCP_FAILURE_REASONS: [&str; 4] = ["connect", "timeout", "http_status", "protocol"];
const STATUS_WRITE_STEPS: [&str; 2] = ["intent", "report"];

impl Metrics {
    /// Create the counters' series at 0: the fixed sets here, and the error
    /// kinds and (kind, reason) action pairs the controller can produce.
    pub fn preset(&self, error_kinds: &[&str], actions: &[(&str, &str)]) {
        for result in RECONCILE_RESULTS {
            let _ = self.reconciles.get_or_create(&ResultLabels {
                result: result.into(),
            });
        }
        for kind in error_kinds {
            let _ = self.reconcile_errors.get_or_create(&ErrorLabels {
                kind: (*kind).into(),
            });
        }
        for (kind, reason) in actions {
            let _ = self.remediation_actions.get_or_create(&ActionLabels {
                kind: (*kind).into(),
                reason: (*reason).into(),
            });
        }
        for reason in MCP_FAILURE_REASONS {
            let _ = self.mcp_check_failures.get_or_create(&McpFailureLabels {
                reason: reason.into(),
            });
        }
        for step in STATUS_WRITE_STEPS {
            let _ = self
                .status_writes
                .get_or_create(&StatusWriteLabels { step: step.into() });
        }
    }

    pub fn child_writes(&self, kind: &str, reason: &str) {
        self.child_writes
            .get_or_create(&WriteLabels {
                kind: kind.into(),
                reason: reason.into(),
            })
            .inc();
    }

    pub fn status_written(&self, step: &str) {
        self.status_writes
            .get_or_create(&StatusWriteLabels { step: step.into() })
            .inc();
    }

    /// Drop the per-object series of a deleted McpServer.
    pub fn forget_object(&self, namespace: &str, name: &str) {
        let labels = ObjectLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        for family in self.per_object() {
            family.remove(&labels);
        }
    }

    /// Drop every per-object series: a replica that stops leading stops
    /// vouching for them (a standby exports none, so no stale alert fires).
    pub fn forget_objects(&self) {
        for family in self.per_object() {
            family.clear();
        }
    }

    fn per_object(&self) -> [&Family<ObjectLabels, Gauge>; 6] {
        [
            &self.dependency_up,
            &self.remediation_blocked,
            &self.mcp_wedged_pods,
            &self.mcpserver_ready,
            &self.pool_budget_clamped,
            &self.incident_open,
        ]
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forgotten_object_leaves_no_series() {
        let m = Metrics::default();
        let labels = |n: &str| ObjectLabels {
            namespace: "a".into(),
            name: n.into(),
        };
        m.dependency_up.get_or_create(&labels("gone")).set(0);
        m.remediation_blocked.get_or_create(&labels("gone")).set(1);
        m.dependency_up.get_or_create(&labels("kept")).set(1);
        assert!(m.encode().contains("name=\"gone\""));
        m.forget_object("a", "gone");
        let text = m.encode();
        assert!(!text.contains("name=\"gone\""), "{text}");
        assert!(text.contains("name=\"kept\""), "{text}");
        assert!(text.contains("mcp_operator_writes_skipped_total"), "{text}");
        m.mcpserver_ready.get_or_create(&labels("kept")).set(1);
        m.forget_objects();
        let text = m.encode();
        assert!(!text.contains("name=\"kept\""), "{text}");
    }

    #[test]
    fn preset_counters_exist_at_zero() {
        let m = Metrics::default();
        m.preset(&["conflict"], &[("evict", "UnreadyTooLong")]);
        let text = m.encode();
        for line in [
            "mcp_operator_reconciles_total{result=\"error\"} 0",
            "mcp_operator_reconcile_errors_total{kind=\"conflict\"} 0",
            "mcp_operator_remediation_actions_total{kind=\"evict\",reason=\"UnreadyTooLong\"} 0",
            "mcp_operator_mcp_check_failures_total{reason=\"timeout\"} 0",
            "mcp_operator_status_writes_total{step=\"intent\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }
}
