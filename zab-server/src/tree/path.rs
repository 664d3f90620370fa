//! Znode paths (REFERENCE §3): absolute, `/`-separated, no empty segments, no
//! `.` or `..` segments, no NUL or control characters, no trailing slash except
//! the root, at most `PATH_BYTES_MAX` bytes.
//!
//! Like ZooKeeper's `PathUtils.validatePath`, the private-use area
//! (U+E000..U+F8FF) and the specials block (U+FFF0..U+FFFF) are refused too, so
//! a path one server accepts any ZooKeeper client can also send.

use std::fmt;

/// The root, which always exists.
pub const ROOT: &str = "/";

/// The longest path accepted, in bytes (of UTF-8), sequence suffix included.
pub const PATH_BYTES_MAX: usize = 4096;

/// The digits a sequential create appends to the requested path.
pub const SEQUENCE_DIGITS: usize = 10;

/// Why a path is not a valid znode path. Offsets are byte offsets in the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    Empty,
    NotAbsolute,
    TooLong {
        len_bytes: usize,
    },
    ForbiddenCharacter {
        offset: usize,
        ch: char,
    },
    TrailingSlash,
    EmptySegment {
        offset: usize,
    },
    /// A `.` or `..` segment.
    RelativeSegment {
        offset: usize,
    },
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Empty => write!(f, "the path is empty"),
            PathError::NotAbsolute => write!(f, "the path does not start with '/'"),
            PathError::TooLong { len_bytes } => {
                write!(
                    f,
                    "the path is {len_bytes} bytes, over the {PATH_BYTES_MAX}-byte limit"
                )
            }
            PathError::ForbiddenCharacter { offset, ch } => {
                write!(f, "forbidden character {ch:?} at byte {offset}")
            }
            PathError::TrailingSlash => write!(f, "the path ends with '/'"),
            PathError::EmptySegment { offset } => write!(f, "empty segment at byte {offset}"),
            PathError::RelativeSegment { offset } => {
                write!(f, "'.' or '..' segment at byte {offset}")
            }
        }
    }
}

impl std::error::Error for PathError {}

/// Checks that `path` names a znode.
pub fn validate(path: &str) -> Result<(), PathError> {
    check(path, false)
}

/// Checks the path of a sequential create: `prefix` followed by
/// `SEQUENCE_DIGITS` digits must be a valid path. So, as in ZooKeeper, the
/// prefix may end with `/` (`/queue/` makes `/queue/0000000007`).
pub fn validate_sequential_prefix(prefix: &str) -> Result<(), PathError> {
    check(prefix, true)
}

/// Splits a valid non-root path into its parent and its last segment:
/// `/a/b` gives `("/a", "b")`, `/a` gives `("/", "a")`. `None` for the root and
/// for anything without a `/`.
pub fn split(path: &str) -> Option<(&str, &str)> {
    if path == ROOT {
        return None;
    }
    let slash = path.rfind('/')?;
    let parent = if slash == 0 { ROOT } else { &path[..slash] };
    Some((parent, &path[slash + 1..]))
}

/// The path of the child `name` of `parent`: `("/", "a")` gives `/a`,
/// `("/a", "b")` gives `/a/b`.
pub fn join(parent: &str, name: &str) -> String {
    let mut path = String::with_capacity(parent.len() + 1 + name.len());
    path.push_str(parent);
    if parent != ROOT {
        path.push('/');
    }
    path.push_str(name);
    path
}

fn check(path: &str, sequential: bool) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let len_bytes = path.len() + if sequential { SEQUENCE_DIGITS } else { 0 };
    if len_bytes > PATH_BYTES_MAX {
        return Err(PathError::TooLong { len_bytes });
    }
    if let Some((offset, ch)) = path.char_indices().find(|&(_, ch)| forbidden(ch)) {
        return Err(PathError::ForbiddenCharacter { offset, ch });
    }
    if path == ROOT {
        return Ok(());
    }
    if !sequential && path.ends_with('/') {
        return Err(PathError::TrailingSlash);
    }
    // Segments after the leading '/'. The last segment of a sequential prefix
    // gets the digits appended, so it may be empty, "." or "..".
    let mut offset = 1;
    let mut segments = path[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if !(sequential && last) {
            if segment.is_empty() {
                return Err(PathError::EmptySegment { offset });
            }
            if segment == "." || segment == ".." {
                return Err(PathError::RelativeSegment { offset });
            }
        }
        offset += segment.len() + 1;
    }
    Ok(())
}

