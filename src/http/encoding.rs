//! Content-coding negotiation: whether to send a representation gzip-compressed, as is
//! (`identity`), or not at all (406), from the request's `Accept-Encoding` (RFC 9110
//! §12.5.3).
//!
//! Only two codings exist here: `identity` and `gzip` (with `x-gzip` as its alias, §8.4.1.3).
//! Others a client lists (`br`, `zstd`, `deflate`, ...) are ignored. Each list member is
//! `coding` optionally followed by one `;q=<qvalue>` weight (§12.4.2); coding and
//! parameter names are case-insensitive and whitespace around the separators is
//! tolerated. A member whose weight is missing, malformed or out of range, or that carries
//! any other parameter, is skipped. When a coding is listed more than once, its highest
//! weight counts.
//!
//! Weights are resolved as §12.5.3 describes:
//!
//! - gzip: its own entry, else the `*` entry, else 0 (not acceptable).
//! - identity: its own entry, else the `*` entry, else 1: identity is acceptable unless
//!   `identity;q=0`, or `*;q=0` without an `identity` entry, rules it out.
//!
//! [`negotiate`] then prefers gzip when it exists and weighs at least as much as identity,
//! falls back to identity when acceptable, then to gzip when it exists and is acceptable,
//! and otherwise finds nothing. No header, or an empty one, means identity.

/// A content coding leanserve can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// The representation as stored, with no `Content-Encoding`.
    Identity,
    /// `Content-Encoding: gzip`.
    Gzip,
}

/// A weight (`qvalue`) in thousandths: 0 is "not acceptable", 1000 is the most preferred.
type Weight = u16;

/// The weight of a member without `;q=`.
const FULL_WEIGHT: Weight = 1000;

/// The weights found in one `Accept-Encoding` value; None where a coding is not listed.
#[derive(Clone, Copy, Debug, Default)]
struct Listed {
    gzip: Option<Weight>,
    identity: Option<Weight>,
    any: Option<Weight>,
}

/// Picks the coding to send. `gzip_available`: whether a gzip representation exists.
/// None means nothing acceptable can be sent (406).
pub fn negotiate(accept_encoding: Option<&str>, gzip_available: bool) -> Option<Coding> {
    let Some(accept_encoding) = accept_encoding else {
        return Some(Coding::Identity);
    };
    let listed = parse(accept_encoding);
    let gzip = listed.gzip.or(listed.any).unwrap_or(0);
    // Identity is acceptable unless excluded, but a client that lists only codings (say
    // `gzip;q=0.9`) prefers them: an unlisted identity ranks below every listed coding.
    let identity = listed.identity.or(listed.any).unwrap_or(FULL_WEIGHT);
    let identity_rank = listed.identity.or(listed.any).unwrap_or(0);

    if gzip_available && gzip > 0 && gzip >= identity_rank {
        Some(Coding::Gzip)
    } else if identity > 0 {
        Some(Coding::Identity)
    } else if gzip_available && gzip > 0 {
        Some(Coding::Gzip)
    } else {
        None
    }
}

/// Collects the weights of gzip, identity and `*`, keeping the highest of repeats.
fn parse(value: &str) -> Listed {
    let mut listed = Listed::default();
    for member in value.split(',') {
        let Some((coding, weight)) = parse_member(member) else {
            continue;
        };
        let slot = if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut listed.gzip
        } else if coding.eq_ignore_ascii_case("identity") {
            &mut listed.identity
        } else if coding == "*" {
            &mut listed.any
        } else {
            continue;
        };
        *slot = Some(slot.map_or(weight, |previous| previous.max(weight)));
    }
    listed
}

