use super::*;
use kube::runtime::{reflector, watcher};

fn t(ns: &str, addr: &str, timeout_ms: u64) -> Target {
    Target {
        namespace: ns.into(),
        addr: addr.into(),
        timeout_ms,
    }
}

fn wall(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn server(ns: &str, name: &str, host: &str, port: u16, timeout_ms: u64) -> McpServer {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "mcp.operator.dev/v1alpha1", "kind": "McpServer",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}")},
        "spec": {"image": "notes:1", "replicas": {"min": 1, "max": 1},
                 "database": {"urlSecretRef": {"name": "db", "key": "url"},
                              "probe": {"host": host, "port": port, "timeoutMs": timeout_ms}}}
    }))
    .unwrap_or_else(|e| panic!("fixture McpServer: {e}"))
}

#[test]
fn verdicts_report_changes_and_keep_since() {
    let v = Verdicts::default();
    let db = t("team-a", "db.example:5432", 500);
    let t0 = Instant::now();
    assert_eq!(v.get(&db), None);
    assert!(v.record(&db, true, t0, wall(0)), "first verdict");
    assert!(!v.record(&db, true, t0, wall(5)), "same verdict");
    assert_eq!(
        v.get(&db).map(|v| (v.since, v.checked_at)),
        Some((wall(0), wall(5)))
    );
    assert!(v.record(&db, false, t0, wall(10)), "changed");
    assert_eq!(v.get(&db).map(|v| v.since), Some(wall(10)));
    let other = t("team-b", "db.example:5432", 500);
    assert_eq!(v.get(&other), None, "verdicts are per namespace");
}

#[test]
fn a_verdict_older_than_its_bound_is_unknown() {
    let db = t("team-a", "db.example:5432", 1000);
    assert_eq!(db.max_age(), Duration::from_secs(16));
    let t0 = Instant::now();
    let v = Verdict {
        up: false,
        at: t0,
        checked_at: wall(0),
        since: wall(-30),
    };
    let fresh = observe(&db, Some(&v), t0 + Duration::from_secs(16));
    assert_eq!(fresh.state, DependencyState::Down);
    assert_eq!(fresh.reason.as_deref(), Some("ProbeFailed"));
    assert_eq!(fresh.since, Some(Time(wall(-30))));
    let stale = observe(&db, Some(&v), t0 + Duration::from_secs(17));
    assert_eq!(stale.state, DependencyState::Unknown);
    assert_eq!(stale.reason.as_deref(), Some("ProbeStale"));
    let m = stale.message.clone().unwrap_or_default();
    assert!(
        m.contains("within 16s") && m.contains("failed") && m.contains(&wall(0).to_string()),
        "{m}"
    );
    // The message names the last verdict's time, not its age: no status write per reconcile.
    assert_eq!(observe(&db, Some(&v), t0 + Duration::from_secs(90)), stale);
    let up = Verdict { up: true, ..v };
    assert_eq!(
        observe(&db, Some(&up), t0 + Duration::from_secs(60)).state,
        DependencyState::Unknown
    );
    assert_eq!(observe(&db, Some(&up), t0).state, DependencyState::Up);
    let pending = observe(&db, None, t0);
    assert_eq!(
        (pending.state, pending.reason.as_deref()),
        (DependencyState::Unknown, Some("ProbePending"))
    );
}

#[test]
fn messages_bound_the_address() {
    let long = t("team-a", &format!("{}:5432", "a".repeat(5000)), 500);
    let m = observe(&long, None, Instant::now())
        .message
        .unwrap_or_default();
    assert!(m.len() < 400, "{} bytes", m.len());
}

