//! One bad disk, on real processes: a bit flip in a synced record, a wiped
//! data directory and a full disk each lose no acknowledged write.
//!
//! The first two follow the same story: 50 writes are acknowledged by S1 and
//! S3 while S2 is down; then S1's disk goes bad and S1 starts with the stale
//! S2 (S3 down). They must not serve (that would be a history without the 50
//! writes); once S3 returns, all three serve all 50.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{retry, Ensemble};
use zab_client::{Consistency, CreateMode};

const WRITES: usize = 50;

fn data_dir(e: &Ensemble, i: usize) -> PathBuf {
    e.dir.join(format!("{}", i + 1))
}

fn log(e: &Ensemble, i: usize) -> String {
    std::fs::read_to_string(data_dir(e, i).join("server.log")).unwrap_or_default()
}

/// Starts 3 servers, then acknowledges [`WRITES`] writes with S2 down.
async fn acknowledged_without_s2(name: &str) -> Ensemble {
    let mut e = Ensemble::start(3, name);
    e.wait_for_leader(None).await;
    // Everyone took part in the bootstrap, so S2 is a member that is merely
    // behind; then it goes down before the writes.
    let c = e.client(1, 4000).await;
    retry(|| c.sync("/")).await.expect("S2 serves");
    drop(c);
    e.kill(1);
    e.wait_for_leader(Some(1)).await;
    let c = e.client(0, 4000).await;
    for k in 0..WRITES {
        let path = format!("/w{k}");
        retry(|| c.create(&path, b"acknowledged", CreateMode::Persistent))
            .await
            .expect("acknowledged write");
    }
    drop(c);
    e.kill(0);
    e.kill(2);
    e
}

/// S1 (damaged) and S2 (stale) run together for a while: neither may lead.
async fn damaged_and_stale_do_not_serve(e: &mut Ensemble) {
    e.spawn(0);
    e.spawn(1);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        e.leader(),
        None,
        "a damaged and a stale server formed a quorum:\nS1: {}\nS2: {}",
        log(e, 0),
        log(e, 1)
    );
}

/// S3 returns: a leader is elected and every server has all the writes.
async fn everything_everywhere(e: &mut Ensemble) {
    e.spawn(2);
    e.wait_for_leader(None).await;
    for i in 0..3 {
        let c = e.client(i, 4000).await;
        for k in 0..WRITES {
            let path = format!("/w{k}");
            let (data, _) = retry(|| c.get(&path, Consistency::Linearizable))
                .await
                .unwrap_or_else(|err| panic!("S{} lost {path}: {err}", i + 1));
            assert_eq!(&data[..], b"acknowledged");
        }
    }
}

