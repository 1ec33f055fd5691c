//! The election's timing rules against an in-memory Lease API (tower-test mock
//! behind a kube Client) on a paused tokio clock: time moves only when every
//! task waits, so seconds of lease time pass instantly and exactly.
use super::*;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// One Lease, stored with a resourceVersion, shared by every replica's client.
#[derive(Clone, Default)]
struct FakeLeases {
    lease: Arc<Mutex<Option<Value>>>,
    rv: Arc<AtomicUsize>,
}

/// A replica's connection to the fake API; `hang` makes it stop answering
/// (a partition or a hung API server, as that replica sees it).
#[derive(Clone)]
struct Conn {
    hang: Arc<AtomicBool>,
    writes: Arc<AtomicUsize>,
}

impl FakeLeases {
    fn client(&self) -> (Client, Conn) {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let conn = Conn {
            hang: Arc::new(AtomicBool::new(false)),
            writes: Arc::new(AtomicUsize::new(0)),
        };
        let (me, c) = (self.clone(), conn.clone());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some((req, send)) = handle.next_request().await {
                if c.hang.load(Ordering::SeqCst) {
                    held.push(send); // never answered
                    continue;
                }
                if req.method() != Method::GET {
                    c.writes.fetch_add(1, Ordering::SeqCst);
                }
                send.send_response(me.handle(req).await);
            }
        });
        (Client::new(svc, "default"), conn)
    }

    fn spec(&self) -> Option<LeaseSpec> {
        let l = self.lease.lock().ok()?.clone()?;
        serde_json::from_value::<Lease>(l).ok()?.spec
    }

    /// Another holder renews the stored lease, stamped with its own clock.
    fn renew_as(&self, holder: &str, wall: Timestamp) {
        let next = self.rv.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut g) = self.lease.lock() {
            *g = Some(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "op", "namespace": "default", "resourceVersion": next.to_string()},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                         "renewTime": MicroTime(wall), "leaseTransitions": 0},
            }));
        }
    }

    async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let method = req.method().clone();
        let body = req.into_body().collect_bytes().await.unwrap_or_default();
        let Ok(mut g) = self.lease.lock() else {
            return respond(StatusCode::INTERNAL_SERVER_ERROR, json!({}));
        };
        match method {
            Method::GET => match g.clone() {
                Some(l) => respond(StatusCode::OK, l),
                None => status(404, "NotFound"),
            },
            Method::POST | Method::PUT => {
                let Ok(mut l) = serde_json::from_slice::<Value>(&body) else {
                    return status(400, "BadRequest");
                };
                let current = g
                    .as_ref()
                    .and_then(|c| c.pointer("/metadata/resourceVersion").cloned());
                let sent = l.pointer("/metadata/resourceVersion").cloned();
                let conflict = match method {
                    Method::POST => g.is_some(),
                    _ => current != sent,
                };
                if conflict {
                    return status(409, "Conflict");
                }
                let next = self.rv.fetch_add(1, Ordering::SeqCst) + 1;
                l["metadata"]["resourceVersion"] = json!(next.to_string());
                *g = Some(l.clone());
                respond(StatusCode::OK, l)
            }
            _ => status(405, "MethodNotAllowed"),
        }
    }
}

fn respond(code: StatusCode, v: Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&v).unwrap_or_default()))
        .unwrap_or_else(|_| Response::new(Body::from(Vec::new())))
}

fn status(code: u16, reason: &str) -> Response<Body> {
    respond(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": reason}),
    )
}

fn elector(leases: &FakeLeases, identity: &str) -> (Elector, Conn) {
    let (client, conn) = leases.client();
    let api: Api<Lease> = Api::namespaced(client, "default");
    let cfg = LeaseConfig::new("op", identity);
    (Elector::new(api, cfg, Fence::closed()), conn)
}

#[test]
fn defaults_keep_the_fence_margins() {
    assert!(LeaseConfig::new("a", "b").validate().is_ok());
    let mut bad = LeaseConfig::new("a", "b");
    bad.renew_deadline = bad.lease_duration;
    assert!(bad.validate().is_err());
}

#[tokio::test(start_paused = true)]
async fn the_first_replica_creates_the_lease_and_may_write() {
    let leases = FakeLeases::default();
    let (mut a, _) = elector(&leases, "a");
    assert!(!a.fence().may_write());
    assert_eq!(a.try_acquire_or_renew().await.ok(), Some(Attempt::Leading));
    assert!(a.fence().may_write());
    assert_eq!(
        leases.spec().and_then(|s| s.holder_identity).as_deref(),
        Some("a")
    );
}

