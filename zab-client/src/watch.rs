//! The session's watches, client side: which requests arm one, which events
//! each reports, where each event is delivered, and what is re-armed after
//! a reconnect. Sans-IO: delivery targets are plain values the driver maps
//! to its channels.

use std::collections::BTreeSet;

use zab_proto::{
    AddWatchMode, Request, Response, SetWatches, WatchEvent, WatchEventKind, WatcherKind,
};

use crate::machine::CallId;

/// Which watch a request armed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Armed {
    Data,
    Exists,
    Child,
    Persistent,
    Recursive,
}

impl Armed {
    /// Fires once, then is gone.
    pub(crate) fn is_one_shot(self) -> bool {
        matches!(self, Armed::Data | Armed::Exists | Armed::Child)
    }

    /// Whether a watch of this kind on `path` reports `event`. The server
    /// sends a session one event per change however many of its watches
    /// fire, so the client routes it to every watch that reports it.
    pub(crate) fn reports(self, path: &str, event: &WatchEvent) -> bool {
        use WatchEventKind as K;
        let here = event.path == path;
        match self {
            Armed::Data => here && matches!(event.kind, K::NodeDeleted | K::NodeDataChanged),
            Armed::Exists => {
                here && matches!(
                    event.kind,
                    K::NodeCreated | K::NodeDeleted | K::NodeDataChanged
                )
            }
            Armed::Child => here && matches!(event.kind, K::NodeDeleted | K::NodeChildrenChanged),
            Armed::Persistent => here,
            // As in ZooKeeper, a recursive watch reports a child's creation
            // as NodeCreated, never its parent's NodeChildrenChanged (which
            // reaches this session only for another watch of it).
            Armed::Recursive if event.kind == K::NodeChildrenChanged => false,
            Armed::Recursive => {
                here || path == "/"
                    || event
                        .path
                        .strip_prefix(path)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }

    /// Whether RemoveWatches of `kind` removes a watch of this kind (as the
    /// server does: `Data` covers exists watches too).
    pub(crate) fn removed_by(self, kind: WatcherKind) -> bool {
        match kind {
            WatcherKind::Any => true,
            WatcherKind::Children => self == Armed::Child,
            WatcherKind::Data => matches!(self, Armed::Data | Armed::Exists),
            WatcherKind::Persistent => self == Armed::Persistent,
            WatcherKind::PersistentRecursive => self == Armed::Recursive,
        }
    }

    /// The watch `request` arms if it succeeds.
    pub(crate) fn of(request: &Request) -> Option<(Armed, String)> {
        match request {
            Request::GetData { path, watch: true } => Some((Armed::Data, path.clone())),
            Request::Exists { path, watch: true } => Some((Armed::Exists, path.clone())),
            Request::GetChildren { path, watch: true } => Some((Armed::Child, path.clone())),
            Request::AddWatch { path, mode } => Some((
                match mode {
                    AddWatchMode::Persistent => Armed::Persistent,
                    AddWatchMode::PersistentRecursive => Armed::Recursive,
                },
                path.clone(),
            )),
            _ => None,
        }
    }
}

/// Where a watch's events go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The session-wide event stream (`Client::next_event`).
    Session,
    /// The stream of the watch armed by this call (`WatchStream`).
    Stream(CallId),
}

/// One registered watch, as the application sees it.
#[derive(Debug)]
struct Watcher {
    kind: Armed,
    path: String,
    to: Delivery,
}

/// What became of one event.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Routed {
    /// Deliver the event to each of these, in order.
    pub to: Vec<Delivery>,
    /// These streams' one-shot watches fired: they end after this event.
    pub ended: Vec<CallId>,
}

/// Every watch of the session: what the server has armed (to re-register
/// after a reconnect) and who listens.
#[derive(Debug, Default)]
pub(crate) struct Watches {
    /// Armed on the server, as re-registered after a reconnect.
    armed: BTreeSet<(Armed, String)>,
    watchers: Vec<Watcher>,
}

impl Watches {
    /// `kind` on `path` was armed by a successful reply `response`.
    pub(crate) fn armed(&mut self, kind: Armed, path: String, response: &Response, to: Delivery) {
        // An exists watch on a node that exists is re-armed as a data watch,
        // so a reconnect reports its deletion (wire-spec.md, SetWatches).
        let rearm_as = match (kind, response) {
            (Armed::Exists, Response::Exists(Some(_))) => Armed::Data,
            _ => kind,
        };
        self.armed.insert((rearm_as, path.clone()));
        self.watchers.push(Watcher { kind, path, to });
    }

    /// Routes `event`: to every stream whose watch reports it, and to the
    /// session stream if a watch armed without a stream reports it (or none
    /// claims it), so an application that reads only watch streams
    /// accumulates nothing. One-shot watches it fires are consumed.
    pub(crate) fn route(&mut self, event: &WatchEvent) -> Routed {
        let fires_one_shot = |k: Armed, p: &str| k.is_one_shot() && k.reports(p, event);
        self.armed.retain(|(k, p)| !fires_one_shot(*k, p));
        let mut routed = Routed::default();
        let mut session = false;
        let mut streamed = false;
        self.watchers.retain(|w| {
            if !w.kind.reports(&w.path, event) {
                return true;
            }
            match w.to {
                Delivery::Session => session = true,
                Delivery::Stream(call) => {
                    streamed = true;
                    if !routed.to.contains(&w.to) {
                        routed.to.push(w.to);
                    }
                    if w.kind.is_one_shot() {
                        routed.ended.push(call);
                    }
                }
            }
            !w.kind.is_one_shot()
        });
        if session || !streamed {
            routed.to.push(Delivery::Session);
        }
        routed
    }