/// The newest log segment of server `i` and the byte offsets of its records.
fn newest_segment(dir: &Path) -> (PathBuf, Vec<u64>) {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("data dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("log.") && !n.ends_with(".damaged"))
        })
        .collect();
    segments.sort();
    let newest = segments.pop().expect("a log segment");
    let data = std::fs::read(&newest).expect("segment");
    let mut offsets = Vec::new();
    let mut at = 0usize;
    while at + 16 <= data.len() && data[at..at + 16].iter().any(|&b| b != 0) {
        offsets.push(at as u64);
        let len = u32::from_be_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
        at += 16 + len;
    }
    (newest, offsets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bit_flip_in_a_synced_middle_record_loses_nothing() {
    let mut e = acknowledged_without_s2("flip").await;
    let (segment, offsets) = newest_segment(&data_dir(&e, 0));
    assert!(
        offsets.len() > WRITES,
        "the writes are in the newest segment"
    );
    let middle = offsets[offsets.len() / 2];
    let mut bytes = std::fs::read(&segment).expect("segment");
    bytes[middle as usize + 16] ^= 0x04; // one bit of the record's payload
    std::fs::write(&segment, &bytes).expect("damaging the record");

    damaged_and_stale_do_not_serve(&mut e).await;
    let s1 = log(&e, 0);
    assert!(
        s1.contains("the log is damaged") && s1.contains(&middle.to_string()),
        "S1 says where its log is damaged: {s1}"
    );
    everything_everywhere(&mut e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_member_loses_nothing() {
    let mut e = acknowledged_without_s2("wipe").await;
    let dir = data_dir(&e, 0);
    for entry in std::fs::read_dir(&dir).expect("data dir").flatten() {
        let name = entry.file_name();
        if name != "zab.toml" && name != "server.log" {
            std::fs::remove_file(entry.path()).expect("wiping");
        }
    }
    damaged_and_stale_do_not_serve(&mut e).await;
    everything_everywhere(&mut e).await;
}

/// A tmpfs mounted over a server's data directory, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(dir.to_path_buf()))
    }

    /// Fills the file system until a write fails.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_on_the_leader_fails_over_and_a_full_disk_refuses_to_start() {
    let mut e = Ensemble::start(3, "enospc");
    e.wait_for_leader(None).await;
    // (wait_for_leader also waits until every server has joined: one that
    // never did is blank and does not vote. No session yet: the data
    // directory must stay small enough to copy onto the test's tmpfs.)
    // Server 3's data directory moves onto a small tmpfs (the test's own
    // mount; its config and log come along), and server 3 is made the
    // leader: with equal histories the highest id wins an election.
    let victim = 2;
    e.kill(victim);
    let dir = data_dir(&e, victim);
    let keep = tempdir_copy(&dir);
    let Some(disk) = SmallDisk::mount(&dir, "16m") else {
        eprintln!("SKIPPED: mounting a tmpfs needs CAP_SYS_ADMIN, which this host does not give");
        return;
    };
    copy_dir(&keep, &dir);
    // The server's log (kept in its data directory by the harness) is
    // written outside the small disk: a full disk must not cut the line
    // that says why the server stopped.
    let outside = keep.join("server.log.outside");
    std::fs::rename(dir.join("server.log"), &outside)
        .or_else(|_| std::fs::copy(dir.join("server.log"), &outside).map(drop))
        .expect("the log moves out");
    let _ = std::fs::remove_file(dir.join("server.log"));
    std::os::unix::fs::symlink(&outside, dir.join("server.log")).expect("a symlink");
    e.spawn(victim);
    let mut leader = e.wait_for_leader(None).await;
    if leader != victim {
        // Once server 3 serves (it has the leader's history), fail the
        // leader over: of the two left, server 3 has the highest id.
        drop(e.client(victim, 4000).await);
        e.kill(leader);
        let next = e.wait_for_leader(Some(leader)).await;
        e.spawn(leader);
        leader = next;
    }
    assert_eq!(leader, data_dir_index(&e, &dir), "server 3 leads");
    let servers: Vec<_> = e.clients.clone();
    let c = common::connect_retry(&servers, 4000)
        .await
        .expect("session");
    let mut acked = Vec::new();
    for k in 0..20 {
        let path = format!("/before{k}");
        retry(|| c.create(&path, b"x", CreateMode::Persistent))
            .await
            .expect("write before the disk fills");
        acked.push(path);
    }
    disk.fill();
    let filled = Instant::now();
    // Writes go on. The leader fails at its first write that needs a new
    // page; it must step out and another server lead, with no write lost.
    let mut k = 0;
    let mut outage: Option<Instant> = None;
    let mut longest = Duration::ZERO;
    loop {
        assert!(
            filled.elapsed() < Duration::from_secs(60),
            "the full leader never stepped out, or no new leader served: {}",
            log(&e, leader)
        );
        let path = format!("/after{k}");
        k += 1;
        match c.create(&path, &[7u8; 512], CreateMode::Persistent).await {
            Ok(_) => {
                acked.push(path);
                if let Some(began) = outage.take() {
                    longest = longest.max(began.elapsed());
                }
                if log(&e, leader).contains("storage failed") && outage.is_none() && k > 5 {
                    break;
                }
            }
            Err(_) => {
                outage.get_or_insert_with(Instant::now);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    println!("longest write outage after the leader's disk filled: {longest:?} ({k} writes)");
    let new_leader = e.wait_for_leader(Some(leader)).await;
    assert_ne!(new_leader, leader);
    let full = log(&e, leader);
    assert!(
        full.contains("storage failed") && full.contains("No space left on device"),
        "the failed server says why: {full}"
    );
    for path in &acked {
        let (data, _) = retry(|| c.get(path, Consistency::Linearizable))
            .await
            .unwrap_or_else(|err| panic!("lost {path}: {err}"));
        assert!(!data.is_empty());
    }
    // Started on the still-full disk, it exits non-zero naming the directory.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zab-server"))
        .arg("--config")
        .arg(dir.join("zab.toml"))
        .output()
        .expect("zab-server runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a full disk must not start: {stderr}"
    );
    assert!(
        out.status.code().is_some(),
        "an exit, not a signal: {:?}",
        out.status
    );
    assert!(
        stderr.contains(&dir.display().to_string()),
        "the message names the directory: {stderr}"
    );
    drop(c);
    e.kill(leader);
    drop(disk);
}

fn data_dir_index(e: &Ensemble, dir: &Path) -> usize {
    (0..3)
        .find(|&i| data_dir(e, i) == dir)
        .expect("one of ours")
}

fn tempdir_copy(dir: &Path) -> PathBuf {
    let copy = dir.with_extension("copy");
    copy_dir(dir, &copy);
    copy
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for entry in std::fs::read_dir(from).expect("dir").flatten() {
        if entry.path().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}
