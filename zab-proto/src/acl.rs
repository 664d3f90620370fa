//! Access control lists: who may do what to a node, in ZooKeeper's model.
//!
//! A node carries a list of [`Acl`] entries, each granting a set of
//! [`Perms`] to an identity named by a scheme and an id:
//!
//! | scheme | id | who matches |
//! |---|---|---|
//! | `world` | `anyone` | every connection |
//! | `auth` | `""` | only in a create or setAcl: replaced by the caller's authenticated identities |
//! | `digest` | `user:base64(sha1(user:password))` | a connection that sent AddAuth `digest` `user:password` |
//! | `ip` | an address, or `address/prefix-bits` | a connection from that address or network |
//! | `x509` | a client certificate's subject | a TLS connection presenting that certificate |
//!
//! The digest id is computed exactly as ZooKeeper computes it
//! ([`digest_id`]), so ids move between the two systems unchanged.

use std::fmt;

use base64::Engine as _;
use sha1::{Digest as _, Sha1};

use crate::error::DecodeError;
use crate::wire::{Reader, Sink};

/// A set of permissions (ZooKeeper's bit values).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Perms(u8);

impl Perms {
    /// getData, getChildren, exists, getAcl, and watches on the node.
    pub const READ: Perms = Perms(1);
    /// setData.
    pub const WRITE: Perms = Perms(2);
    /// Creating children.
    pub const CREATE: Perms = Perms(4);
    /// Deleting children.
    pub const DELETE: Perms = Perms(8);
    /// setAcl (and reading the ACL's digests).
    pub const ADMIN: Perms = Perms(16);
    pub const ALL: Perms = Perms(31);
    pub const NONE: Perms = Perms(0);

    /// The set for a wire value; bits beyond ADMIN are not permissions.
    pub const fn from_bits(bits: u8) -> Option<Perms> {
        if bits & !Perms::ALL.0 == 0 {
            Some(Perms(bits))
        } else {
            None
        }
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every permission in `wanted` is in this set.
    pub const fn contains(self, wanted: Perms) -> bool {
        self.0 & wanted.0 == wanted.0
    }

    /// Whether this set and `other` share a permission.
    pub const fn intersects(self, other: Perms) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn union(self, other: Perms) -> Perms {
        Perms(self.0 | other.0)
    }

    /// ZooKeeper's letters, in its order: `c`reate, `d`elete, `r`ead,
    /// `w`rite, `a`dmin (`cdrwa` for all).
    pub fn letters(self) -> String {
        LETTERS
            .iter()
            .filter(|(_, p)| self.contains(*p))
            .map(|(c, _)| *c)
            .collect()
    }

    /// Parses letters from `cdrwa` in any order; None on anything else.
    pub fn parse_letters(text: &str) -> Option<Perms> {
        text.chars().try_fold(Perms::NONE, |acc, c| {
            LETTERS
                .iter()
                .find(|(l, _)| *l == c)
                .map(|(_, p)| acc.union(*p))
        })
    }
}

const LETTERS: [(char, Perms); 5] = [
    ('c', Perms::CREATE),
    ('d', Perms::DELETE),
    ('r', Perms::READ),
    ('w', Perms::WRITE),
    ('a', Perms::ADMIN),
];

/// One entry of a node's ACL: `perms` granted to `scheme`:`id`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Acl {
    pub perms: Perms,
    pub scheme: String,
    pub id: String,
}

/// The smallest encoded [`Acl`]: perms and two empty strings.
pub(crate) const ACL_BYTES_MIN: usize = 1 + 4 + 4;

