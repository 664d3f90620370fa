//! A reconnect's catch-up is delivered once: held until the SetWatches
//! reply, dropped with a connection that breaks before it, sent again whole
//! on the next one.

use super::*;

fn persistent(path: &str) -> Request {
    Request::AddWatch {
        path: path.into(),
        mode: AddWatchMode::Persistent,
    }
}

fn changed(watch: CallId, path: &str, zxid: u64) -> Output {
    Output::Event {
        to: Delivery::Stream(watch),
        event: WatchEvent {
            kind: WatchEventKind::NodeDataChanged,
            path: path.into(),
            zxid,
        },
    }
}

#[test]
fn a_catch_up_cut_short_is_delivered_once_from_the_next_connection() {
    let mut m = connected();
    let watch = m.call(persistent("/p"), true);
    m.take_outputs();
    m.received(10, &reply(1, 15, Outcome::Ok(Response::AddWatch)));
    m.take_outputs();

    m.connection_lost(100);
    m.take_outputs();
    m.dialed(101);
    m.take_outputs();
    m.received(102, &accepted(0x55, 30));
    let set = SetWatches {
        relative_zxid: 15,
        persistent: vec!["/p".into()],
        ..Default::default()
    };
    assert_eq!(
        m.take_outputs(),
        [
            Output::State(SessionState::Reconnected),
            op(2, Request::SetWatches(set.clone())),
        ]
    );
    // Two of the replayed events arrive, then the connection breaks before
    // the reply: nothing is delivered yet.
    let mut partial = event(WatchEventKind::NodeDataChanged, "/p", 16).to_vec();
    partial.extend_from_slice(&event(WatchEventKind::NodeDataChanged, "/p", 17));
    m.received(103, &partial);
    assert_eq!(m.take_outputs(), []);
    m.connection_lost(200);
    m.take_outputs();

    // The next connection replays from the same zxid; all of it arrives,
    // with the reply: each event is delivered once, in order.
    m.dialed(201);
    m.take_outputs();
    m.received(202, &accepted(0x55, 30));
    assert_eq!(
        m.take_outputs(),
        [
            Output::State(SessionState::Reconnected),
            op(3, Request::SetWatches(set)),
        ]
    );
    let mut whole = event(WatchEventKind::NodeDataChanged, "/p", 16).to_vec();
    whole.extend_from_slice(&event(WatchEventKind::NodeDataChanged, "/p", 17));
    whole.extend_from_slice(&event(WatchEventKind::NodeDataChanged, "/p", 18));
    whole.extend_from_slice(&reply(3, 30, Outcome::Ok(Response::SetWatches)));
    m.received(203, &whole);
    assert_eq!(
        m.take_outputs(),
        [
            changed(watch, "/p", 16),
            changed(watch, "/p", 17),
            changed(watch, "/p", 18)
        ]
    );
    // Later events go straight through.
    m.received(300, &event(WatchEventKind::NodeDataChanged, "/p", 31));
    assert_eq!(m.take_outputs(), [changed(watch, "/p", 31)]);
}