#[test]
fn confined_hosts_are_services_of_the_own_namespace() {
    let ok = |h: &str| confined_host(h, "team-a");
    for h in [
        "pg",
        "pg.team-a",
        "pg.team-a.svc",
        "pg.team-a.svc.cluster.local",
        "pg.team-a.svc.cluster.local.",
    ] {
        assert_eq!(ok(h).as_deref(), Some("pg.team-a.svc"), "{h}");
    }
    for h in [
        "10.0.0.1",
        "127.0.0.1",
        "::1",
        "[::1]",
        "1",
        "pg.team-b",
        "pg.team-b.svc",
        "pg.team-b.svc.cluster.local",
        "pg.team-a.svc.evil.example",
        "db.example.com",
        "pg.team-a.pod",
        "",
        ".",
        "Pg",
        "pg-",
        "-pg",
        "pg_x",
        "kubernetes.default",
        "pg.team-a.svc.cluster.local.x",
        "metadata.google.internal",
    ] {
        assert_eq!(ok(h), None, "{h:?} must be refused");
    }
    let mcp = server("team-a", "notes", "pg", 5432, 500);
    assert_eq!(
        target(&mcp, true).map(|t| t.addr),
        Some("pg.team-a.svc:5432".into())
    );
    assert_eq!(target(&mcp, false).map(|t| t.addr), Some("pg:5432".into()));
    let ip = server("team-a", "notes", "10.0.0.7", 22, 500);
    assert_eq!(target(&ip, true), None, "nothing is probed out of scope");
    assert_eq!(
        target(&ip, false).map(|t| t.addr),
        Some("10.0.0.7:22".into())
    );
}

/// A simulation of the prober's loop on a fake clock: `outcome` says how each
/// probe goes (up, how long it takes). Calls `check(now, last verdict times)`
/// at every look and every finished probe; returns the probes started per target.
fn simulate(
    targets: &[Target],
    mut outcome: impl FnMut(&Target) -> (bool, Duration),
    run_for: Duration,
    mut check: impl FnMut(Instant, &HashMap<Target, Instant>),
) -> HashMap<Target, usize> {
    let t0 = Instant::now();
    let mut now = t0;
    let mut s = Schedule::default();
    let mut running: Vec<(Instant, Target, Duration)> = Vec::new();
    let mut verdicts: HashMap<Target, Instant> = HashMap::new();
    let mut started: HashMap<Target, usize> = HashMap::new();
    let n = targets.len().max(1) as u32;
    let mut i = 0u32;
    let mut launch =
        |s: &mut Schedule, now: Instant, running: &mut Vec<(Instant, Target, Duration)>| {
            let batch = s.start(now);
            for t in batch {
                let (_, took) = outcome(&t);
                *started.entry(t.clone()).or_default() += 1;
                running.push((now + took, t, took));
            }
            assert!(running.len() <= CONCURRENCY, "{} in flight", running.len());
        };
    while now < t0 + run_for {
        // First probes spread over a period, as `run` does (deterministically here).
        s.sync(targets, now, || {
            i += 1;
            PERIOD * (i % n) / n
        });
        s.newly_stale(now);
        launch(&mut s, now, &mut running);
        check(now, &verdicts);
        let next_look = now + TICK;
        loop {
            running.sort_by_key(|(end, _, _)| *end);
            if running.first().is_none_or(|(end, _, _)| *end > next_look) {
                break;
            }
            let (end, t, took) = running.remove(0);
            now = end;
            // The longest jittered period: the worst case for freshness.
            s.finished(&t, took, now, PERIOD.mul_f64(1.0 + JITTER));
            verdicts.insert(t, now);
            check(now, &verdicts);
            launch(&mut s, now, &mut running);
        }
        now = next_look;
    }
    started
}

/// The freshness a healthy target keeps: its longest period, its timeout and
/// one look at the schedule.
fn fresh_bound(t: &Target) -> Duration {
    PERIOD.mul_f64(1.0 + JITTER) + t.timeout() + TICK
}

/// `first_wait`: how long the first probe may wait for other targets' first
/// probes (those of its own namespace).
fn assert_fresh(
    now: Instant,
    t0: Instant,
    verdicts: &HashMap<Target, Instant>,
    healthy: &[Target],
    first_wait: Duration,
) {
    for h in healthy {
        match verdicts.get(h) {
            Some(at) => assert!(
                now.saturating_duration_since(*at) <= fresh_bound(h),
                "{h:?}: verdict {:?} old at {:?}",
                now.saturating_duration_since(*at),
                now - t0
            ),
            // The first verdict: within a period (its first due) and a timeout,
            // plus one look, even while black-holed targets hold every other slot.
            None => assert!(
                now - t0 <= PERIOD + first_wait + h.timeout() + TICK,
                "{h:?}: no verdict after {:?}",
                now - t0
            ),
        }
    }
}