impl Acl {
    pub fn new(perms: Perms, scheme: impl Into<String>, id: impl Into<String>) -> Acl {
        Acl {
            perms,
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    /// Everything to everyone (ZooKeeper's `OPEN_ACL_UNSAFE`): what a
    /// [`Create`](crate::OpCode::Create) without an ACL gives a node.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl::new(Perms::ALL, "world", "anyone")]
    }

    /// Reading to everyone (ZooKeeper's `READ_ACL_UNSAFE`).
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl::new(Perms::READ, "world", "anyone")]
    }

    /// Everything to the creator's authenticated identities (ZooKeeper's
    /// `CREATOR_ALL_ACL`); the caller must have authenticated.
    pub fn creator_all() -> Vec<Acl> {
        vec![Acl::new(Perms::ALL, "auth", "")]
    }

    /// Parses ZooKeeper's text form `scheme:id:perms`, as zkCli.sh writes
    /// it (`world:anyone:cdrwa`, `digest:bob:xyz=:rw`, `ip:10.0.0.0/8:r`):
    /// the id is everything between the first and the last colon.
    pub fn parse(text: &str) -> Option<Acl> {
        let (scheme, rest) = text.split_once(':')?;
        let (id, perms) = rest.rsplit_once(':')?;
        if scheme.is_empty() {
            return None;
        }
        Some(Acl::new(Perms::parse_letters(perms)?, scheme, id))
    }

    /// Parses a comma-separated list of [`Acl::parse`] entries.
    pub fn parse_list(text: &str) -> Option<Vec<Acl>> {
        text.split(',').map(|e| Acl::parse(e.trim())).collect()
    }

    pub(crate) fn write(&self, s: &mut impl Sink) {
        s.u8(self.perms.bits());
        s.str(&self.scheme);
        s.str(&self.id);
    }

    pub(crate) fn read(r: &mut Reader) -> Result<Acl, DecodeError> {
        let bits = r.u8("acl.perms")?;
        let perms = Perms::from_bits(bits).ok_or_else(|| r.bad_value("acl.perms", bits))?;
        Ok(Acl {
            perms,
            scheme: r.string("acl.scheme")?,
            id: r.string("acl.id")?,
        })
    }
}

impl fmt::Display for Acl {
    /// ZooKeeper's text form, `scheme:id:perms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.scheme, self.id, self.perms.letters())
    }
}

pub(crate) fn write_acls(acls: &[Acl], s: &mut impl Sink) {
    s.count(acls.len());
    for acl in acls {
        acl.write(s);
    }
}

pub(crate) fn read_acls(r: &mut Reader) -> Result<Vec<Acl>, DecodeError> {
    let n = r.count("acl", ACL_BYTES_MIN)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Acl::read(r)?);
    }
    Ok(out)
}

/// The id a `digest` identity has for `user` and `password`:
/// `user:base64(sha1("user:password"))`, as ZooKeeper computes it, so
/// `digest` ACL entries are interchangeable between the two systems.
pub fn digest_id(user: &str, password: &str) -> String {
    let hash = Sha1::digest(format!("{user}:{password}").as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ids_match_zookeepers() {
        // The super digest in ZooKeeper's administrator's guide is that of
        // `super:test`; the other was computed with Python's hashlib.
        assert_eq!(
            digest_id("super", "test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
        assert_eq!(
            digest_id("bob", "secret"),
            "bob:fyVmFCwVbTJYrznoSu1koqYEYF0="
        );
    }

    #[test]
    fn text_form_round_trips_and_rejects_nonsense() {
        for text in [
            "world:anyone:cdrwa",
            "digest:bob:D/InIHSb7yEEbrWz8b9l71RjZJU=:rw",
            "ip:10.0.0.0/8:r",
            "ip:::1:a",
        ] {
            let acl = Acl::parse(text).expect(text);
            assert_eq!(Acl::parse(&acl.to_string()), Some(acl));
        }
        assert_eq!(
            Acl::parse("ip:::1:a"),
            Some(Acl::new(Perms::ADMIN, "ip", "::1"))
        );
        for bad in ["world", "world:anyone", ":x:r", "world:anyone:rx"] {
            assert_eq!(Acl::parse(bad), None, "{bad}");
        }
        assert_eq!(Perms::parse_letters("rwcda"), Some(Perms::ALL));
        assert_eq!(Perms::ALL.letters(), "cdrwa");
    }

    #[test]
    fn perms_outside_the_five_bits_are_malformed() {
        assert_eq!(Perms::from_bits(31), Some(Perms::ALL));
        assert_eq!(Perms::from_bits(32), None);
    }
}
