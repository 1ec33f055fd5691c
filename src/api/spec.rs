//! `McpServer` spec: what the user declares. Ranges, enums and defaults live in the
//! schema so the API server rejects bad input at apply time; cross-field rules are CEL.

use k8s_openapi::api::core::v1::{
    Affinity, EnvFromSource, EnvVar, LocalObjectReference, ResourceRequirements, Toleration,
    TopologySpreadConstraint,
};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::status::McpServerStatus;

/// An MCP server pool kept serving through dependency failures.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mcp.operator.dev",
    version = "v1alpha1",
    kind = "McpServer",
    namespaced,
    shortname = "mcps",
    category = "mcp",
    status = "McpServerStatus",
    derive = "PartialEq",
    doc = "An MCP server pool that mcp-operator keeps serving through database restarts, wedged pools, bad rollouts and drains.",
    printcolumn = r#"{"name":"Ready","type":"string","description":"ready/desired replicas","jsonPath":".status.readyDisplay"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Dependency","type":"string","jsonPath":".status.conditions[?(@.type==\"DependencyAvailable\")].reason"}"#,
    printcolumn = r#"{"name":"Remediation","type":"string","jsonPath":".status.remediation.state"}"#,
    printcolumn = r#"{"name":"Tools","type":"integer","description":"tools the MCP server lists (health.mcp.listTools)","jsonPath":".status.mcp.tools"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[kube(validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 63").message("metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter, at most 63 characters): it also names the Deployment, Service and PodDisruptionBudget"))]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.database) || !has(self.database.pool) || !has(self.database.maxConnections) || self.database.pool.max * self.replicas.max <= self.database.maxConnections").message("database.pool.max * replicas.max must be <= database.maxConnections: lower database.pool.max or replicas.max, or raise database.maxConnections"))]
// No PDB is made for replicas.max 1 (`builders::pdb`), so there minAvailable blocks nothing.
#[x_kube(validation = Rule::new("!has(self.disruption) || !has(self.disruption.minAvailable) || self.replicas.max <= 1 || self.disruption.minAvailable < self.replicas.min").message("disruption.minAvailable must be below replicas.min: with replicas.min pods running it would allow no eviction, and every node drain and cluster upgrade would wait on this pool for ever; lower disruption.minAvailable or raise replicas.min"))]
pub struct McpServerSpec {
    /// Container image of the MCP server.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Image pull policy (Always, IfNotPresent, Never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// MCP transport the server speaks.
    #[serde(default)]
    pub transport: Transport,
    /// Container port the MCP endpoint listens on.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// HTTP path of the MCP endpoint.
    #[serde(default = "default_path")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("path must start with '/', for example /mcp"))]
    pub path: String,
    /// Service session affinity. Unset: what the server needs. A stateless
    /// (MCP 2026-07-28) server gets `None`; a server that keeps legacy
    /// sessions in its process, or whose protocol the operator has not seen
    /// yet, gets `ClientIP` when it may run more than one replica (a client
    /// sticks to the pod that holds its session, at the risk of hot spots:
    /// every client behind one NAT or proxy lands on one pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
    /// Extra container command (entrypoint override).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Container arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Extra environment sources (ConfigMaps, Secrets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    /// Container resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The replica pool; an HPA is created when max > min.
    #[serde(default)]
    pub replicas: ReplicaRange,
    /// The database behind the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,
    /// Kubelet probes. Liveness never depends on the database.
    #[serde(default)]
    pub health: HealthSpec,
    /// PodDisruptionBudget settings.
    #[serde(default)]
    pub disruption: DisruptionSpec,
    /// Automatic remediation policy.
    #[serde(default)]
    pub remediation: RemediationSpec,
    /// Pod-level overrides.
    #[serde(default)]
    pub pod_template: PodOverrides,
}