#[tokio::test(start_paused = true)]
async fn a_hung_renew_closes_the_fence_at_the_renew_deadline_before_any_standby_may_take_over() {
    let leases = FakeLeases::default();
    let (mut a, a_conn) = elector(&leases, "a");
    let (mut b, _) = elector(&leases, "b");
    a.acquire().await;
    let acquired = Instant::now();
    // b sees a's lease now, and starts counting from this sight.
    assert!(matches!(
        b.try_acquire_or_renew().await,
        Ok(Attempt::Following { .. })
    ));
    let b_first_sight = Instant::now();
    // a's API server stops answering: every renew hangs.
    a_conn.hang.store(true, Ordering::SeqCst);
    let fence = a.fence().clone();
    let lost = a.hold().await;
    let stepped_down = Instant::now();
    assert_eq!(lost, Lost::RenewDeadline);
    assert!(!fence.may_write());
    // Closed no later than the renew deadline after the last successful renew was sent ...
    assert!(stepped_down <= acquired + Duration::from_secs(10));
    // ... which is before b may take over (one lease duration after its first sight).
    assert!(stepped_down < b_first_sight + Duration::from_secs(15));
    // And b does take over once it has seen no change for a lease duration.
    tokio::time::timeout(Duration::from_secs(30), b.acquire())
        .await
        .ok();
    assert!(b.fence().may_write());
    assert!(Instant::now() >= b_first_sight + Duration::from_secs(15));
    assert_eq!(
        leases.spec().and_then(|s| s.holder_identity).as_deref(),
        Some("b")
    );
}

#[tokio::test(start_paused = true)]
async fn the_fence_refuses_after_the_deadline_even_while_the_renew_is_still_in_flight() {
    let leases = FakeLeases::default();
    let (mut a, a_conn) = elector(&leases, "a");
    a.acquire().await;
    let fence = a.fence().clone();
    a_conn.hang.store(true, Ordering::SeqCst);
    let holder = tokio::spawn(async move { a.hold().await });
    tokio::time::sleep(Duration::from_millis(9_900)).await;
    assert!(fence.may_write(), "still within the renew deadline");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!fence.may_write(), "past the renew deadline");
    assert_eq!(holder.await.ok(), Some(Lost::RenewDeadline));
}