/// Splits `coding[;q=value]` into the coding name and its weight; None when the member
/// is empty or its parameters are not exactly one valid weight.
fn parse_member(member: &str) -> Option<(&str, Weight)> {
    let mut parts = member.split(';');
    let coding = trim_ows(parts.next()?);
    if coding.is_empty() {
        return None;
    }
    let weight = match parts.next() {
        None => FULL_WEIGHT,
        Some(parameter) => parse_weight(parameter)?,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((coding, weight))
}

/// Parses a `q=<qvalue>` parameter.
fn parse_weight(parameter: &str) -> Option<Weight> {
    let (name, value) = parameter.split_once('=')?;
    if !trim_ows(name).eq_ignore_ascii_case("q") {
        return None;
    }
    parse_qvalue(trim_ows(value))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_qvalue(text: &str) -> Option<Weight> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    // Missing digits count as zeros: "0.5" is 500 thousandths.
    let mut thousandths: Weight = 0;
    let mut digits = fraction.bytes();
    for _ in 0..3 {
        let digit = digits.next().map_or(0, |byte| byte.saturating_sub(b'0'));
        thousandths = thousandths
            .saturating_mul(10)
            .saturating_add(Weight::from(digit));
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(FULL_WEIGHT),
        _ => None,
    }
}

/// Removes optional whitespace (spaces and tabs) from both ends.
fn trim_ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_gzip(value: &str) -> Option<Coding> {
        negotiate(Some(value), true)
    }

    fn without_gzip(value: &str) -> Option<Coding> {
        negotiate(Some(value), false)
    }

    #[test]
    fn encoding_absent_header_is_identity() {
        assert_eq!(negotiate(None, true), Some(Coding::Identity));
        assert_eq!(negotiate(None, false), Some(Coding::Identity));
    }

    #[test]
    fn encoding_empty_header_is_identity() {
        for value in ["", " ", "\t"] {
            assert_eq!(with_gzip(value), Some(Coding::Identity), "{value:?}");
            assert_eq!(without_gzip(value), Some(Coding::Identity), "{value:?}");
        }
    }

    #[test]
    fn encoding_gzip_is_chosen_when_available() {
        assert_eq!(with_gzip("gzip"), Some(Coding::Gzip));
        assert_eq!(with_gzip("gzip, deflate, br, zstd"), Some(Coding::Gzip));
        assert_eq!(without_gzip("gzip"), Some(Coding::Identity));
    }

    #[test]
    fn encoding_names_are_case_insensitive() {
        assert_eq!(with_gzip("GZIP"), Some(Coding::Gzip));
        assert_eq!(with_gzip("GZip;Q=1"), Some(Coding::Gzip));
        assert_eq!(with_gzip("gzip, IDENTITY;q=0"), Some(Coding::Gzip));
        assert_eq!(without_gzip("Identity;q=0"), None);
    }

    #[test]
    fn encoding_x_gzip_is_an_alias_of_gzip() {
        assert_eq!(with_gzip("x-gzip"), Some(Coding::Gzip));
        assert_eq!(with_gzip("X-GZIP;Q=1.0"), Some(Coding::Gzip));
        assert_eq!(without_gzip("x-gzip"), Some(Coding::Identity));
        // Both listed: the higher weight counts, whichever comes first.
        assert_eq!(
            with_gzip("gzip;q=0, x-gzip;q=0.9, identity;q=0.5"),
            Some(Coding::Gzip)
        );
        assert_eq!(
            with_gzip("x-gzip;q=0.9, gzip;q=0, identity;q=0.5"),
            Some(Coding::Gzip)
        );
        assert_eq!(with_gzip("x-gzip;q=0, gzip;q=0"), Some(Coding::Identity));
    }

    #[test]
    fn encoding_gzip_weight_zero_is_identity() {
        assert_eq!(with_gzip("gzip;q=0"), Some(Coding::Identity));
        assert_eq!(with_gzip("gzip;q=0.000"), Some(Coding::Identity));
    }

    #[test]
    fn encoding_higher_identity_weight_is_identity() {
        assert_eq!(
            with_gzip("gzip;q=0.5, identity;q=0.8"),
            Some(Coding::Identity)
        );
    }

    #[test]
    fn encoding_equal_weights_prefer_gzip() {
        assert_eq!(with_gzip("gzip;q=0.5, identity;q=0.5"), Some(Coding::Gzip));
        assert_eq!(with_gzip("identity, gzip"), Some(Coding::Gzip));
    }

    #[test]
    fn encoding_listed_gzip_beats_unlisted_identity() {
        // identity is acceptable when not listed, but ranks below any listed coding.
        assert_eq!(with_gzip("gzip;q=0.5"), Some(Coding::Gzip));
        assert_eq!(without_gzip("gzip;q=0.5"), Some(Coding::Identity));
        assert_eq!(with_gzip("gzip;q=1.0"), Some(Coding::Gzip));
    }

    #[test]
    fn encoding_identity_excluded_uses_gzip_or_nothing() {
        assert_eq!(with_gzip("identity;q=0"), None);
        assert_eq!(with_gzip("gzip, identity;q=0"), Some(Coding::Gzip));
        assert_eq!(without_gzip("identity;q=0"), None);
        assert_eq!(without_gzip("gzip, identity;q=0"), None);
    }

    #[test]
    fn encoding_identity_excluded_with_lower_gzip_still_sends_gzip() {
        assert_eq!(with_gzip("gzip;q=0.1, identity;q=0"), Some(Coding::Gzip));
    }

    #[test]
    fn encoding_star_zero_excludes_unlisted_codings() {
        assert_eq!(with_gzip("*;q=0"), None);
        assert_eq!(without_gzip("*;q=0"), None);
        assert_eq!(with_gzip("gzip, *;q=0"), Some(Coding::Gzip));
        assert_eq!(without_gzip("gzip, *;q=0"), None);
        assert_eq!(with_gzip("identity, *;q=0"), Some(Coding::Identity));
        assert_eq!(with_gzip("br, *;q=0"), None);
    }

    #[test]
    fn encoding_star_accepts_gzip_and_identity() {
        assert_eq!(with_gzip("*"), Some(Coding::Gzip));
        assert_eq!(without_gzip("*"), Some(Coding::Identity));
        assert_eq!(with_gzip("*;q=0.3"), Some(Coding::Gzip));
        assert_eq!(with_gzip("*;q=0.3, identity"), Some(Coding::Identity));
        assert_eq!(with_gzip("*, gzip;q=0"), Some(Coding::Identity));
    }

    #[test]
    fn encoding_other_codings_only_is_identity() {
        assert_eq!(with_gzip("br"), Some(Coding::Identity));
        assert_eq!(with_gzip("br, zstd;q=0.9, deflate"), Some(Coding::Identity));
        assert_eq!(without_gzip("br"), Some(Coding::Identity));
    }

    #[test]
    fn encoding_garbage_is_identity() {
        for value in [
            ";;;,,q=",
            ",,,",
            ";q=1",
            "=",
            ";",
            "q",
            "gzip;",
            "gzip;;q=1",
        ] {
            assert_eq!(with_gzip(value), Some(Coding::Identity), "{value:?}");
        }
    }

    #[test]
    fn encoding_out_of_range_weight_is_skipped() {
        for value in ["gzip;q=2", "gzip;q=1.001", "gzip;q=-0.5", "gzip;q=1.5"] {
            assert_eq!(with_gzip(value), Some(Coding::Identity), "{value}");
        }
        // A skipped identity member leaves identity at its default weight.
        assert_eq!(with_gzip("identity;q=7"), Some(Coding::Identity));
        assert_eq!(with_gzip("gzip;q=2, *;q=0"), None);
    }

    #[test]
    fn encoding_malformed_weight_is_skipped() {
        for value in [
            "gzip;q=abc",
            "gzip;q=",
            "gzip;q",
            "gzip;q=0.1234",
            "gzip;q=.5",
            "gzip;q=0.5x",
            "gzip;q=0.+5",
            "gzip;q=01",
            "gzip;q=1e0",
            "gzip;level=9",
            "gzip;q=1;level=9",
            "gzip;q=1;q=1",
            "gzip;q=٠.5",
        ] {
            assert_eq!(with_gzip(value), Some(Coding::Identity), "{value}");
        }
    }

    #[test]
    fn encoding_weights_with_fewer_digits_are_read() {
        assert_eq!(parse_qvalue("0"), Some(0));
        assert_eq!(parse_qvalue("0."), Some(0));
        assert_eq!(parse_qvalue("0.5"), Some(500));
        assert_eq!(parse_qvalue("0.05"), Some(50));
        assert_eq!(parse_qvalue("0.001"), Some(1));
        assert_eq!(parse_qvalue("0.999"), Some(999));
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("1."), Some(1000));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("1.0001"), None);
        assert_eq!(parse_qvalue(""), None);
        assert_eq!(parse_qvalue("."), None);
    }

    #[test]
    fn encoding_smallest_weight_is_acceptable() {
        assert_eq!(with_gzip("gzip;q=0.001, identity;q=0"), Some(Coding::Gzip));
    }

    #[test]
    fn encoding_whitespace_is_tolerated() {
        assert_eq!(with_gzip("gzip ; q=0.9"), Some(Coding::Gzip));
        assert_eq!(
            with_gzip(" gzip ; q=0.9 ,\tidentity ;q = 0.1 "),
            Some(Coding::Gzip)
        );
        assert_eq!(with_gzip("  gzip  "), Some(Coding::Gzip));
    }

    #[test]
    fn encoding_repeated_entries_keep_the_highest_weight() {
        assert_eq!(
            with_gzip("identity;q=0, identity;q=0.5, gzip;q=0.4"),
            Some(Coding::Identity)
        );
        assert_eq!(with_gzip("*;q=0, *;q=0.2"), Some(Coding::Gzip));
    }

    #[test]
    fn encoding_very_long_header_is_handled() {
        let long = "br;q=0.5, ".repeat(10_000) + "gzip";
        assert_eq!(with_gzip(&long), Some(Coding::Gzip));
        let junk = ";".repeat(100_000);
        assert_eq!(with_gzip(&junk), Some(Coding::Identity));
        let digits = format!("gzip;q=0.{}", "9".repeat(100_000));
        assert_eq!(with_gzip(&digits), Some(Coding::Identity));
    }
}