fn default_port() -> i32 {
    8080
}
fn default_path() -> String {
    "/mcp".into()
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum Transport {
    #[default]
    #[serde(rename = "streamable-http")]
    StreamableHttp,
    #[serde(rename = "sse")]
    Sse,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum SessionAffinity {
    #[default]
    #[serde(rename = "ClientIP")]
    ClientIp,
    None,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Replica pool bounds.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.min <= self.max").message("replicas.min must be <= replicas.max: raise replicas.max or lower replicas.min"))]
pub struct ReplicaRange {
    /// Minimum replicas (the Deployment's size when max == min).
    #[serde(default = "default_replicas_min")]
    #[schemars(range(min = 1, max = 100))]
    pub min: i32,
    /// Maximum replicas (HPA upper bound; also divides the database connection budget).
    #[serde(default = "default_replicas_max")]
    #[schemars(range(min = 1, max = 100))]
    pub max: i32,
    /// Target average CPU utilisation for the HPA, in percent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "targetCPUUtilization"
    )]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization: Option<i32>,
}

fn default_replicas_min() -> i32 {
    2
}
fn default_replicas_max() -> i32 {
    2
}

impl Default for ReplicaRange {
    fn default() -> Self {
        Self {
            min: default_replicas_min(),
            max: default_replicas_max(),
            target_cpu_utilization: None,
        }
    }
}

/// The database the pool depends on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// Secret key holding the connection URL; injected as DATABASE_URL, never inlined.
    pub url_secret_ref: SecretKeyRef,
    /// In-cluster Service of the database, watched for ready endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    /// A direct TCP probe for a database outside the cluster (host:port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<TcpProbe>,
    /// Connection budget for all replicas together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_connections: Option<i32>,
    /// Per-replica pool settings, injected as environment variables.
    #[serde(default)]
    pub pool: PoolSpec,
    /// Names of the injected environment variables.
    #[serde(default)]
    pub env_names: EnvNames,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct SecretKeyRef {
    /// A Secret name (DNS subdomain): it becomes part of a request path, so nothing else passes.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct ServiceRef {
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Defaults to the McpServer's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpProbe {
    #[schemars(length(min = 1))]
    pub host: String,
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    #[serde(default = "default_probe_timeout_ms")]
    #[schemars(range(min = 50, max = 10000))]
    pub timeout_ms: i32,
}

fn default_probe_timeout_ms() -> i32 {
    500
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.min <= self.max").message("database.pool.min must be <= database.pool.max: raise pool.max or lower pool.min"))]
pub struct PoolSpec {
    #[serde(default = "default_pool_min")]
    #[schemars(range(min = 0, max = 1000))]
    pub min: i32,
    #[serde(default = "default_pool_max")]
    #[schemars(range(min = 1, max = 1000))]
    pub max: i32,
    #[serde(default = "default_acquire_timeout")]
    #[schemars(range(min = 1, max = 600))]
    pub acquire_timeout_seconds: i32,
}

fn default_pool_min() -> i32 {
    2
}
fn default_pool_max() -> i32 {
    10
}
fn default_acquire_timeout() -> i32 {
    30
}

impl Default for PoolSpec {
    fn default() -> Self {
        Self {
            min: default_pool_min(),
            max: default_pool_max(),
            acquire_timeout_seconds: default_acquire_timeout(),
        }
    }
}

/// Names of the injected variables: distinct, and none of the operator's own
/// (`builders::deployment::env`), or the Deployment would name one variable twice.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("[self.url, self.poolMin, self.poolMax, self.acquireTimeout].all(n, [self.url, self.poolMin, self.poolMax, self.acquireTimeout].filter(m, m == n).size() == 1)").message(Message::Expression("'database.envNames: ' + [self.url, self.poolMin, self.poolMax, self.acquireTimeout].filter(n, [self.url, self.poolMin, self.poolMax, self.acquireTimeout].filter(m, m == n).size() > 1)[0] + ' is given to two variables; url, poolMin, poolMax and acquireTimeout need four different names'".into())),
    validation = Rule::new("[self.url, self.poolMin, self.poolMax, self.acquireTimeout].all(n, n != 'PORT' && n != 'MCP_PATH')").message("database.envNames: PORT and MCP_PATH are the operator's own variables (spec.port, spec.path); choose other names"),
)]
pub struct EnvNames {
    #[serde(default = "env_url")]
    #[schemars(
        regex(pattern = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"),
        length(min = 1, max = 253)
    )]
    pub url: String,
    #[serde(default = "env_pool_min")]
    #[schemars(
        regex(pattern = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"),
        length(min = 1, max = 253)
    )]
    pub pool_min: String,
    #[serde(default = "env_pool_max")]
    #[schemars(
        regex(pattern = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"),
        length(min = 1, max = 253)
    )]
    pub pool_max: String,
    #[serde(default = "env_acquire")]
    #[schemars(
        regex(pattern = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"),
        length(min = 1, max = 253)
    )]
    pub acquire_timeout: String,
}

