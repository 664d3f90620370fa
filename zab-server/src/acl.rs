//! Access control: who a caller is ([`Caller`]), whether a node's ACL lets
//! it do something ([`Caller::permits`]), and the ACL a create or setAcl
//! asks for made concrete ([`resolve`]).
//!
//! Reads are checked by the server that serves them, with the caller of
//! that connection. Writes are checked where they are resolved: at apply
//! time, on every replica, against the caller recorded in the command
//! (`CommandBody::OpAs`), so every replica reaches the same verdict. The
//! origin server fills the caller in from its connection; a forwarded
//! command comes from an authenticated peer (`peer/handshake.rs`).
//!
//! What is better than ZooKeeper here: `exists` and the watches it arms need
//! READ like every other read; a recursive watch reports a change below it
//! only where the watcher may READ the changed node (CVE-2024-23944); getAcl
//! needs READ or ADMIN and shows digest hashes only with ADMIN
//! (CVE-2019-0201); SetWatches re-arms only what the caller may read.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::BufMut;
use zab_proto::{Acl, DecodeError, ErrorCode, Perms, Reader};

/// An ACL as the tree holds it: shared by every node with the same list.
pub type AclRef = Arc<Vec<Acl>>;

/// One identity a connection proved: `digest` (by AddAuth) or `x509` (by
/// its TLS certificate).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub scheme: String,
    pub id: String,
}

/// Who is asking: the connection's address, what it proved, and whether
/// one of those proofs is the configured super user's.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Caller {
    /// The connection's peer address (the `ip` scheme), if known.
    pub ip: Option<IpAddr>,
    pub ids: Vec<Identity>,
    /// Authenticated as the super user: every check passes. Decided by the
    /// origin server (its configuration) and recorded in the command, so
    /// replicas whose configurations differ still agree.
    pub superuser: bool,
}

/// Identities one connection may add (AddAuth): a bound on what a client
/// can make the server hold per connection and write into every command.
pub const IDENTITIES_PER_CONNECTION_MAX: usize = 16;

/// The longest credential AddAuth takes, in bytes.
pub const AUTH_BYTES_MAX: usize = 1024;

/// Entries an ACL may have, and bytes an entry's scheme and id may take:
/// what one node's ACL can cost is bounded (it is charged to the data
/// quota too: [`charge`]).
pub const ACL_ENTRIES_MAX: usize = 64;
pub const ACL_ID_BYTES_MAX: usize = 1024;

/// What a node's ACL counts against the data quota: nothing for the open
/// ACL every plain create gives, else its encoded size. Counted per node
/// (not per shared list), so the figure is the same on every replica
/// whatever it shares.
pub fn charge(acl: &[Acl]) -> u64 {
    if is_open(acl) {
        return 0;
    }
    let entries: usize = acl
        .iter()
        .map(|a| 1 + 8 + a.scheme.len() + a.id.len())
        .sum();
    (4 + entries) as u64
}

impl Caller {
    /// A caller with no address and no identity: only `world:anyone`
    /// entries match. Commands logged before ACLs existed replay as this
    /// (every node then had the open ACL, so the verdicts are the same).
    pub fn anonymous() -> Caller {
        Caller::default()
    }

    /// Whether `acl` grants `wanted` to this caller: some entry holds every
    /// wanted permission and matches one of the caller's identities.
    pub fn permits(&self, acl: &[Acl], wanted: Perms) -> bool {
        self.superuser
            || acl
                .iter()
                .any(|entry| entry.perms.contains(wanted) && self.matches(entry))
    }

    /// Whether `acl` grants this caller any of `wanted` (getAcl: READ or
    /// ADMIN).
    pub fn permits_any(&self, acl: &[Acl], wanted: Perms) -> bool {
        self.superuser
            || acl
                .iter()
                .any(|entry| entry.perms.intersects(wanted) && self.matches(entry))
    }

    fn matches(&self, entry: &Acl) -> bool {
        match entry.scheme.as_str() {
            "world" => entry.id == "anyone",
            "ip" => self.ip.is_some_and(|ip| ip_matches(&entry.id, ip)),
            scheme => self
                .ids
                .iter()
                .any(|i| i.scheme == scheme && i.id == entry.id),
        }
    }

