//! The database connection budget split across replicas.
use crate::api::McpServerSpec;
use crate::api::PoolStatus;

/// How the per-replica pool was sized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolBudget {
    pub status: PoolStatus,
    /// Per-replica pool min after clamping to the max.
    pub per_replica_min: i32,
    /// Set when `pool.max` had to be lowered to fit `maxConnections`.
    pub clamped: Option<Clamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clamp {
    pub requested_per_replica: i32,
    pub requested_total: i32,
    pub budget: i32,
}

impl Clamp {
    pub fn message(&self, granted: i32, replicas_max: i32) -> String {
        format!(
            "database.pool.max {} x replicas.max {} = {} exceeds database.maxConnections {} by {}; each replica gets pool max {}",
            self.requested_per_replica,
            replicas_max,
            self.requested_total,
            self.budget,
            self.requested_total - self.budget,
            granted
        )
    }
}

/// per-replica max = min(pool.max, floor(maxConnections / replicas.max)), never below 1.
pub fn compute(spec: &McpServerSpec) -> Option<PoolBudget> {
    let db = spec.database.as_ref()?;
    let replicas_max = spec.replicas.max.max(1);
    let requested = db.pool.max.max(1);
    let (per_replica, clamped) = match db.max_connections {
        Some(budget) if requested.saturating_mul(replicas_max) > budget => {
            let granted = (budget / replicas_max).max(1);
            (
                granted,
                Some(Clamp {
                    requested_per_replica: requested,
                    requested_total: requested.saturating_mul(replicas_max),
                    budget,
                }),
            )
        }
        _ => (requested, None),
    };
    Some(PoolBudget {
        status: PoolStatus {
            per_replica_max: per_replica,
            total_max: per_replica.saturating_mul(replicas_max),
            budget: db.max_connections,
        },
        per_replica_min: db.pool.min.clamp(0, per_replica),
        clamped,
    })
}
