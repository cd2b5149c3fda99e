//! Compression Dictionary Transport (RFC 9842), the pure part: the two dictionary
//! codings and their fixed headers, the request's `Available-Dictionary`, the
//! `Use-As-Dictionary` a dictionary response carries, its `match` patterns, and which
//! requests may receive a dictionary-compressed response at all.
//!
//! - A response marked `Use-As-Dictionary: match="<pattern>"` is kept by the client as a
//!   dictionary for later requests whose URL matches the pattern (URLPattern syntax;
//!   leanserve writes only paths with `*` wildcards, always on its own origin).
//! - Such a request carries `Available-Dictionary: :<base64 of the SHA-256>:` (a
//!   structured-field byte sequence) and lists `dcb` and/or `dcz` in Accept-Encoding.
//! - `dcz` is a 40-byte zstd skippable frame holding that hash, then a zstd frame
//!   compressed with the dictionary as raw content; `dcb` is a 36-byte header (`0xff`
//!   `DCB`, the hash), then a brotli stream that reaches into the dictionary as a prefix.

use base64::Engine;

/// A dictionary content coding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DictCoding {
    /// `dcz`: dictionary-compressed zstd.
    Dcz,
    /// `dcb`: dictionary-compressed brotli.
    Dcb,
}

impl DictCoding {
    /// Both, in the order of their slots ([`DictCoding::slot`]).
    pub const ALL: [DictCoding; 2] = [DictCoding::Dcz, DictCoding::Dcb];

    /// The coding's token in `Content-Encoding` and `Accept-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            DictCoding::Dcz => "dcz",
            DictCoding::Dcb => "dcb",
        }
    }

    /// A dictionary coding from its token (case-insensitive).
    pub fn from_name(name: &str) -> Option<DictCoding> {
        DictCoding::ALL
            .into_iter()
            .find(|coding| coding.token().eq_ignore_ascii_case(name))
    }

    /// The coding's index in [`DictCoding::ALL`].
    pub fn slot(self) -> usize {
        match self {
            DictCoding::Dcz => 0,
            DictCoding::Dcb => 1,
        }
    }

    /// The fixed header that opens a body in this coding: the dictionary's hash behind
    /// a magic number (for dcz, a zstd skippable frame of 32 bytes).
    pub fn header(self, hash: &[u8; 32]) -> Vec<u8> {
        let magic: &[u8] = match self {
            DictCoding::Dcz => &[0x5e, 0x2a, 0x4d, 0x18, 0x20, 0x00, 0x00, 0x00],
            DictCoding::Dcb => &[0xff, 0x44, 0x43, 0x42],
        };
        let mut header = Vec::with_capacity(magic.len() + 32);
        header.extend_from_slice(magic);
        header.extend_from_slice(hash);
        header
    }

    /// Length of [`DictCoding::header`].
    pub fn header_len(self) -> usize {
        match self {
            DictCoding::Dcz => 40,
            DictCoding::Dcb => 36,
        }
    }
}

/// The dictionary hash a request's `Available-Dictionary` names: a structured-field byte
/// sequence (`:` base64 `:`) of exactly 32 bytes. None for anything else (absent, not a
/// byte sequence, bad base64, another length): such a request is served as if it held
/// no dictionary.
pub fn available_dictionary(header: Option<&str>) -> Option<[u8; 32]> {
    let value = header?.trim_matches([' ', '\t']);
    let encoded = value.strip_prefix(':')?.strip_suffix(':')?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    bytes.try_into().ok()
}