    /// Appends the caller as a command records it:
    /// `flags:u8 (1 = super) ip_tag:u8 (0 none, 4, 6) ip_bytes count:u32
    /// (scheme:string id:string)*`.
    pub fn write(&self, b: &mut impl BufMut) {
        b.put_u8(u8::from(self.superuser));
        match self.ip {
            None => b.put_u8(0),
            Some(IpAddr::V4(v4)) => {
                b.put_u8(4);
                b.put_slice(&v4.octets());
            }
            Some(IpAddr::V6(v6)) => {
                b.put_u8(6);
                b.put_slice(&v6.octets());
            }
        }
        b.put_u32(self.ids.len() as u32);
        for id in &self.ids {
            put_str(b, &id.scheme);
            put_str(b, &id.id);
        }
    }

    /// Reads what [`Caller::write`] wrote; canonical (flags other than 0
    /// or 1 and unknown address tags are errors).
    pub fn read(r: &mut Reader) -> Result<Caller, DecodeError> {
        let superuser = match r.u8("caller.flags")? {
            0 => false,
            1 => true,
            v => return Err(r.bad_value("caller.flags", v)),
        };
        let ip = match r.u8("caller.ip")? {
            0 => None,
            4 => Some(IpAddr::from(r.raw::<4>("caller.ip")?)),
            6 => Some(IpAddr::from(r.raw::<16>("caller.ip")?)),
            v => return Err(r.bad_value("caller.ip", v)),
        };
        let n = r.u32("caller.ids")? as usize;
        if n > IDENTITIES_PER_CONNECTION_MAX + 1 {
            return Err(r.bad_value("caller.ids", u8::MAX));
        }
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(Identity {
                scheme: r.string("caller.scheme")?,
                id: r.string("caller.id")?,
            });
        }
        Ok(Caller { ip, ids, superuser })
    }
}

fn put_str(b: &mut impl BufMut, s: &str) {
    b.put_u32(s.len() as u32);
    b.put_slice(s.as_bytes());
}