#[tokio::test(start_paused = true)]
async fn a_standby_whose_clock_runs_60s_ahead_does_not_steal_a_live_lease() {
    let leases = FakeLeases::default();
    // The holder renews every 2 s, stamping renewTime with its own clock, which
    // is 60 s behind b's: by wall-clock arithmetic (renewTime + 15 s < b's now)
    // the lease looks long expired to b. (b writes its own times 60 s ahead too.)
    let (mut b, b_conn) = elector(&leases, "b");
    b.cfg.wall_clock_offset = SignedDuration::from_secs(60);
    let renewer = leases.clone();
    let behind = |t: Timestamp| t.checked_sub(SignedDuration::from_secs(60)).unwrap_or(t);
    let live = tokio::spawn(async move {
        for _ in 0..30 {
            renewer.renew_as("a", behind(Timestamp::now()));
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    for _ in 0..25 {
        assert!(matches!(
            b.try_acquire_or_renew().await,
            Ok(Attempt::Following { ref holder }) if holder == "a"
        ));
        assert!(!b.fence().may_write());
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_eq!(
        b_conn.writes.load(Ordering::SeqCst),
        0,
        "b never wrote the lease"
    );
    live.await.ok();
    // a stops renewing: b takes over one lease duration after the last change.
    let last_change = Instant::now();
    tokio::time::timeout(Duration::from_secs(30), b.acquire())
        .await
        .ok();
    assert!(b.fence().may_write());
    assert!(Instant::now() >= last_change + Duration::from_secs(13));
}

#[tokio::test(start_paused = true)]
async fn two_replicas_racing_for_a_free_lease_get_one_leader() {
    let leases = FakeLeases::default();
    let (mut a, _) = elector(&leases, "a");
    let (mut b, _) = elector(&leases, "b");
    let (ra, rb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
    let leading = [ra.ok(), rb.ok()]
        .into_iter()
        .filter(|r| *r == Some(Attempt::Leading))
        .count();
    assert_eq!(leading, 1);
    assert_eq!(
        [a.fence().may_write(), b.fence().may_write()]
            .iter()
            .filter(|x| **x)
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_released_lease_is_taken_at_once_and_a_stale_leader_does_not_release() {
    let leases = FakeLeases::default();
    let (mut a, _) = elector(&leases, "a");
    let (mut b, _) = elector(&leases, "b");
    a.acquire().await;
    assert!(matches!(
        b.try_acquire_or_renew().await,
        Ok(Attempt::Following { .. })
    ));
    a.release().await.ok();
    assert!(!a.fence().may_write());
    assert_eq!(b.try_acquire_or_renew().await.ok(), Some(Attempt::Leading));
    // a, no longer leading, must not touch b's lease on a second release.
    a.release().await.ok();
    assert_eq!(
        leases.spec().and_then(|s| s.holder_identity).as_deref(),
        Some("b")
    );
}

#[tokio::test(start_paused = true)]
async fn losing_the_race_on_renew_steps_down() {
    let leases = FakeLeases::default();
    let (mut a, _) = elector(&leases, "a");
    a.acquire().await;
    // Someone else wrote the lease (e.g. after a long freeze of a).
    leases.renew_as("b", Timestamp::now());
    let lost = a.hold().await;
    assert_eq!(lost, Lost::TakenBy("b".into()));
    assert!(!a.fence().may_write());
}

#[test]
fn the_identity_is_the_pod_name_else_the_hostname_else_refused() {
    assert_eq!(
        identity(Some("op-7d9-x"), Some("h")).as_deref(),
        Ok("op-7d9-x")
    );
    assert_eq!(
        identity(Some(""), Some("op-7d9-y")).as_deref(),
        Ok("op-7d9-y")
    );
    assert_eq!(
        identity(None, Some(" op-7d9-z ")).as_deref(),
        Ok("op-7d9-z")
    );
    for (pod, host) in [(None, None), (Some(""), Some("  ")), (Some(" "), None)] {
        let err = identity(pod, host).err().unwrap_or_default();
        assert!(err.contains("POD_NAME"), "{err}");
    }
    let mut cfg = LeaseConfig::new("op", "");
    assert!(cfg.validate().is_err(), "an empty identity is refused");
    cfg.identity = "a".into();
    assert!(cfg.validate().is_ok());
}

#[test]
fn a_zero_retry_period_is_refused() {
    let mut cfg = LeaseConfig::new("op", "a");
    cfg.retry_period = Duration::ZERO;
    assert!(cfg.validate().is_err_and(|e| e.contains("retry period")));
}

/// The fence's rule on a fake clock: a write sent at `t` with the timeout the
/// fence gives it is over before `renew_sent + lease_duration`, at every `t`.
#[test]
fn every_allowed_write_is_over_before_the_lease_could_expire() {
    let cfg = LeaseConfig::new("op", "a");
    let sent = Instant::now();
    let fence = Fence::closed();
    assert_eq!(fence.write_budget(sent), WriteBudget::Refused);
    fence.renewed(sent, &cfg);
    let expiry = sent + cfg.lease_duration;
    let request_timeout = Duration::from_secs(15);
    for ms in (0..=11_000).step_by(100) {
        let now = sent + Duration::from_millis(ms);
        match fence.write_budget(now) {
            WriteBudget::Within(budget) => {
                assert!(
                    now < sent + cfg.renew_deadline,
                    "sent after the deadline at {ms} ms"
                );
                let timeout = budget.min(request_timeout);
                assert!(
                    now + timeout < expiry,
                    "a write sent at {ms} ms could land after expiry"
                );
            }
            WriteBudget::Refused => assert!(now >= sent + cfg.renew_deadline, "refused at {ms} ms"),
            WriteBudget::Unlimited => panic!("a closed fence is never unlimited"),
        }
    }
    // Just before the deadline, a write still gets most of the 5 s gap.
    assert_eq!(
        fence.write_budget(sent + Duration::from_millis(9_900)),
        WriteBudget::Within(Duration::from_millis(4_600))
    );
    assert_eq!(Fence::open().write_budget(sent), WriteBudget::Unlimited);
}

/// SIGTERM: the controllers drain for 30 s (two lease durations); the leader
/// renews all along (its fence stays open, the standby never takes over), then
/// releases, and the standby takes the lease at once.
#[tokio::test(start_paused = true)]
async fn the_leader_renews_while_reconciles_drain_then_releases() {
    let leases = FakeLeases::default();
    let (mut a, _) = elector(&leases, "a");
    let (mut b, _) = elector(&leases, "b");
    a.acquire().await;
    let fence = a.fence().clone();
    let drain = Duration::from_secs(30);
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let leader = tokio::spawn(async move {
        let lost = a
            .hold_until(async move {
                let _ = drained_rx.await;
            })
            .await;
        (a, lost)
    });
    let start = Instant::now();
    while start.elapsed() < drain {
        assert!(
            fence.may_write(),
            "fence closed {:?} into the drain",
            start.elapsed()
        );
        assert!(matches!(
            b.try_acquire_or_renew().await,
            Ok(Attempt::Following { ref holder }) if holder == "a"
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let _ = drained_tx.send(());
    let Ok((mut a, lost)) = leader.await else {
        panic!("the lease task failed");
    };
    assert_eq!(lost, None, "still leading when the drain ended");
    a.release().await.ok();
    assert_eq!(b.try_acquire_or_renew().await.ok(), Some(Attempt::Leading));
}
