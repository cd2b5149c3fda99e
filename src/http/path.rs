//! Turning a request's path into a path inside the static root, or refusing it.
//!
//! The raw path (as sent, before any decoding) is split on `/` first and each segment is
//! percent-decoded afterwards, so an encoded slash (`%2f`) can never create a new segment:
//! a decoded segment that contains `/`, `\`, NUL, or is `..` is refused. Decoded bytes must
//! be valid UTF-8, which also refuses overlong encodings (`%c0%ae`). Empty and `.`
//! segments are dropped, so `//etc/passwd` is simply `etc/passwd` under the root. Dotfiles
//! (any segment starting with `.`) are hidden unless the caller serves them.
//!
//! This is the lexical half of the defence; the loader canonicalises the joined path and
//! refuses anything that resolves outside the root (symlinks).

use percent_encoding::percent_decode_str;

/// Longest request path accepted, in bytes (as sent).
pub const MAX_PATH_LEN: usize = 4096;
/// Most segments accepted.
pub const MAX_SEGMENTS: usize = 64;

/// Why a request path is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// Not a usable path: bad percent-encoding, invalid UTF-8, NUL, backslash, an encoded
    /// slash, `..`, or not starting with `/` (400).
    Malformed,
    /// Longer than [`MAX_PATH_LEN`] or deeper than [`MAX_SEGMENTS`] (414).
    TooLong,
    /// Names a dotfile while hidden files are not served (404).
    Hidden,
}

/// A request path that is safe to join onto the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafePath {
    /// Decoded segments joined with `/` (none empty, none `.` or `..`): the cache key and
    /// the path relative to the root.
    pub key: String,
    /// Whether the request path ended with `/` (a directory request).
    pub trailing_slash: bool,
}

/// Checks and decodes a request path below the mount point, without its leading `/` and
/// its query string.
pub fn parse_relative(rest: &str, serve_hidden: bool) -> Result<SafePath, PathError> {
    if rest.len() >= MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    let mut key = String::with_capacity(rest.len());
    let mut count = 0;
    for encoded in rest.split('/') {
        if !well_escaped(encoded) {
            return Err(PathError::Malformed);
        }
        let decoded = percent_decode_str(encoded)
            .decode_utf8()
            .map_err(|_| PathError::Malformed)?;
        match decoded.as_ref() {
            "" | "." => continue,
            ".." => return Err(PathError::Malformed),
            segment if segment.contains(['/', '\\', '\0']) => return Err(PathError::Malformed),
            segment if segment.starts_with('.') && !serve_hidden => return Err(PathError::Hidden),
            segment => {
                count += 1;
                if count > MAX_SEGMENTS {
                    return Err(PathError::TooLong);
                }
                if !key.is_empty() {
                    key.push('/');
                }
                key.push_str(segment);
            }
        }
    }
    Ok(SafePath {
        key,
        trailing_slash: rest.ends_with('/'),
    })
}

/// Whether every `%` starts a two-hex-digit escape (the decoder would keep a stray `%`).
fn well_escaped(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    bytes.iter().enumerate().all(|(index, &byte)| {
        byte != b'%'
            || (bytes.get(index + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(index + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole request path, as it arrives at the root (the leading `/` is the mount
    /// point's; without one the path is malformed).
    fn parse(raw: &str, serve_hidden: bool) -> Result<SafePath, PathError> {
        let rest = raw.strip_prefix('/').ok_or(PathError::Malformed)?;
        parse_relative(rest, serve_hidden)
    }

    fn ok(raw: &str) -> String {
        parse(raw, false)
            .unwrap_or_else(|e| panic!("{raw}: {e:?}"))
            .key
    }

    #[test]
    fn path_plain_paths_decode_to_segments() {
        assert_eq!(ok("/"), "");
        assert_eq!(ok("/index.html"), "index.html");
        assert_eq!(ok("/css/site.css"), "css/site.css");
        assert_eq!(ok("/a%20b/caf%C3%A9.txt"), "a b/café.txt");
        assert_eq!(
            ok("//etc/passwd"),
            "etc/passwd",
            "an absolute-looking path stays under the root"
        );
        assert_eq!(ok("/./a/./b"), "a/b");
        assert!(parse("/docs/", false).unwrap().trailing_slash);
        assert!(!parse("/docs", false).unwrap().trailing_slash);
        assert_eq!(parse_relative("a/b/", false).unwrap().key, "a/b");
    }

    #[test]
    fn path_traversal_corpus_is_refused() {
        let corpus = [
            "/..",
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/x",
            "/.%2e/x",
            "/%2e./x",
            "/a/%2e%2e/%2e%2e/x",
            "/..%2fetc%2fpasswd",
            "/a%2f..%2f..%2fx",
            "/%2f%2e%2e%2fx",
            "/..\\etc\\passwd",
            "/a%5c..%5cx",
            "/a\\b",
            "/x%00.html",
            "/x%00",
            "/%c0%ae%c0%ae/x",
            "/%c0%af",
            "/%e0%80%ae",
            "/%ff",
            "/%",
            "/%zz",
            "/%2",
            "etc/passwd",
            "",
        ];
        for raw in corpus {
            assert_eq!(parse(raw, true), Err(PathError::Malformed), "{raw:?}");
        }
    }

    #[test]
    fn path_dotfiles_are_hidden_unless_served() {
        for raw in ["/.env", "/.git/config", "/a/.htpasswd", "/%2egit/HEAD"] {
            assert_eq!(parse(raw, false), Err(PathError::Hidden), "{raw}");
            assert!(parse(raw, true).is_ok(), "{raw}");
        }
        assert_eq!(ok("/a.b/c"), "a.b/c");
    }

    #[test]
    fn path_very_long_or_deep_paths_are_refused() {
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        assert_eq!(parse(&long, false), Err(PathError::TooLong));
        let deep = "/a".repeat(MAX_SEGMENTS + 1);
        assert_eq!(parse(&deep, false), Err(PathError::TooLong));
        assert!(parse(&"/a".repeat(MAX_SEGMENTS), false).is_ok());
    }
}
