//! Decide: what was observed -> what to write, what to evict, which conditions hold.
//! Pure: no client, no clock (the time comes in), so every branch is unit-tested.
use super::apply::{self, WriteReason};
use super::error::Result;
use super::gate;
use super::observe::{self, Observed};
use super::remediate::{self, Remediation};
use crate::api::{condition, McpServer, McpStatus, PoolStatus, RollbackHold};
use crate::builders::{budget, deployment, hpa, pdb, service};
use crate::status::conditions::Desired;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use serde::Serialize;

/// One child's fate in this reconcile.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<K> {
    Keep,
    Apply(K, WriteReason),
    /// Ours, and no longer wanted (a PDB for one replica, an HPA for a fixed pool).
    Delete,
}

impl<K> Change<K> {
    pub fn is_write(&self) -> bool {
        !matches!(self, Change::Keep)
    }
}

/// The Deployment's change, plus the replica handover an HPA switch needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentChange {
    pub change: Change<Deployment>,
    /// Before applying, give `spec.replicas` (this value) to the handover manager
    /// so releasing our ownership does not reset the Deployment to 1 replica.
    pub hand_over_replicas: Option<i32>,
}

pub struct Plan {
    pub config_valid: bool,
    /// Replicas the Deployment is asked for now (its spec after the HPA).
    pub desired_replicas: i32,
    pub deployment: DeploymentChange,
    pub service: Change<Service>,
    pub pdb: Change<PodDisruptionBudget>,
    pub hpa: Change<HorizontalPodAutoscaler>,
    pub remediation: Remediation,
    /// The rollback hold in force after this reconcile.
    pub rollback_hold: Option<RollbackHold>,
    /// The hold's target revision has no ReplicaSet any more.
    pub rollback_target_missing: bool,
    /// The hold's revision, whose pod template must be fetched before this
    /// plan can roll back (`observe::rollback_template`); the Deployment is kept.
    pub template_wanted: Option<String>,
    /// The connection budget as realised (`status.pool`).
    pub pool: Option<PoolStatus>,
    /// Conditions known before acting (config, connection budget, disruption
    /// budget, remediation, dependency, MCP checks).
    pub conditions: Vec<Desired>,
    /// Readiness-gate conditions to set on pods (before any eviction).
    pub gates: Vec<gate::GateChange>,
    /// `status.mcp`.
    pub mcp: Option<McpStatus>,
}

impl Plan {
    /// Anything to write or evict? Then intent is persisted first.
    pub fn acts(&self) -> bool {
        self.deployment.change.is_write()
            || self.service.is_write()
            || self.pdb.is_write()
            || self.hpa.is_write()
            || !self.remediation.evictions.is_empty()
    }
}

fn change<K: Resource + Serialize>(live: Option<&K>, desired: K) -> Result<Change<K>> {
    let (stamped, hash) = apply::stamped(desired)?;
    Ok(match apply::write_needed(live, &stamped, &hash)? {
        Some(why) => Change::Apply(stamped, why),
        None => Change::Keep,
    })
}

/// Delete only what we own: a same-named object someone else made is not ours.
fn delete_if_ours<K: Resource>(mcp: &McpServer, live: Option<&K>) -> Change<K> {
    let uid = mcp.meta().uid.as_deref();
    let ours = live.is_some_and(|o| {
        o.meta()
            .owner_references
            .as_ref()
            .is_some_and(|rs| rs.iter().any(|r| Some(r.uid.as_str()) == uid))
    });
    if ours {
        Change::Delete
    } else {
        Change::Keep
    }
}

/// The Deployment's change. `desired` is the spec's Deployment, or the rolled-back
/// one while a hold is in force. An autoscaled pool is created at `replicas.min`
/// (not the API default of 1), and while we still own `spec.replicas` it is first
/// handed over at its live value, then released by applying without it.
fn deployment_change(
    mcp: &McpServer,
    live: Option<&crate::controller::cached::CachedDeployment>,
    desired: Deployment,
) -> Result<DeploymentChange> {
    // The hash covers what we apply for good: never the creation-time replicas.
    let (mut stamped, hash) = apply::stamped(desired)?;
    let mut why = apply::write_needed(live, &stamped, &hash)?;
    let mut hand_over_replicas = None;
    if hpa::build(mcp).is_some() {
        match live {
            None => {
                if let Some(spec) = stamped.spec.as_mut() {
                    spec.replicas = Some(mcp.spec.replicas.min);
                }
            }
            Some(l) if apply::owns(l, &["spec", "replicas"]) => {
                hand_over_replicas = Some(
                    l.spec
                        .as_ref()
                        .and_then(|s| s.replicas)
                        .unwrap_or(mcp.spec.replicas.min),
                );
                why = why.or(Some(WriteReason::ReleaseReplicas));
            }
            Some(_) => {}
        }
    }
    Ok(DeploymentChange {
        change: why.map_or(Change::Keep, |w| Change::Apply(stamped, w)),
        hand_over_replicas,
    })
}