#[test]
fn black_holed_targets_cannot_delay_a_healthy_verdict() {
    // 160 black-holed targets (every probe hangs until its 10 s timeout) in one
    // namespace, a healthy target in another namespace and one beside them.
    let mut targets: Vec<Target> = (0..160)
        .map(|i| t("hostile", &format!("10.0.0.{i}:5432"), 10_000))
        .collect();
    let good = t("good", "db.good.svc:5432", 500);
    let beside = t("hostile", "db.hostile.svc:5432", 500);
    let healthy = vec![good.clone(), beside.clone()];
    targets.extend(healthy.iter().cloned());
    let t0 = Instant::now();
    let started = simulate(
        &targets,
        |t| {
            if t.timeout_ms == 10_000 {
                (false, t.timeout())
            } else {
                (true, Duration::from_millis(2))
            }
        },
        Duration::from_secs(180),
        |now, v| {
            assert_fresh(now, t0, v, std::slice::from_ref(&good), Duration::ZERO);
            // Beside them, its first probe may wait for theirs (one timeout);
            // after that it is as fresh as the other.
            assert_fresh(
                now,
                t0,
                v,
                std::slice::from_ref(&beside),
                Duration::from_secs(10),
            );
        },
    );
    for h in &healthy {
        // 175 s (after a first due within 5 s) at one probe per 6.25 s at worst.
        let n = started.get(h).copied().unwrap_or(0);
        assert!(n >= 28, "{h:?}: {n} probes");
    }
    // The black-holed ones are not starved either: they share what is left.
    assert!(
        targets
            .iter()
            .all(|t| started.get(t).copied().unwrap_or(0) >= 2),
        "a black-holed target was starved"
    );
}

#[test]
fn a_target_that_answers_then_hangs_cannot_hold_the_reserve() {
    // Hostile targets answer quickly every other probe (so they look fast) and
    // hang until their timeout the other times.
    let mut targets: Vec<Target> = (0..200)
        .map(|i| t("hostile", &format!("10.0.1.{i}:5432"), 10_000))
        .collect();
    let healthy = vec![t("good", "db.good.svc:5432", 500)];
    targets.extend(healthy.iter().cloned());
    let mut probes: HashMap<Target, u32> = HashMap::new();
    let t0 = Instant::now();
    simulate(
        &targets,
        |t| {
            if t.namespace == "good" {
                return (true, Duration::from_millis(2));
            }
            let n = probes.entry(t.clone()).or_default();
            *n += 1;
            if *n % 2 == 1 {
                (true, Duration::from_millis(2))
            } else {
                (false, t.timeout())
            }
        },
        Duration::from_secs(180),
        |now, v| assert_fresh(now, t0, v, &healthy, Duration::ZERO),
    );
}

#[test]
fn forgotten_targets_free_their_slot_when_their_probe_ends() {
    let mut s = Schedule::default();
    let t0 = Instant::now();
    let a = t("a", "h:1", 1000);
    let b = t("b", "h:1", 1000);
    s.sync([&a, &b], t0, || Duration::ZERO);
    assert_eq!(
        s.start(t0),
        vec![a.clone(), b.clone()],
        "both namespaces at once"
    );
    assert!(s.start(t0).is_empty(), "one probe per target at a time");
    s.sync([&b], t0, || Duration::ZERO);
    assert_eq!(s.running, 2, "a's probe still runs");
    assert!(!s.finished(&a, Duration::from_millis(1), t0, PERIOD));
    assert_eq!(s.running, 1);
    assert!(!s.entries.contains_key(&a));
    // b goes stale once, and its next verdict is news.
    s.finished(&b, Duration::from_millis(1), t0, PERIOD);
    assert!(s.newly_stale(t0 + b.max_age()).is_empty());
    assert_eq!(
        s.newly_stale(t0 + b.max_age() + Duration::from_millis(1)),
        vec![b.clone()]
    );
    assert!(s.newly_stale(t0 + b.max_age() * 2).is_empty(), "told once");
    let late = t0 + b.max_age() * 2;
    assert_eq!(s.start(late), vec![b.clone()]);
    assert!(
        s.finished(&b, Duration::from_millis(1), late, PERIOD),
        "the verdict after a stale spell wakes"
    );
}

