//! The configuration's layers, checks and serialized form.
use super::*;

const GOOD: &str = r#"
        id = 2
        data_dir = "/tmp/zab/2"
        peer_secret_file = "/etc/zab/peer-secret"
        [[servers]]
        id = 1
        peer = "127.0.0.1:2888"
        client = "127.0.0.1:2181"
        [[servers]]
        id = 2
        peer = "127.0.0.1:2889"
        client = "127.0.0.1:2182"
        [[servers]]
        id = 3
        peer = "127.0.0.1:2890"
        client = "127.0.0.1:2183"
        observer = true
    "#;

/// What the admin port's `/conf` shows: every setting, and the super
/// user's digest only as set.
#[test]
fn the_served_configuration_hides_the_super_digest() {
    let text = GOOD.replace(
        "data_dir",
        "super_digest = \"super:D/InIHSb7yEEbrWz8b9l71RjZJU=\"\n        data_dir",
    );
    let c = Config::parse(&text).expect("valid");
    let shown = serde_json::to_value(&c).expect("serializes");
    assert_eq!(shown["super_digest"], "<redacted>");
    assert!(!shown.to_string().contains("D/InIHSb7"), "{shown}");
    assert_eq!(shown["id"], 2);
    assert_eq!(shown["servers"][2]["observer"], true);
    let plain = serde_json::to_value(Config::parse(GOOD).expect("valid")).expect("serializes");
    assert!(plain["super_digest"].is_null(), "{plain}");
}

#[test]
fn members_are_known_by_host_names_and_may_listen_elsewhere() {
    let named = GOOD
        .replace("127.0.0.1:2888", "zab-1.zab-peers:2888")
        .replace("127.0.0.1:2889", "zab-2.zab-peers:2888")
        .replace("127.0.0.1:2890", "[::1]:2890")
        .replace(
            "data_dir",
            "listen_peer = \"0.0.0.0:2888\"\n        data_dir",
        );
    let c = Config::parse(&named).expect("valid");
    assert_eq!(c.me().peer, "zab-2.zab-peers:2888");
    let (peer, client, admin) = c.listen_addresses();
    assert_eq!(peer, "0.0.0.0:2888", "listens where told");
    assert_eq!(client, "127.0.0.1:2182", "and elsewhere where it is known");
    assert_eq!(admin, None);
}

