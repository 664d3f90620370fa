//! Connection hygiene on the client port: connections that never say
//! hello, or stop half-way through a frame, are cut off within the bound,
//! and the slots they held for their address come back.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{retry, Ensemble};
use tokio::io::AsyncWriteExt;
use zab_client::CreateMode;

/// Idle sockets fill their address's slots; within the handshake bound
/// they are closed and a real client from the same address gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_free_their_slots() {
    let e = Ensemble::start_with(1, "idle", "handshake_timeout_ms = 1000\n");
    e.wait_for_leader(None).await;
    let addr = e.clients[0];
    let mut idle = Vec::new();
    for _ in 0..zab_server::listener::CONNECTIONS_PER_ADDRESS_MAX {
        idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let client = e.client(0, 10_000).await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "locked out for {waited:?} behind idle connections"
    );
    common::assert_all_closed(idle, "an idle connection").await;
    retry(|| client.create("/ok", b"", CreateMode::Persistent))
        .await
        .expect("the ensemble serves");
    std::io::stderr()
        .write_all(format!("a client got in {waited:?} after 60 idle sockets\n").as_bytes())
        .ok();
}

/// A plain-TCP client that sends half a frame and stops is cut off within
/// the bound, long before its session's timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_frame_is_cut_off() {
    let e = Ensemble::start_with(1, "half-frame", "handshake_timeout_ms = 1000\n");
    let addr = e.clients[0];
    e.wait_for_leader(None).await;
    let (mut s, reply) = common::raw_handshake(addr, 0).await;
    assert!(
        matches!(reply, zab_proto::ConnectReply::Accepted(_)),
        "{reply:?}"
    );
    // A 1,000-byte frame's length prefix and 10 bytes of it; then silence.
    s.write_all(&1000u32.to_be_bytes()).await.expect("prefix");
    s.write_all(&[0u8; 10]).await.expect("part");
    s.flush().await.expect("flush");
    let started = Instant::now();
    let mut b = [0u8; 64];
    let closed = loop {
        match tokio::time::timeout(
            Duration::from_secs(20),
            tokio::io::AsyncReadExt::read(&mut s, &mut b),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => continue, // a ping reply or the like
            Err(_) => break false,
        }
    };
    assert!(closed, "a half-sent frame kept its connection for 20 s");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(15),
        "cut off after {waited:?}, not within the 1 s bound (session timeout 60 s)"
    );
    std::io::stderr()
        .write_all(format!("half frame cut off after {waited:?}\n").as_bytes())
        .ok();
}
