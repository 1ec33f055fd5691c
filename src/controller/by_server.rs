//! The names of cached pods and ReplicaSets by the server they belong to (their
//! `mcp.operator.dev/server` label), kept from the same watch events as kube's
//! reflector store, so a reconcile looks up its own pods instead of scanning
//! every cached one (at N = 1,000 that scan was 14 % of the operator's CPU).
//! The index only narrows: `Stores::selected` still reads each candidate from
//! the store and checks its labels, so a name left behind costs a lookup,
//! never a wrong answer.
use crate::builders::labels::SERVER_LABEL;
use kube::runtime::watcher::Event;
use kube::{Resource, ResourceExt};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

/// (namespace, server) -> names, and (namespace, name) -> server to move or
/// drop a name when its object changes server or goes.
#[derive(Default)]
struct Maps {
    names: HashMap<(String, String), HashSet<String>>,
    server_of: HashMap<(String, String), String>,
}

impl Maps {
    fn put<K: Resource>(&mut self, o: &K) {
        let (ns, name) = (o.namespace().unwrap_or_default(), o.name_any());
        match o.labels().get(SERVER_LABEL) {
            Some(server) => {
                let old = self
                    .server_of
                    .insert((ns.clone(), name.clone()), server.clone());
                if let Some(old) = old.filter(|old| old != server) {
                    self.unlink(&ns, &name, old);
                }
                self.names
                    .entry((ns, server.clone()))
                    .or_default()
                    .insert(name);
            }
            None => self.remove(&ns, &name),
        }
    }

    fn remove(&mut self, ns: &str, name: &str) {
        if let Some(old) = self.server_of.remove(&(ns.to_string(), name.to_string())) {
            self.unlink(ns, name, old);
        }
    }

    fn unlink(&mut self, ns: &str, name: &str, server: String) {
        let key = (ns.to_string(), server);
        if let Some(set) = self.names.get_mut(&key) {
            set.remove(name);
            if set.is_empty() {
                self.names.remove(&key);
            }
        }
    }
}

#[derive(Default)]
struct State {
    live: Maps,
    /// A relist in progress: it replaces `live` when complete, as kube's store
    /// replaces its objects.
    relist: Option<Maps>,
}

/// Shared between the watch stream that fills it and the reconciles that read it.
#[derive(Clone, Default)]
pub struct ByServer(Arc<RwLock<State>>);

impl ByServer {
    /// Follow one watch event (before kube's store applies it).
    pub fn apply<K: Resource>(&self, event: &Event<K>) {
        // A panic under this lock cannot leave the maps half-written in a way a
        // reader trusts (the store check follows), so a poisoned lock is used.
        let mut s = self.0.write().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Apply(o) => s.live.put(o),
            Event::Delete(o) => s
                .live
                .remove(&o.namespace().unwrap_or_default(), &o.name_any()),
            Event::Init => s.relist = Some(Maps::default()),
            Event::InitApply(o) => s.relist.get_or_insert_with(Maps::default).put(o),
            Event::InitDone => {
                if let Some(m) = s.relist.take() {
                    s.live = m;
                }
            }
        }
    }

    /// The names of `server`'s objects in `ns`.
    pub fn names(&self, ns: &str, server: &str) -> Vec<String> {
        let s = self.0.read().unwrap_or_else(|e| e.into_inner());
        s.live
            .names
            .get(&(ns.to_string(), server.to_string()))
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::cached::CachedPod;

    fn pod(ns: &str, name: &str, server: Option<&str>) -> CachedPod {
        let mut p = CachedPod::default();
        p.metadata.namespace = Some(ns.into());
        p.metadata.name = Some(name.into());
        p.metadata.labels = server.map(|s| [(SERVER_LABEL.to_string(), s.to_string())].into());
        p
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn follows_applies_moves_and_deletes() {
        let ix = ByServer::default();
        ix.apply(&Event::Apply(pod("a", "p1", Some("s"))));
        ix.apply(&Event::Apply(pod("a", "p2", Some("s"))));
        ix.apply(&Event::Apply(pod("b", "p3", Some("s"))));
        assert_eq!(sorted(ix.names("a", "s")), ["p1", "p2"]);
        assert_eq!(ix.names("b", "s"), ["p3"], "namespaces apart");
        // Relabelled to another server, then unlabelled, then deleted.
        ix.apply(&Event::Apply(pod("a", "p1", Some("t"))));
        assert_eq!(ix.names("a", "s"), ["p2"]);
        assert_eq!(ix.names("a", "t"), ["p1"]);
        ix.apply(&Event::Apply(pod("a", "p1", None)));
        assert!(ix.names("a", "t").is_empty());
        ix.apply(&Event::Delete(pod("a", "p2", Some("s"))));
        assert!(ix.names("a", "s").is_empty());
        let s = ix.0.read().unwrap_or_else(|e| e.into_inner());
        assert_eq!(s.live.names.len(), 1, "emptied keys go: {:?}", s.live.names);
        assert_eq!(s.live.server_of.len(), 1);
    }

    #[test]
    fn a_relist_replaces_everything_when_done() {
        let ix = ByServer::default();
        ix.apply(&Event::Apply(pod("a", "old", Some("s"))));
        ix.apply(&Event::<CachedPod>::Init);
        ix.apply(&Event::InitApply(pod("a", "new", Some("s"))));
        assert_eq!(
            ix.names("a", "s"),
            ["old"],
            "the old list serves until the new one is whole"
        );
        ix.apply(&Event::<CachedPod>::InitDone);
        assert_eq!(ix.names("a", "s"), ["new"]);
    }
}