/// Whether `ip` is the address, or in the network, an `ip` entry names
/// (`10.1.2.3`, `10.0.0.0/8`, `::1`, `fd00::/8`). An IPv4 client seen as an
/// IPv4-mapped IPv6 address matches IPv4 entries.
fn ip_matches(entry: &str, ip: IpAddr) -> bool {
    let Some((net, bits)) = parse_ip_entry(entry) else {
        return false;
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
        (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
        _ => false,
    }
}

/// An `ip` entry's network and prefix length; None if it is not one.
fn parse_ip_entry(entry: &str) -> Option<(IpAddr, u32)> {
    let (addr, bits) = match entry.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u32>().ok()?)),
        None => (entry, None),
    };
    let net: IpAddr = addr.parse().ok()?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((net, bits))
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u32) -> bool {
    let whole = (bits / 8) as usize;
    let rest = bits % 8;
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

/// The ACL a create or setAcl asks for, made concrete for `caller` as
/// ZooKeeper does it: each entry checked, `auth` entries replaced by the
/// caller's proved identities (with the entry's permissions), duplicates
/// dropped. `InvalidAcl` for an empty list, more than [`ACL_ENTRIES_MAX`]
/// entries or an entry over [`ACL_ID_BYTES_MAX`], an unknown scheme, a
/// malformed id, or `auth` from a caller with no identity. Pure, so every replica
/// resolving the same command gets the same list.
pub fn resolve(requested: &[Acl], caller: &Caller) -> Result<Vec<Acl>, ErrorCode> {
    let too_big = |a: &Acl| a.scheme.len() + a.id.len() > ACL_ID_BYTES_MAX;
    if requested.is_empty() || requested.len() > ACL_ENTRIES_MAX || requested.iter().any(too_big) {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out: Vec<Acl> = Vec::with_capacity(requested.len());
    let mut push = |acl: Acl| {
        if !out.contains(&acl) {
            out.push(acl);
        }
    };
    for entry in requested {
        match entry.scheme.as_str() {
            "auth" => {
                if caller.ids.is_empty() {
                    return Err(ErrorCode::InvalidAcl);
                }
                for id in &caller.ids {
                    push(Acl::new(entry.perms, id.scheme.clone(), id.id.clone()));
                }
            }
            "world" if entry.id == "anyone" => push(entry.clone()),
            "digest" if valid_digest_id(&entry.id) => push(entry.clone()),
            "ip" if parse_ip_entry(&entry.id).is_some() => push(entry.clone()),
            "x509" if !entry.id.is_empty() => push(entry.clone()),
            _ => return Err(ErrorCode::InvalidAcl),
        }
    }
    // `auth` entries multiply by the caller's identities.
    if out.len() > ACL_ENTRIES_MAX {
        return Err(ErrorCode::InvalidAcl);
    }
    Ok(out)
}

/// Whether `acl` is the open ACL (`world:anyone:cdrwa` alone). On every
/// create and delete, so it allocates nothing.
pub fn is_open(acl: &[Acl]) -> bool {
    matches!(acl, [only] if only.perms == Perms::ALL && only.scheme == "world" && only.id == "anyone")
}

/// `user:hash` with a non-empty user and a base64 SHA-1 (28 characters).
fn valid_digest_id(id: &str) -> bool {
    id.split_once(':')
        .is_some_and(|(user, hash)| !user.is_empty() && hash.len() == 28)
}

/// The ACL as a caller without ADMIN sees it: digest hashes replaced by
/// `x`, so a reader learns who may act but gets nothing to attack offline.
pub fn redact(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| match (a.scheme.as_str(), a.id.split_once(':')) {
            ("digest", Some((user, _))) => Acl::new(a.perms, "digest", format!("{user}:x")),
            _ => a.clone(),
        })
        .collect()
}

/// The identity AddAuth proves: `digest` with `user:password` gives
/// `digest:user:base64(sha1(user:password))`. Any other scheme, or a
/// credential without a user, is `AuthFailed` (`x509` comes from TLS,
/// `ip` from the connection; neither can be claimed).
pub fn authenticate(scheme: &str, auth: &[u8]) -> Result<Identity, ErrorCode> {
    if scheme != "digest" || auth.len() > AUTH_BYTES_MAX {
        return Err(ErrorCode::AuthFailed);
    }
    let text = std::str::from_utf8(auth).map_err(|_| ErrorCode::AuthFailed)?;
    match text.split_once(':') {
        Some((user, password)) if !user.is_empty() => Ok(Identity {
            scheme: "digest".into(),
            id: zab_proto::digest_id(user, password),
        }),
        _ => Err(ErrorCode::AuthFailed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn digest(user: &str, pw: &str) -> Caller {
        Caller {
            ids: vec![authenticate("digest", format!("{user}:{pw}").as_bytes()).expect("digest")],
            ..Caller::default()
        }
    }

    #[test]
    fn each_scheme_matches_only_its_identity() {
        let bob = digest("bob", "secret");
        let eve = digest("bob", "guess");
        let acl = vec![Acl::new(
            Perms::READ.union(Perms::WRITE),
            "digest",
            zab_proto::digest_id("bob", "secret"),
        )];
        assert!(bob.permits(&acl, Perms::READ));
        assert!(bob.permits(&acl, Perms::WRITE));
        assert!(!bob.permits(&acl, Perms::ADMIN), "perms are per entry");
        assert!(!eve.permits(&acl, Perms::READ), "wrong password");
        assert!(!Caller::anonymous().permits(&acl, Perms::READ));

        let net = vec![Acl::new(Perms::READ, "ip", "10.1.0.0/16")];
        let at = |ip: &str| Caller {
            ip: Some(ip.parse().expect("an address")),
            ..Caller::default()
        };
        assert!(at("10.1.200.3").permits(&net, Perms::READ));
        assert!(!at("10.2.0.1").permits(&net, Perms::READ));
        assert!(
            at("::ffff:10.1.0.9").permits(&net, Perms::READ),
            "mapped v4"
        );
        let v6 = vec![Acl::new(Perms::READ, "ip", "fd00::/8")];
        assert!(at("fd12::1").permits(&v6, Perms::READ));
        assert!(!at("fe80::1").permits(&v6, Perms::READ));
        let odd = vec![Acl::new(Perms::READ, "ip", "10.0.0.0/12")];
        assert!(at("10.15.255.255").permits(&odd, Perms::READ));
        assert!(!at("10.16.0.0").permits(&odd, Perms::READ));

        let world = Acl::open_unsafe();
        assert!(Caller::anonymous().permits(&world, Perms::ALL));
        let superuser = Caller {
            superuser: true,
            ..Caller::default()
        };
        assert!(superuser.permits(&[], Perms::ADMIN));
    }

    #[test]
    fn resolve_expands_auth_and_refuses_what_zookeeper_refuses() {
        let bob = digest("bob", "secret");
        let got = resolve(&Acl::creator_all(), &bob).expect("resolves");
        assert_eq!(
            got,
            vec![Acl::new(
                Perms::ALL,
                "digest",
                zab_proto::digest_id("bob", "secret")
            )]
        );
        let anyone = Caller::anonymous();
        let invalid = Err(ErrorCode::InvalidAcl);
        assert_eq!(resolve(&Acl::creator_all(), &anyone), invalid);
        assert_eq!(resolve(&[], &anyone), invalid);
        for (scheme, id) in [
            ("world", "someone"),
            ("digest", "nohash"),
            ("ip", "10.0.0.0/33"),
            ("ip", "host.example"),
            ("x509", ""),
            ("sasl", "bob"),
        ] {
            let acl = [Acl::new(Perms::READ, scheme, id)];
            assert_eq!(resolve(&acl, &anyone), invalid, "{scheme}:{id}");
        }
        let many = vec![Acl::new(Perms::READ, "world", "anyone"); ACL_ENTRIES_MAX + 1];
        assert_eq!(resolve(&many, &anyone), invalid);
        let long = [Acl::new(Perms::READ, "x509", "C".repeat(ACL_ID_BYTES_MAX))];
        assert_eq!(resolve(&long, &anyone), invalid);
        let twice = [
            Acl::new(Perms::READ, "world", "anyone"),
            Acl::new(Perms::READ, "world", "anyone"),
        ];
        assert_eq!(resolve(&twice, &anyone).expect("resolves").len(), 1);
    }

    #[test]
    fn only_digest_can_be_claimed_and_redaction_hides_hashes() {
        assert_eq!(authenticate("ip", b"10.0.0.1"), Err(ErrorCode::AuthFailed));
        assert_eq!(
            authenticate("x509", b"CN=admin"),
            Err(ErrorCode::AuthFailed)
        );
        assert_eq!(
            authenticate("digest", b"nouser"),
            Err(ErrorCode::AuthFailed)
        );
        assert_eq!(authenticate("digest", b":pw"), Err(ErrorCode::AuthFailed));
        let acl = [Acl::new(
            Perms::ALL,
            "digest",
            zab_proto::digest_id("bob", "pw"),
        )];
        assert_eq!(redact(&acl), vec![Acl::new(Perms::ALL, "digest", "bob:x")]);
    }

    #[test]
    fn callers_round_trip_and_bad_encodings_are_errors() {
        let callers = [
            Caller::anonymous(),
            Caller {
                ip: Some("127.0.0.1".parse().expect("an address")),
                ids: vec![Identity {
                    scheme: "digest".into(),
                    id: "bob:x".into(),
                }],
                superuser: true,
            },
            Caller {
                ip: Some("::1".parse().expect("an address")),
                ..Caller::default()
            },
        ];
        for caller in callers {
            let mut b = Vec::new();
            caller.write(&mut b);
            let mut r = Reader::new(Bytes::from(b), "caller");
            assert_eq!(Caller::read(&mut r), Ok(caller));
            assert!(r.finish().is_ok());
        }
        for bad in [&[2u8, 0, 0, 0, 0, 0][..], &[0, 5, 0, 0, 0, 0], &[0, 4, 1]] {
            let mut r = Reader::new(Bytes::copy_from_slice(bad), "caller");
            assert!(Caller::read(&mut r).is_err(), "{bad:?}");
        }
    }
}