fn env_url() -> String {
    "DATABASE_URL".into()
}
fn env_pool_min() -> String {
    "POOL_MIN_SIZE".into()
}
fn env_pool_max() -> String {
    "POOL_MAX_SIZE".into()
}
fn env_acquire() -> String {
    "POOL_ACQUIRE_TIMEOUT_SECONDS".into()
}

impl Default for EnvNames {
    fn default() -> Self {
        Self {
            url: env_url(),
            pool_min: env_pool_min(),
            pool_max: env_pool_max(),
            acquire_timeout: env_acquire(),
        }
    }
}

/// Kubelet probes, the operator's MCP checks and its readiness gate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<ProbeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<ProbeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<StartupSpec>,
    /// The operator's own MCP checks of every ready pod.
    #[serde(default)]
    pub mcp: McpCheckSpec,
    /// The pod readiness gate the operator sets.
    #[serde(default)]
    pub readiness_gate: ReadinessGateSpec,
}

/// Pods carry the readiness gate `mcp.operator.dev/healthy` and the operator
/// sets it: False for a pod whose MCP layer is wedged (while a sibling still
/// answers) and for a pod it is about to evict, True otherwise. A pod is in the
/// Service only while its containers are ready and the gate is True, so the
/// container probe can answer "can this process serve" and keep a pod in the
/// Service through a database outage every pod shares, while the operator takes
/// out the individual pods only it can see are bad. A new pod becomes Ready once
/// the operator has set the gate (one reconcile after the pod appears); while no
/// operator runs, existing pods keep their gate and new ones wait. Changing this
/// rolls the pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessGateSpec {
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for ReadinessGateSpec {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// MCP checks by the operator: a fresh session per ready pod (initialize,
/// then ping or tools/list) under a deadline. Kubelet probes cannot speak
/// MCP; these catch a pod whose `/readyz` passes while its MCP layer hangs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.unhealthyAfterSeconds) || !has(self.periodSeconds) || self.unhealthyAfterSeconds >= 2 * self.periodSeconds").message("health.mcp.unhealthyAfterSeconds must be at least twice health.mcp.periodSeconds: a pod is judged wedged only on failed checks, re-checked and at most two periods old; raise unhealthyAfterSeconds or lower periodSeconds"))]
pub struct McpCheckSpec {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How often each pod is checked (jittered ±20 %).
    #[serde(default = "default_mcp_period")]
    #[schemars(range(min = 2, max = 3600))]
    pub period_seconds: i32,
    /// Deadline of one check, connect included.
    #[serde(default = "default_mcp_timeout")]
    #[schemars(range(min = 1, max = 60))]
    pub timeout_seconds: i32,
    /// A Ready pod whose checks fail this long is wedged: remediation evicts it
    /// under the same rules as an unready pod. At least two periods: only a
    /// failed re-check at most two periods old counts.
    #[serde(default = "default_mcp_unhealthy_after")]
    #[schemars(range(min = 1, max = 86400))]
    pub unhealthy_after_seconds: i32,
    /// Check with `tools/list` (and report the tool count) instead of `ping`.
    #[serde(default)]
    pub list_tools: bool,
}

fn default_mcp_period() -> i32 {
    10
}
fn default_mcp_timeout() -> i32 {
    3
}
fn default_mcp_unhealthy_after() -> i32 {
    30
}

impl Default for McpCheckSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            period_seconds: default_mcp_period(),
            timeout_seconds: default_mcp_timeout(),
            unhealthy_after_seconds: default_mcp_unhealthy_after(),
            list_tools: false,
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProbeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("probe path must start with '/'"))]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 300))]
    pub period_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 60))]
    pub timeout_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 30))]
    pub failure_threshold: Option<i32>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StartupSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("startup path must start with '/'"))]
    pub path: Option<String>,
    /// Total time the container may take to start before liveness applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub budget_seconds: Option<i32>,
}

/// PodDisruptionBudget: set at most one of maxUnavailable and minAvailable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.maxUnavailable) && has(self.minAvailable))").message("disruption: set either maxUnavailable or minAvailable, not both"))]
pub struct DisruptionSpec {
    /// At least 1: 0 would allow no eviction, and hang every node drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    #[x_kube(validation = Rule::new("self >= 1").message("disruption.maxUnavailable must be at least 1: 0 allows no eviction, and every node drain and cluster upgrade would wait on this pool for ever; use 1 or more, or leave it unset (1)"))]
    pub max_unavailable: Option<i32>,
    /// Below replicas.min (when replicas.max > 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub min_available: Option<i32>,
}