/// `hash` as `Available-Dictionary` spells it (what a client sends).
#[cfg(test)]
pub fn available_dictionary_value(hash: &[u8; 32]) -> String {
    format!(
        ":{}:",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// The value of `Use-As-Dictionary` for a dictionary that applies to the paths
/// `pattern` matches (an absolute path on this origin), optionally only to requests of
/// the fetch destination `destination` (`document` for pages), under `id` (echoed by the
/// client in `Dictionary-ID`).
pub fn use_as_dictionary(pattern: &str, destination: Option<&str>, id: Option<&str>) -> String {
    let mut value = format!("match=\"{}\"", escape_sf_string(pattern));
    if let Some(destination) = destination {
        value.push_str(&format!(", match-dest=(\"{destination}\")"));
    }
    if let Some(id) = id {
        value.push_str(&format!(", id=\"{}\"", escape_sf_string(id)));
    }
    value
}

fn escape_sf_string(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Checks a configured asset pattern (`static_files.dictionary_assets`): a path from
/// the mount point, starting with `/`, of visible ASCII, whose only special character
/// is the `*` wildcard (the URLPattern characters `: ( ) { } ? + \` and `#` are refused,
/// so the pattern means the same to leanserve and to the browser), with at least one
/// `*` (a pattern without one names a single file: its next version could never
/// match).
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if !pattern.starts_with('/') {
        return Err(format!("{pattern:?} does not start with /"));
    }
    if let Some(bad) = pattern
        .chars()
        .find(|c| !c.is_ascii_graphic() || ":(){}?+\\#\"".contains(*c))
    {
        return Err(format!("{pattern:?} contains {bad:?}; only * is special"));
    }
    if !pattern.contains('*') {
        return Err(format!(
            "{pattern:?} has no * (it would match one file only)"
        ));
    }
    Ok(())
}

/// Whether `path` matches `pattern`, where `*` matches any run of characters
/// (including `/`, as in a URLPattern pathname).
pub fn pattern_matches(pattern: &str, path: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = path.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether a request's fetch metadata marks it as a cross-origin `no-cors` fetch (an
/// image or script tag of another site): its response would be opaque to the page,
/// which RFC 9842 keeps dictionary compression away from (the client should not have
/// offered a dictionary; leanserve does not use one either way). Requests without
/// fetch metadata (non-browser clients) are not.
pub fn opaque_to_requester(sec_fetch_site: Option<&str>, sec_fetch_mode: Option<&str>) -> bool {
    let cross = sec_fetch_site.is_some_and(|site| {
        site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site")
    });
    let no_cors = sec_fetch_mode.is_some_and(|mode| mode.eq_ignore_ascii_case("no-cors"));
    cross && no_cors
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_the_magic_and_the_hash() {
        let hash = [7u8; 32];
        let dcz = DictCoding::Dcz.header(&hash);
        assert_eq!(dcz.len(), DictCoding::Dcz.header_len());
        assert_eq!(&dcz[..8], &[0x5e, 0x2a, 0x4d, 0x18, 0x20, 0, 0, 0]);
        assert_eq!(&dcz[8..], &hash);
        let dcb = DictCoding::Dcb.header(&hash);
        assert_eq!(dcb.len(), DictCoding::Dcb.header_len());
        assert_eq!(&dcb[..4], b"\xffDCB");
        assert_eq!(&dcb[4..], &hash);
    }

    #[test]
    fn available_dictionary_reads_a_32_byte_sequence_only() {
        let hash: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        let value = available_dictionary_value(&hash);
        assert_eq!(available_dictionary(Some(&value)), Some(hash));
        assert_eq!(
            available_dictionary(Some(&format!(" {value}\t"))),
            Some(hash)
        );
        for bad in [
            "",
            ":",
            "::",
            &value[1..],
            &value[..value.len() - 1],
            ":not base64!:",
            ":AAAA:",
            &format!(":{}:", "A".repeat(48)),
            "\"abc\"",
        ] {
            assert_eq!(available_dictionary(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(available_dictionary(None), None);
    }

    #[test]
    fn use_as_dictionary_is_a_structured_dictionary() {
        assert_eq!(
            use_as_dictionary("/site/*", Some("document"), Some("ab12")),
            r#"match="/site/*", match-dest=("document"), id="ab12""#
        );
        assert_eq!(
            use_as_dictionary("/a/app-*.js", None, None),
            r#"match="/a/app-*.js""#
        );
    }

    #[test]
    fn patterns_allow_only_the_wildcard() {
        assert!(check_pattern("/assets/app-*.js").is_ok());
        assert!(check_pattern("/*").is_ok());
        for bad in [
            "assets/*.js",
            "/a/:id/*",
            "/a/(x)*",
            "/a*?",
            "/a b*",
            "/app.js",
            "/a\\*",
        ] {
            assert!(check_pattern(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wildcards_match_any_run() {
        for (pattern, path, matches) in [
            ("/assets/app-*.js", "/assets/app-1234.js", true),
            ("/assets/app-*.js", "/assets/app-.js", true),
            ("/assets/app-*.js", "/assets/app-1.css", false),
            ("/assets/app-*.js", "/other/app-1.js", false),
            ("/*", "/", true),
            ("/*", "/a/b/c.html", true),
            ("/a/*/b-*.js", "/a/x/y/b-2.js", true),
            ("/a/*/b-*.js", "/a/x/c-2.js", false),
            ("/x*x", "/x", false),
            ("/x*x", "/xx", true),
        ] {
            assert_eq!(pattern_matches(pattern, path), matches, "{pattern} {path}");
        }
    }

    #[test]
    fn only_cross_origin_no_cors_fetches_are_opaque() {
        assert!(opaque_to_requester(Some("cross-site"), Some("no-cors")));
        assert!(opaque_to_requester(Some("same-site"), Some("no-cors")));
        assert!(!opaque_to_requester(Some("same-origin"), Some("no-cors")));
        assert!(!opaque_to_requester(Some("cross-site"), Some("cors")));
        assert!(!opaque_to_requester(Some("none"), Some("navigate")));
        assert!(!opaque_to_requester(None, None));
    }
}
