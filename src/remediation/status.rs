//! Persisted remediation status: `status.remediation` and
//! `status.lastIncident`.
//!
//! This is the engine's only memory. Everything needed to keep promises
//! across an operator restart lives here: the action timestamps still inside
//! the budget window, the last consumed override token, the observed
//! dependency transition, the last known good revision and the open incident.
//! Every struct is `#[serde(default)]` so a hand-edited or older status never
//! fails to deserialize (which would break the whole watch), it only forgets.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::time::epoch;

/// JSON schema for a `metav1.Time` field: an RFC 3339 string. Spelled out
/// here because k8s-openapi's own `JsonSchema` impl sits behind a feature the
/// crate does not enable.
pub(crate) fn date_time_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "string", "format": "date-time" })
}

/// Where remediation stands, for humans and for alerting.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum RemediationState {
    /// Nothing is wrong, or nothing the engine could do something about.
    #[default]
    Idle,
    /// Something is wrong but it is not time to act yet: dependency down,
    /// grace window, pods not unready long enough, no disruption allowance.
    Waiting,
    /// Actions were issued by this decision.
    Acting,
    /// An action is wanted (or was just taken) and the cooldown has not
    /// elapsed.
    CoolingDown,
    /// An action is wanted and policy forbids it: churn budget exhausted or
    /// rollbacks disabled. Only a manual override token unblocks it.
    Blocked,
}

/// Availability of the dependency (the database behind the pool).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DependencyState {
    /// Ready endpoints exist / the probe succeeded. Also what the shell passes
    /// when no dependency is configured.
    Up,
    /// No ready endpoints / the probe failed.
    Down,
    /// Could not be determined (API error, probe error). Treated like `Down`
    /// for holding actions (never act blind) but does not open an incident.
    #[default]
    Unknown,
}

/// Kind of remediation action.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ActionKind {
    /// Pod evicted through the Eviction API.
    #[default]
    Evict,
    /// Deployment rolled back to the last known good revision.
    Rollback,
}

impl ActionKind {
    /// Lower-case label for metrics (`kind` label).
    pub fn as_label(self) -> &'static str {
        match self {
            ActionKind::Evict => "evict",
            ActionKind::Rollback => "rollback",
        }
    }
}

/// One action taken. `recentActions` keeps these for the budget window.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ActionRecord {
    /// What was done.
    pub kind: ActionKind,
    /// Evicted pod (for `Evict`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Target revision (for `Rollback`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Machine-readable reason (also the metric `reason` label).
    pub reason: String,
    /// When the engine decided it.
    #[schemars(schema_with = "date_time_schema")]
    pub time: Time,
    /// Granted by a manual override token rather than by the policy.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
}

impl Default for ActionRecord {
    fn default() -> Self {
        Self {
            kind: ActionKind::default(),
            pod: None,
            revision: None,
            reason: String::new(),
            time: epoch(),
            manual: false,
        }
    }
}

/// A consumed manual override (`mcp.operator.dev/remediate` annotation).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct OverrideRecord {
    /// The annotation value; a token is honoured once, ever.
    pub token: String,
    /// When it was consumed.
    #[schemars(schema_with = "date_time_schema")]
    pub time: Time,
    /// Field manager that last set the annotation, from managedFields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// What it was used for (human-readable).
    pub outcome: String,
}

impl Default for OverrideRecord {
    fn default() -> Self {
        Self {
            token: String::new(),
            time: epoch(),
            manager: None,
            outcome: String::new(),
        }
    }
}

/// Last observed dependency transition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct DependencyRecord {
    /// State at the last decision.
    pub state: DependencyState,
    /// When it entered that state (as observed, or as reported by the shell).
    #[schemars(schema_with = "date_time_schema")]
    pub since: Time,
}

impl Default for DependencyRecord {
    fn default() -> Self {
        Self {
            state: DependencyState::default(),
            since: epoch(),
        }
    }
}

/// A rollback the engine asked for. Kept so it is never repeated for the same
/// bad revision, and so the builder can keep the good template pinned while
/// the spec still renders the bad one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct RollbackRecord {
    /// The failing revision.
    pub from_revision: String,
    /// The last known good revision rolled back to.
    pub to_revision: String,
    /// When it was decided.
    #[schemars(schema_with = "date_time_schema")]
    pub time: Time,
    /// The McpServer generation whose rollout failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

impl Default for RollbackRecord {
    fn default() -> Self {
        Self {
            from_revision: String::new(),
            to_revision: String::new(),
            time: epoch(),
            generation: None,
        }
    }
}

/// `status.remediation`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct RemediationStatus {
    /// Current state.
    pub state: RemediationState,
    /// Machine-readable reason for the state (e.g. `DependencyUnavailable`,
    /// `GracePeriod`, `BudgetExhausted`, `RollbackDisabled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Actions (automatic and manual) inside the current budget window.
    pub actions_in_window: u32,
    /// The most recent action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_action: Option<ActionRecord>,
    /// When the cooldown after the last action ends (absent when none is
    /// running). Absolute rather than a countdown so the status stays the
    /// same from one reconcile to the next.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "date_time_schema")]
    pub cooldown_until: Option<Time>,
    /// What the engine will do next and when, for humans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_action: Option<String>,
    /// The last consumed manual override; its token is never honoured again.
    #[serde(rename = "override", skip_serializing_if = "Option::is_none")]
    pub override_record: Option<OverrideRecord>,
    /// Tokens consumed before the last one (newest last, at most
    /// [`OVERRIDE_TOKEN_HISTORY`]), so re-applying an older token does not
    /// grant a second action either.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consumed_override_tokens: Vec<String>,
    /// Actions still inside the budget window (the budget's memory).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recent_actions: Vec<ActionRecord>,
    /// Last observed dependency state and since when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependency: Option<DependencyRecord>,
    /// Revision last seen fully ready with the dependency up: the rollback
    /// target when a newer revision fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_good_revision: Option<String>,
    /// The last rollback decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackRecord>,
}

/// How many consumed override tokens are remembered.
pub const OVERRIDE_TOKEN_HISTORY: usize = 16;

impl RemediationStatus {
    /// Token of the last consumed override, if any.
    pub fn last_override_token(&self) -> Option<&str> {
        self.override_record.as_ref().map(|o| o.token.as_str())
    }

    /// Whether `token` was already consumed (it grants nothing again).
    pub fn override_token_used(&self, token: &str) -> bool {
        self.last_override_token() == Some(token)
            || self.consumed_override_tokens.iter().any(|t| t == token)
    }
}

/// `status.lastIncident`: the most recent incident, open or closed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct LastIncident {
    /// First sign of trouble: the dependency loss or the earliest unready
    /// transition among the pods unready when the incident opened (it opens
    /// on dependency loss, a pod unready past `unhealthyAfterSeconds`, a
    /// failed rollout or an action).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "date_time_schema")]
    pub started_at: Option<Time>,
    /// When the dependency came back during this incident.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "date_time_schema")]
    pub dependency_recovered_at: Option<Time>,
    /// When all desired pods were ready again (absent while open).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "date_time_schema")]
    pub recovered_at: Option<Time>,
    /// `recoveredAt - startedAt`, once recovered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u64>,
    /// Remediation actions taken during the incident.
    pub actions: u32,
}

impl LastIncident {
    /// Open: started and not yet recovered.
    pub fn is_open(&self) -> bool {
        self.started_at.is_some() && self.recovered_at.is_none()
    }
}