/// A listener on loopback whose accept queue is full: a connect to it hangs
/// (the kernel drops the SYN) until the prober's timeout, as to a black-holed
/// host, without leaving the machine.
async fn black_hole() -> (
    std::net::SocketAddr,
    Vec<tokio::net::TcpStream>,
    tokio::net::TcpListener,
) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("socket: {e}"));
    sock.bind("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let l = sock.listen(0).unwrap_or_else(|e| panic!("listen: {e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let mut held = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(e)) => panic!("connect to the black hole: {e}"),
            Err(_) => return (addr, held, l),
        }
    }
    panic!("the accept queue of {addr} never filled: no black hole on loopback");
}

/// Accept times on a healthy listener.
fn healthy_listener(l: tokio::net::TcpListener) -> Arc<Mutex<Vec<Instant>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((_conn, _)) = l.accept().await {
            if let Ok(mut v) = s.lock() {
                v.push(Instant::now());
            }
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sockets_160_black_holed_targets_and_healthy_ones() {
    let (hole, _held, _hole_listener) = black_hole().await;
    let mut servers: Vec<McpServer> = (0..160u64)
        .map(|i| {
            server(
                "hostile",
                &format!("scan-{i}"),
                "127.0.0.1",
                hole.port(),
                9_841 + i,
            )
        })
        .collect();
    let mut seen = Vec::new();
    for ns in ["good"] {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let port = l.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
        servers.push(server(ns, "healthy", "127.0.0.1", port, 500));
        seen.push((ns, port, healthy_listener(l)));
    }
    let (store, mut w) = reflector::store();
    for m in servers {
        w.apply_watcher_event(&watcher::Event::Apply(m));
    }
    let verdicts = Verdicts::default();
    let (wake_tx, mut wake_rx) = mpsc::channel(1024);
    let t0 = Instant::now();
    let prober = tokio::spawn(run(store, verdicts.clone(), wake_tx, false));
    let woken = tokio::spawn(async move {
        let mut first: HashMap<String, Instant> = HashMap::new();
        while let Some(r) = wake_rx.recv().await {
            if r.name == "healthy" {
                first
                    .entry(r.namespace.unwrap_or_default())
                    .or_insert_with(Instant::now);
            }
        }
        first
    });
    // Two probes of each healthy target: the first within a period and its
    // timeout, the next within the longest period and its timeout.
    let slack = Duration::from_millis(500);
    let first_by = PERIOD + Duration::from_millis(500) + slack;
    let gap = PERIOD.mul_f64(1.0 + JITTER) + Duration::from_millis(500) + slack;
    tokio::time::sleep_until(t0 + first_by + gap).await;
    prober.abort();
    let first_wake = woken.await.unwrap_or_default();
    for (ns, port, s) in &seen {
        let times = s.lock().map(|v| v.clone()).unwrap_or_default();
        let first = times.first().map(|t| *t - t0);
        assert!(
            first.is_some_and(|f| f <= first_by),
            "{ns}: first probe at {first:?}, want <= {first_by:?}"
        );
        let next = times.get(1).map(|t| *t - times[0]);
        assert!(
            next.is_some_and(|g| g <= gap),
            "{ns}: second probe {next:?} after the first, want <= {gap:?}"
        );
        let woke = first_wake.get(*ns).map(|t| *t - t0);
        assert!(
            woke.is_some_and(|w| w <= first_by),
            "{ns}: McpServer woken at {woke:?}, want <= {first_by:?}"
        );
        let v = verdicts.get(&t(ns, &format!("127.0.0.1:{port}"), 500));
        let age = v.as_ref().map(|v| v.at.elapsed());
        assert!(v.as_ref().is_some_and(|v| v.up), "{ns}: {v:?}");
        assert!(age.is_some_and(|a| a <= gap), "{ns}: verdict {age:?} old");
    }
}
