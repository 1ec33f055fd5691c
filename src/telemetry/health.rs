//! What /healthz and /readyz report: whether the core tasks (controllers, MCP
//! prober, dependency prober, leader elector) still run, and whether the API
//! server has answered.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

#[derive(Default)]
pub struct Health {
    ready: AtomicBool,
    next: AtomicU64,
    tasks: Mutex<Vec<Entry>>,
}

struct Entry {
    id: u64,
    name: &'static str,
    task: AbortHandle,
    /// Set when the task was told to stop: its end is then not a death.
    stop: Option<watch::Receiver<bool>>,
}

impl Entry {
    fn dead(&self) -> bool {
        self.task.is_finished() && !self.stop.as_ref().is_some_and(|s| *s.borrow())
    }
}

impl Health {
    /// Ready once the API server has answered a request. A standby is ready
    /// too: rollouts and drains of the operator itself must not wait for the lease.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Watch a task that must run until its owner stops it: /healthz fails
    /// once it has ended (panicked, or returned), unless `stop` (the signal
    /// its owner stops it with) was sent first. The owner drops the returned
    /// guard before it aborts the task.
    pub fn watch<T>(
        self: &Arc<Self>,
        name: &'static str,
        task: &JoinHandle<T>,
        stop: Option<watch::Receiver<bool>>,
    ) -> Watched {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(Entry {
                id,
                name,
                task: task.abort_handle(),
                stop,
            });
        }
        Watched {
            health: self.clone(),
            id,
        }
    }

    /// Names of the watched tasks that have died.
    pub fn dead(&self) -> Vec<&'static str> {
        match self.tasks.lock() {
            Ok(tasks) => tasks.iter().filter(|e| e.dead()).map(|e| e.name).collect(),
            Err(_) => vec!["health registry"],
        }
    }
}

/// A task watched by [`Health`]; dropping it stops the watch.
#[must_use = "the watch ends when this is dropped"]
pub struct Watched {
    health: Arc<Health>,
    id: u64,
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.health.tasks.lock() {
            tasks.retain(|e| e.id != self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_unasked_is_dead_and_one_told_to_stop_is_not() {
        let health = Arc::new(Health::default());
        let running = tokio::spawn(std::future::pending::<()>());
        let _r = health.watch("controller", &running, None);
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = tokio::spawn(async {});
        let _s = health.watch("leader elector", &stopped, Some(stop_rx));
        let _ = stop_tx.send(true);
        let _ = stopped.await;
        assert!(health.dead().is_empty());

        let panics = tokio::spawn(async { panic!("a bug") });
        let w = health.watch("dependency prober", &panics, None);
        assert!(panics.await.is_err());
        assert_eq!(health.dead(), ["dependency prober"]);
        drop(w);
        assert!(
            health.dead().is_empty(),
            "an unwatched task no longer counts"
        );
        running.abort();
    }
}