#[test]
fn layers_complete_a_shared_file_and_flags_win() {
    let dir = std::env::temp_dir().join(format!("zab-layers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("zab.toml");
    // One file for every server: no id, a relative secret path.
    let shared = GOOD
        .replace("id = 2\n        data_dir", "data_dir")
        .replace("/etc/zab/peer-secret", "secret");
    std::fs::write(&path, &shared).expect("write");
    let err = Config::load(&path, &Overrides::default()).expect_err("no id anywhere");
    assert!(err.to_string().contains("id"), "{err}");
    let flags = Overrides {
        id: Some(3),
        data_dir: Some("/var/lib/zab".into()),
    };
    let c = Config::load(&path, &flags).expect("valid once completed");
    assert_eq!((c.id, c.data_dir.as_path()), (3, Path::new("/var/lib/zab")));
    assert_eq!(c.peer_secret_file, Some(dir.join("secret")));
    let bad = Overrides {
        id: Some(9),
        ..flags
    };
    let err = Config::load(&path, &bad).expect_err("not a member");
    assert!(err.to_string().contains("not one of"), "{err}");
    let err = Config::load(&dir.join("missing.toml"), &Overrides::default()).expect_err("no file");
    assert!(err.to_string().contains("cannot read"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_good_config_parses_with_defaults() {
    let c = Config::parse(GOOD).expect("valid");
    assert_eq!(c.me().client, "127.0.0.1:2182");
    assert_eq!(c.listen_addresses().1, "127.0.0.1:2182");
    assert_eq!(c.liveness().heartbeat, Duration::from_millis(100));
    assert_eq!(c.liveness().silence, Duration::from_secs(2));
    // Raising init_limit for large transfers raises the silence timeout
    // with it; a slow tick does not slow heartbeats past 100 ms.
    let slow = Config::parse(&GOOD.replace(
        "data_dir",
        "init_limit = 50\n        tick_ms = 500\n        data_dir",
    ))
    .expect("valid");
    assert_eq!(slow.liveness().silence, Duration::from_secs(25));
    assert_eq!(slow.liveness().heartbeat, Duration::from_millis(100));
    let set = Config::parse(&GOOD.replace(
        "data_dir",
        "peer_silence_timeout_ms = 400\n        data_dir",
    ))
    .expect("valid");
    assert_eq!(set.liveness().silence, Duration::from_millis(400));
    assert_eq!((c.tick_ms, c.sync_limit, c.init_limit), (100, 5, 20));
    // Snapshots are unpaced unless asked.
    assert_eq!(c.snapshot_write_mib_per_sec, 0);
    let paced = Config::parse(&GOOD.replace(
        "data_dir",
        "snapshot_write_mib_per_sec = 64\n        data_dir",
    ))
    .expect("valid");
    assert_eq!(paced.snapshot_write_mib_per_sec, 64);
    // ZooKeeper's usual 10–60 s timeouts are granted as asked.
    assert_eq!(c.session_limits().negotiate(30_000), 30_000);
    assert_eq!(c.session_limits().negotiate(60_000), 60_000);
    assert_eq!(c.session_limits().negotiate(100), 2_000);
    assert!(c.membership().is_voter(zab_core::PeerId(1)));
    assert!(!c.membership().is_voter(zab_core::PeerId(3)));
    let open = GOOD.replace(
        "peer_secret_file = \"/etc/zab/peer-secret\"",
        "insecure_no_peer_auth = true",
    );
    assert!(
        Config::parse(&open).is_ok(),
        "explicitly insecure is allowed"
    );
}

#[test]
fn the_peer_secret_is_read_trimmed_and_must_be_long_enough() {
    let dir = std::env::temp_dir().join(format!("zab-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut c = Config::parse(&GOOD.replace("/etc/zab/peer-secret", "secret")).expect("valid");
    c.resolve_paths(&dir);
    assert_eq!(c.peer_secret_file, Some(dir.join("secret")));
    let err = c.peer_secret().expect_err("missing file").to_string();
    assert!(err.contains("cannot read"), "{err}");
    std::fs::write(dir.join("secret"), "too short\n").expect("write");
    let err = c.peer_secret().expect_err("short").to_string();
    assert!(err.contains("9 bytes"), "{err}");
    std::fs::write(dir.join("secret"), "  a secret of 25 bytes ok\n").expect("write");
    assert!(c.peer_secret().expect("valid").is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_configs_are_refused_with_the_reason() {
    let cases = [
        (
            GOOD.replace("id = 2\n        data_dir", "id = 9\n        data_dir"),
            "not one of",
        ),
        (GOOD.replace("2889", "2888"), "used twice"),
        (
            GOOD.replace("tick_ms", "x") + "\ntick_ms = 1",
            "unknown field",
        ),
        (GOOD.replace("id = 3", "id = 1"), "appears twice"),
        (
            GOOD.replace("data_dir", "min_session_timeout_ms = 100\n        data_dir"),
            "below 2 × tick_ms",
        ),
        (
            GOOD.replace(
                "data_dir",
                "max_session_timeout_ms = 1000\n        data_dir",
            ),
            "below min_session_timeout_ms",
        ),
        (
            GOOD.replace("peer = \"127.0.0.1:2888\"", "peer = \"nowhere\""),
            "not host:port (no port)",
        ),
        (
            GOOD.replace("127.0.0.1:2888", "zab-1.example:0"),
            "not a number from 1",
        ),
        (
            GOOD.replace("127.0.0.1:2888", "bad host:2888"),
            "neither a name nor an address",
        ),
        (
            GOOD.replace("127.0.0.1:2888", "[::zz]:2888"),
            "not an IPv6 address",
        ),
        (
            GOOD.replace("127.0.0.1:2889", "ZAB-1.example:2888")
                .replace("127.0.0.1:2888", "zab-1.example:2888"),
            "used twice",
        ),
        (
            GOOD.replace("data_dir", "peer_silence_timeout_ms = 50\n        data_dir"),
            "below 400",
        ),
        (
            GOOD.replace(
                "data_dir",
                "listen_admin = \"0.0.0.0:8080\"\n        data_dir",
            ),
            "no `admin` address",
        ),
        (
            GOOD.replace("peer_secret_file = \"/etc/zab/peer-secret\"", ""),
            "needs `peer_secret_file`",
        ),
        (
            GOOD.replace("data_dir", "insecure_no_peer_auth = true\n        data_dir"),
            "contradict",
        ),
        (
            GOOD.replace(
                "data_dir",
                "client_frame_bytes_max = 17825792\n        data_dir",
            ),
            "could not be replicated",
        ),
    ];
    for (text, expected) in cases {
        let err = Config::parse(&text).expect_err(expected).to_string();
        assert!(
            err.contains(expected),
            "{err:?} should mention {expected:?}"
        );
    }
}