pub fn decide(mcp: &McpServer, obs: &Observed, now: Timestamp) -> Result<Plan> {
    let prev = mcp.status.clone().unwrap_or_default();
    let generation = mcp.metadata.generation;
    let mut conditions = Vec::new();

    let config_valid = obs.problems.is_empty();
    conditions.push(match obs.problems.first() {
        None => Desired::new(
            condition::CONFIG_VALID,
            true,
            "Valid",
            "all references resolved",
        ),
        Some(p) => Desired::new(
            condition::CONFIG_VALID,
            false,
            p.reason,
            obs.problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
    });
    let budget = budget::compute(&mcp.spec);
    if let Some(b) = &budget {
        conditions.push(match &b.clamped {
            Some(c) => Desired::new(
                condition::POOL_BUDGET_EXCEEDED,
                true,
                "PoolClamped",
                c.message(b.status.per_replica_max, mcp.spec.replicas.max),
            ),
            None => Desired::new(
                condition::POOL_BUDGET_EXCEEDED,
                false,
                "WithinBudget",
                format!(
                    "{} connections at most across {} replicas",
                    b.status.total_max, mcp.spec.replicas.max
                ),
            ),
        });
    }
    conditions.push(match pdb::build(mcp) {
        Some(_) => Desired::new(
            condition::DISRUPTION_BUDGET,
            true,
            "Created",
            "PodDisruptionBudget protects the pool",
        ),
        None => Desired::new(
            condition::DISRUPTION_BUDGET,
            false,
            pdb::SINGLE_REPLICA_REASON,
            "no PodDisruptionBudget: replicas.max is 1, and a PDB would block every node drain; set replicas.max >= 2",
        ),
    });

    let desired_replicas = obs
        .deployment
        .as_ref()
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.replicas)
        .unwrap_or(mcp.spec.replicas.min);
    let remediation = remediate::decide(mcp, obs, now, desired_replicas, config_valid);
    conditions.extend(remediation.conditions.iter().cloned());
    // After remediation's hint: this one names the concrete cause.
    if let Some(d) = &obs.dependency {
        let status = match d.known_up() {
            Some(true) => "True",
            Some(false) => "False",
            None => "Unknown",
        };
        conditions.push(Desired::with_status(
            condition::DEPENDENCY_AVAILABLE,
            status,
            d.reason.clone().unwrap_or_default(),
            d.message.clone().unwrap_or_default(),
        ));
    }

    let (mcp_status, mut mcp_condition) = crate::status::mcp::compute(
        &mcp.spec.health.mcp,
        &obs.mcp_checks,
        prev.mcp.as_ref(),
        now,
    );
    mcp_condition
        .message
        .push_str(&crate::builders::service::hot_spot_warning(mcp));
    conditions.push(mcp_condition);

    // A hold lasts while the spec stays at the generation whose rollout failed.
    let rollback_hold = remediation.new_rollback_hold.clone().or_else(|| {
        prev.rollback_hold
            .clone()
            .filter(|h| Some(h.generation) == generation)
    });
    // The Deployment wanted: the spec's, or the good revision's template while a
    // hold is in force. None when that revision's ReplicaSet is gone: applying the
    // spec would roll the bad template out again, so the Deployment stays as it is.
    // A template not fetched yet is asked for (`template_wanted`), and the
    // Deployment is kept until it is.
    let mut wanted = Some(deployment::build(mcp));
    let mut template_wanted = None;
    let mut rollback_target_missing = false;
    if let Some(h) = &rollback_hold {
        let template = observe::template_of(obs, &h.revision);
        match (template, wanted.as_mut().and_then(|d| d.spec.as_mut())) {
            (Some(tpl), Some(spec)) => spec.template = tpl,
            (None, _) => {
                wanted = None;
                if observe::has_revision(obs, &h.revision) {
                    template_wanted = Some(h.revision.clone());
                } else {
                    rollback_target_missing = true;
                }
            }
            (Some(_), None) => {}
        }
    }
    let blocked = obs.problems.iter().any(|p| p.blocks_children);
    let (deployment, service, pdb, hpa) = if !blocked {
        (
            match wanted {
                Some(d) => deployment_change(mcp, obs.deployment.as_ref(), d)?,
                None => DeploymentChange {
                    change: Change::Keep,
                    hand_over_replicas: None,
                },
            },
            change(obs.service.as_ref(), service::build(mcp))?,
            match pdb::build(mcp) {
                Some(p) => change(obs.pdb.as_ref(), p)?,
                None => delete_if_ours(mcp, obs.pdb.as_ref()),
            },
            match hpa::build(mcp) {
                Some(h) => change(obs.hpa.as_ref(), h)?,
                None => delete_if_ours(mcp, obs.hpa.as_ref()),
            },
        )
    } else {
        // A reference the operator cannot follow leaves existing children alone.
        (
            DeploymentChange {
                change: Change::Keep,
                hand_over_replicas: None,
            },
            Change::Keep,
            Change::Keep,
            Change::Keep,
        )
    };
    let gates = if mcp.spec.health.readiness_gate.enabled {
        gate::decide(mcp, obs, &remediation.evictions, now)
    } else {
        Vec::new()
    };
    Ok(Plan {
        gates,
        pool: budget.map(|b| b.status),
        rollback_target_missing,
        config_valid,
        desired_replicas,
        deployment,
        service,
        pdb,
        hpa,
        remediation,
        rollback_hold,
        template_wanted,
        conditions,
        mcp: mcp_status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediation::DependencyObs;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};

    fn up() -> Observed {
        Observed {
            dependency: Some(DependencyObs::up_because(
                "EndpointsReady",
                "1 ready endpoint",
            )),
            ..Default::default()
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// What the API server would hold after our apply of `d`: it, owned by us.
    fn as_applied(d: &Deployment) -> crate::controller::cached::CachedDeployment {
        fn fields(v: &serde_json::Value) -> serde_json::Value {
            match v {
                serde_json::Value::Object(m) => serde_json::Value::Object(
                    m.iter()
                        .map(|(k, v)| (format!("f:{k}"), fields(v)))
                        .collect(),
                ),
                _ => serde_json::json!({}),
            }
        }
        let mut live = d.clone();
        let v = serde_json::to_value(d).unwrap_or_default();
        live.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some(apply::FIELD_MANAGER.into()),
            operation: Some("Apply".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields(&v))),
            ..Default::default()
        }]);
        live.into()
    }

    #[test]
    fn a_steady_pool_writes_nothing() {
        let mcp = McpServer::test();
        let first = decide(&mcp, &up(), now()).expect("plan");
        let Change::Apply(d, WriteReason::Missing) = &first.deployment.change else {
            panic!("a missing Deployment is created");
        };
        let mut obs = up();
        obs.deployment = Some(as_applied(d));
        let second = decide(&mcp, &obs, now()).expect("plan");
        assert_eq!(second.deployment.change, Change::Keep);
        assert_eq!(second.deployment.hand_over_replicas, None);
    }

    #[test]
    fn a_new_autoscaled_pool_starts_at_min_then_hands_replicas_over() {
        let mcp = McpServer::test().replicas(4, 8);
        let plan = decide(&mcp, &up(), now()).expect("plan");
        let Change::Apply(d, WriteReason::Missing) = &plan.deployment.change else {
            panic!("created");
        };
        assert_eq!(
            d.spec.as_ref().and_then(|s| s.replicas),
            Some(4),
            "not the API default of 1"
        );
        // Next round: we own spec.replicas, so it is handed over at its live value first.
        let mut obs = up();
        obs.deployment = Some(as_applied(d));
        let plan = decide(&mcp, &obs, now()).expect("plan");
        assert_eq!(plan.deployment.hand_over_replicas, Some(4));
        let Change::Apply(d, WriteReason::ReleaseReplicas) = &plan.deployment.change else {
            panic!("released: {:?}", plan.deployment.change);
        };
        assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), None);
    }

    #[test]
    fn a_hold_whose_target_is_gone_keeps_the_deployment_and_says_so() {
        let mcp = McpServer::test().generation(2).rolled_back_to("good-hash");
        let plan = decide(&mcp, &up(), now()).expect("plan");
        assert!(plan.rollback_target_missing);
        assert_eq!(plan.deployment.change, Change::Keep);
        assert!(plan.rollback_hold.is_some());
        // An unrelated spec edit (new generation) ends the hold.
        let mcp = McpServer::test()
            .generation(3)
            .rolled_back_to("good-hash")
            .generation(4);
        let plan = decide(&mcp, &up(), now()).expect("plan");
        assert!(plan.rollback_hold.is_none() && !plan.rollback_target_missing);
    }

    #[test]
    fn a_hold_asks_for_its_template_then_rolls_back_to_it() {
        let mcp = McpServer::test().generation(2).rolled_back_to("good");
        // The cache has the ReplicaSet, without its template: ask for it, keep the Deployment.
        let mut obs = up();
        obs.replica_sets = vec![crate::controller::remediate::tests::rs("good", "1", 2)];
        let plan = decide(&mcp, &obs, now()).expect("plan");
        assert_eq!(plan.template_wanted.as_deref(), Some("good"));
        assert!(!plan.rollback_target_missing);
        assert_eq!(plan.deployment.change, Change::Keep);
        // Fetched: the Deployment is applied with it.
        let tpl = observe::template_without_hash(&crate::controller::remediate::tests::rs_full(
            "good", "1", 2,
        ))
        .expect("template");
        obs.rollback_template = Some(("good".into(), tpl));
        let plan = decide(&mcp, &obs, now()).expect("plan");
        assert_eq!(plan.template_wanted, None);
        let Change::Apply(d, _) = &plan.deployment.change else {
            panic!("rolled back: {:?}", plan.deployment.change);
        };
        let image = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone());
        assert_eq!(image.as_deref(), Some("img:good"));
    }

    #[test]
    fn an_invalid_spec_touches_no_child() {
        let mut obs = up();
        obs.problems.push(crate::controller::references::Problem {
            reason: "CrossNamespaceDependency",
            message: "database.service is in namespace db".into(),
            blocks_children: true,
        });
        let plan = decide(&McpServer::test(), &obs, now()).expect("plan");
        assert!(!plan.config_valid);
        assert!(!plan.acts());
    }
}