    /// The SetWatches that re-arms everything on a new server, relative to
    /// `zxid`; None if nothing is armed. One-shot watches stay listed until
    /// their event arrives (from the catch-up or later), so a further
    /// reconnect re-arms them.
    pub(crate) fn rearm(&self, zxid: u64) -> Option<SetWatches> {
        if self.armed.is_empty() {
            return None;
        }
        let mut set = SetWatches {
            relative_zxid: zxid,
            ..Default::default()
        };
        for (kind, path) in &self.armed {
            let list = match kind {
                Armed::Data => &mut set.data,
                Armed::Exists => &mut set.exists,
                Armed::Child => &mut set.children,
                Armed::Persistent => &mut set.persistent,
                Armed::Recursive => &mut set.persistent_recursive,
            };
            list.push(path.clone());
        }
        Some(set)
    }

    /// The server refused to re-arm the session's watches (SetWatches failed,
    /// say past its watch limit): none is armed any more. Every watch is
    /// dropped; each delivery target gets one `ContinuityLost` per path it
    /// watched, so the application knows to re-read and re-watch. Returns
    /// the events and the streams to end after them.
    pub(crate) fn lost(&mut self, zxid: u64) -> (Vec<(Delivery, WatchEvent)>, Vec<CallId>) {
        self.armed.clear();
        let mut events: Vec<(Delivery, WatchEvent)> = Vec::new();
        let mut ended = Vec::new();
        for w in self.watchers.drain(..) {
            let event = WatchEvent {
                kind: WatchEventKind::ContinuityLost,
                path: w.path,
                zxid,
            };
            if !events
                .iter()
                .any(|(to, e)| *to == w.to && e.path == event.path)
            {
                events.push((w.to, event));
            }
            if let Delivery::Stream(call) = w.to {
                if !ended.contains(&call) {
                    ended.push(call);
                }
            }
        }
        (events, ended)
    }

    /// The server removed this session's watches of `kind` on `path`: they
    /// are no longer re-armed, and their streams end (returned).
    pub(crate) fn remove(&mut self, kind: WatcherKind, path: &str) -> Vec<CallId> {
        self.armed
            .retain(|(k, p)| !(p == path && k.removed_by(kind)));
        let mut ended = Vec::new();
        self.watchers.retain(|w| {
            let gone = w.path == path && w.kind.removed_by(kind);
            if let (true, Delivery::Stream(call)) = (gone, w.to) {
                if !ended.contains(&call) {
                    ended.push(call);
                }
            }
            !gone
        });
        ended
    }

    /// The session ended: no watch can fire any more. Returns the streams
    /// to end.
    pub(crate) fn clear(&mut self) -> Vec<CallId> {
        self.armed.clear();
        let mut ended = Vec::new();
        for w in self.watchers.drain(..) {
            if let Delivery::Stream(call) = w.to {
                if !ended.contains(&call) {
                    ended.push(call);
                }
            }
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zab_proto::Stat;

    fn event(kind: WatchEventKind, path: &str) -> WatchEvent {
        WatchEvent {
            kind,
            path: path.into(),
            zxid: 9,
        }
    }

    #[test]
    fn a_recursive_watch_reports_its_subtree_but_not_children_changed() {
        let k = Armed::Recursive;
        assert!(k.reports("/a", &event(WatchEventKind::NodeCreated, "/a/b/c")));
        assert!(k.reports("/a", &event(WatchEventKind::NodeDataChanged, "/a")));
        assert!(!k.reports("/a", &event(WatchEventKind::NodeCreated, "/ab")));
        assert!(!k.reports("/a", &event(WatchEventKind::NodeChildrenChanged, "/a")));
        assert!(k.reports("/", &event(WatchEventKind::NodeDeleted, "/x")));
    }

    #[test]
    fn events_go_to_every_stream_that_reports_them_and_one_shots_end() {
        let mut w = Watches::default();
        let ok = Response::GetData {
            data: bytes::Bytes::new(),
            stat: Stat::default(),
        };
        w.armed(Armed::Data, "/a".into(), &ok, Delivery::Stream(CallId(1)));
        w.armed(
            Armed::Recursive,
            "/".into(),
            &Response::AddWatch,
            Delivery::Stream(CallId(2)),
        );
        let changed = event(WatchEventKind::NodeDataChanged, "/a");
        assert_eq!(
            w.route(&changed),
            Routed {
                to: vec![Delivery::Stream(CallId(1)), Delivery::Stream(CallId(2))],
                ended: vec![CallId(1)],
            }
        );
        // The one-shot is gone; the recursive watch goes on.
        assert_eq!(w.route(&changed).to, [Delivery::Stream(CallId(2))]);
        // Nobody claims /b's children: the session stream gets it.
        let children = event(WatchEventKind::NodeChildrenChanged, "/b");
        assert_eq!(w.route(&children).to, [Delivery::Session]);
    }

    #[test]
    fn an_exists_watch_on_a_present_node_is_rearmed_as_a_data_watch() {
        let mut w = Watches::default();
        let present = Response::Exists(Some(Stat::default()));
        w.armed(Armed::Exists, "/p".into(), &present, Delivery::Session);
        w.armed(
            Armed::Exists,
            "/q".into(),
            &Response::Exists(None),
            Delivery::Session,
        );
        let set = w.rearm(7).expect("armed");
        assert_eq!(
            (set.relative_zxid, set.data, set.exists),
            (7, vec!["/p".to_string()], vec!["/q".to_string()])
        );
        w.route(&event(WatchEventKind::NodeDeleted, "/p"));
        w.route(&event(WatchEventKind::NodeCreated, "/q"));
        assert!(w.rearm(8).is_none(), "fired one-shots are not re-armed");
    }
}
