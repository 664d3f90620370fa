//! The async client against fake servers on real sockets.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use zab_proto::{
    ConnectReply, Outcome, Request, RequestFrame, Response, ServerFrame, FRAME_BYTES_DEFAULT,
    PASSWORD_BYTES, PROTOCOL_VERSION,
};

use super::*;

/// A server may send a re-attached session's watch events right behind
/// its connect reply, in the same TCP segment. The handshake must not
/// swallow them.
#[tokio::test]
async fn frames_right_behind_the_connect_reply_are_not_lost() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut buf = BytesMut::new();
        frame(&mut s, &mut buf).await.expect("hello");
        let mut out = accepted(5);
        ServerFrame::Watch {
            zxid: 6,
            event: WatchEvent {
                kind: WatchEventKind::NodeDataChanged,
                path: "/a".into(),
                zxid: 6,
            },
        }
        .encode(&mut out);
        s.write_all(&out)
            .await
            .expect("reply and event in one write");
        // Keep the connection open while the client reads.
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let client = Client::connect(&[addr], 4000).await.expect("connect");
    let ev = tokio::time::timeout(Duration::from_secs(2), client.next_event())
        .await
        .expect("the event behind the reply was lost")
        .expect("session alive");
    assert_eq!(
        (ev.kind, ev.path.as_str(), ev.zxid),
        (WatchEventKind::NodeDataChanged, "/a", 6)
    );
    server.abort();
}

/// Reads one frame from a fake server's socket.
async fn frame(s: &mut TcpStream, buf: &mut BytesMut) -> Option<Bytes> {
    loop {
        if let Some(body) = zab_proto::decode_frame(buf, FRAME_BYTES_DEFAULT).expect("frame") {
            return Some(body);
        }
        if s.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

fn accepted(last_zxid: u64) -> BytesMut {
    let mut out = BytesMut::new();
    ConnectReply::Accepted(zab_proto::ConnectResponse {
        protocol_version: PROTOCOL_VERSION,
        timeout_ms: 4000,
        session_id: 7,
        password: [1; PASSWORD_BYTES],
        max_frame_bytes: FRAME_BYTES_DEFAULT,
        server_id: 1,
        last_zxid,
    })
    .encode(&mut out);
    out
}

/// A reconnect whose re-registration was cut short (no SetWatches reply)
/// must not move the next re-registration's base past changes whose
/// catch-up never arrived: the next SetWatches starts from the same zxid
/// even though the interrupted server had applied more.
#[tokio::test]
async fn an_interrupted_reregistration_is_repeated_from_the_same_zxid() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<u64>();
    let server = tokio::spawn(async move {
        // 1: a new session; the client arms a data watch at zxid 5.
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut buf = BytesMut::new();
        frame(&mut s, &mut buf).await.expect("hello");
        s.write_all(&accepted(5)).await.expect("accept");
        let body = frame(&mut s, &mut buf).await.expect("GetData");
        let Ok(RequestFrame::Op { xid, .. }) = RequestFrame::decode(body) else {
            panic!("expected GetData");
        };
        let mut out = BytesMut::new();
        ServerFrame::Reply(zab_proto::Reply {
            xid,
            zxid: 5,
            outcome: Outcome::Ok(Response::GetData {
                data: Bytes::new(),
                stat: Stat::default(),
            }),
        })
        .encode(&mut out);
        s.write_all(&out).await.expect("reply");
        drop(s);
        // 2 and 3: a server that has applied up to 20 accepts, takes
        // the SetWatches and drops the connection before answering.
        for _ in 0..2 {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = BytesMut::new();
            frame(&mut s, &mut buf).await.expect("hello");
            s.write_all(&accepted(20)).await.expect("accept");
            let body = frame(&mut s, &mut buf).await.expect("SetWatches");
            match RequestFrame::decode(body) {
                Ok(RequestFrame::Op {
                    request: Request::SetWatches(set),
                    ..
                }) => {
                    assert_eq!(set.data, ["/c"]);
                    let _ = seen_tx.send(set.relative_zxid);
                }
                other => panic!("expected SetWatches, got {other:?}"),
            }
        }
    });
    let client = Client::connect(&[addr], 4000).await.expect("connect");
    client
        .get_watch("/c", Consistency::Local, true)
        .await
        .expect("GetData");
    let mut bases = Vec::new();
    for _ in 0..2 {
        let base = tokio::time::timeout(Duration::from_secs(5), seen.recv())
            .await
            .expect("a SetWatches within 5 s")
            .expect("fake server alive");
        bases.push(base);
    }
    assert_eq!(bases, [5, 5], "re-registration bases");
    drop(client);
    server.abort();
}