/// Remediation policy: dependency-aware, budgeted healing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemediationSpec {
    /// Turn automatic remediation off entirely (status is still reported).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A pod unready this long (after the dependency is back) is evicted.
    #[serde(default = "default_unhealthy_after")]
    #[schemars(range(min = 1, max = 86400))]
    pub unhealthy_after_seconds: i32,
    /// Extra wait after the dependency recovers before unready clocks start.
    /// With 0, a pod still unready `unhealthyAfterSeconds` after recovery is evicted.
    #[serde(default)]
    #[schemars(range(min = 0, max = 3600))]
    pub grace_seconds: i32,
    /// Churn budget: at most this many actions per window.
    #[serde(default = "default_max_actions")]
    #[schemars(range(min = 0, max = 1000))]
    pub max_actions: i32,
    #[serde(default = "default_window")]
    #[schemars(range(min = 1, max = 604800))]
    pub window_seconds: i32,
    /// Minimum time between two actions.
    #[serde(default = "default_cooldown")]
    #[schemars(range(min = 0, max = 86400))]
    pub cooldown_seconds: i32,
    /// Hold every action while the database is unavailable.
    #[serde(default = "yes")]
    pub pause_while_dependency_down: bool,
    /// Roll back a rollout whose new pods crash while the old ones were healthy.
    #[serde(default = "yes")]
    pub rollback_failed_rollouts: bool,
}

fn yes() -> bool {
    true
}
fn default_unhealthy_after() -> i32 {
    20
}
fn default_max_actions() -> i32 {
    5
}
fn default_window() -> i32 {
    600
}
fn default_cooldown() -> i32 {
    10
}

impl Default for RemediationSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            unhealthy_after_seconds: default_unhealthy_after(),
            grace_seconds: 0,
            max_actions: default_max_actions(),
            window_seconds: default_window(),
            cooldown_seconds: default_cooldown(),
            pause_while_dependency_down: true,
            rollback_failed_rollouts: true,
        }
    }
}

/// Pod-level overrides merged into the generated pod template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// How the pods spread over the cluster's topology. Unset: one soft
    /// constraint, at most one pod more on a node than on any other (maxSkew 1,
    /// kubernetes.io/hostname, ScheduleAnyway). An empty list: no spreading.
    /// Otherwise the list is used as given, and an entry without labelSelector
    /// gets this server's pod selector, so `{maxSkew: 1, topologyKey:
    /// topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule}` is enough
    /// to spread this server's pods across zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("self.all(c, c.maxSkew >= 1)").message("podTemplate.topologySpreadConstraints: maxSkew must be at least 1"),
        validation = Rule::new("self.all(c, size(c.topologyKey) > 0)").message("podTemplate.topologySpreadConstraints: topologyKey must be set, for example kubernetes.io/hostname or topology.kubernetes.io/zone"),
        validation = Rule::new("self.all(c, c.whenUnsatisfiable == 'DoNotSchedule' || c.whenUnsatisfiable == 'ScheduleAnyway')").message("podTemplate.topologySpreadConstraints: whenUnsatisfiable must be DoNotSchedule or ScheduleAnyway"),
    )]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Seconds the kubelet waits after SIGTERM (includes the preStop pause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub termination_grace_period_seconds: Option<i64>,
    /// Seconds the preStop hook sleeps so endpoints drain before SIGTERM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 120))]
    pub pre_stop_sleep_seconds: Option<i64>,
    /// Opt out of the read-only root filesystem (a writable /tmp is always mounted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    /// Seconds a pod stays bound to a node that went NotReady or unreachable
    /// before it is evicted and the ReplicaSet replaces it elsewhere: the pods
    /// tolerate the node.kubernetes.io/not-ready and node.kubernetes.io/unreachable
    /// NoExecute taints this long. Unset: the cluster default (300 s from the
    /// DefaultTolerationSeconds admission plugin). A toleration of those taints in
    /// `tolerations` takes precedence for its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub node_loss_toleration_seconds: Option<i64>,
}