fn forbidden(ch: char) -> bool {
    ch.is_control()
        || ('\u{E000}'..='\u{F8FF}').contains(&ch)
        || ('\u{FFF0}'..='\u{FFFF}').contains(&ch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_table() {
        let long_ok = format!("/{}", "a".repeat(PATH_BYTES_MAX - 1));
        let long_bad = format!("/{}", "a".repeat(PATH_BYTES_MAX));
        let cases: Vec<(&str, Result<(), PathError>)> = vec![
            ("/", Ok(())),
            ("/a", Ok(())),
            ("/a/b/c", Ok(())),
            ("/a.b/..c/c..", Ok(())),
            ("/zookeeper", Ok(())),
            ("/ünïcödé/日本", Ok(())),
            ("/with space", Ok(())),
            (&long_ok, Ok(())),
            ("", Err(PathError::Empty)),
            ("a", Err(PathError::NotAbsolute)),
            ("a/b", Err(PathError::NotAbsolute)),
            (
                &long_bad,
                Err(PathError::TooLong {
                    len_bytes: PATH_BYTES_MAX + 1,
                }),
            ),
            ("/a/", Err(PathError::TrailingSlash)),
            ("//", Err(PathError::TrailingSlash)),
            ("//a", Err(PathError::EmptySegment { offset: 1 })),
            ("/a//b", Err(PathError::EmptySegment { offset: 3 })),
            ("/.", Err(PathError::RelativeSegment { offset: 1 })),
            ("/a/..", Err(PathError::RelativeSegment { offset: 3 })),
            ("/a/./b", Err(PathError::RelativeSegment { offset: 3 })),
            (
                "/a\0b",
                Err(PathError::ForbiddenCharacter {
                    offset: 2,
                    ch: '\0',
                }),
            ),
            (
                "/a\nb",
                Err(PathError::ForbiddenCharacter {
                    offset: 2,
                    ch: '\n',
                }),
            ),
            (
                "/\u{7f}",
                Err(PathError::ForbiddenCharacter {
                    offset: 1,
                    ch: '\u{7f}',
                }),
            ),
            (
                "/\u{85}",
                Err(PathError::ForbiddenCharacter {
                    offset: 1,
                    ch: '\u{85}',
                }),
            ),
            (
                "/é\u{e000}",
                Err(PathError::ForbiddenCharacter {
                    offset: 3,
                    ch: '\u{e000}',
                }),
            ),
            (
                "/\u{fff0}",
                Err(PathError::ForbiddenCharacter {
                    offset: 1,
                    ch: '\u{fff0}',
                }),
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(validate(path), expected, "{path:?}");
        }
    }

    #[test]
    fn sequential_prefix_table() {
        let at_limit = format!("/{}", "a".repeat(PATH_BYTES_MAX - 1 - SEQUENCE_DIGITS));
        let over = format!("/{}", "a".repeat(PATH_BYTES_MAX - SEQUENCE_DIGITS));
        let cases: Vec<(&str, Result<(), PathError>)> = vec![
            ("/", Ok(())),
            ("/lock-", Ok(())),
            ("/queue/", Ok(())),
            ("/a/.", Ok(())),
            (&at_limit, Ok(())),
            (
                &over,
                Err(PathError::TooLong {
                    len_bytes: PATH_BYTES_MAX + 1,
                }),
            ),
            ("/a//", Err(PathError::EmptySegment { offset: 3 })),
            ("/../x", Err(PathError::RelativeSegment { offset: 1 })),
            ("lock-", Err(PathError::NotAbsolute)),
            (
                "/\u{1}",
                Err(PathError::ForbiddenCharacter {
                    offset: 1,
                    ch: '\u{1}',
                }),
            ),
        ];
        for (prefix, expected) in cases {
            assert_eq!(validate_sequential_prefix(prefix), expected, "{prefix:?}");
        }
    }

    #[test]
    fn split_gives_parent_and_name() {
        assert_eq!(split("/"), None);
        assert_eq!(split("/a"), Some(("/", "a")));
        assert_eq!(split("/a/b"), Some(("/a", "b")));
        assert_eq!(split("/a/b/c0000000001"), Some(("/a/b", "c0000000001")));
        assert_eq!(split("nope"), None);
    }
}
