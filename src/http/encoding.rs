//! Content-coding negotiation (RFC 9110 §12.5.3): which representation of a file to send,
//! `identity`, `gzip`, `br` or `zstd`, or none at all (406), from the request's
//! `Accept-Encoding`, and which coding a client would most like the cache to hold.
//!
//! Each list member is `coding` optionally followed by one `;q=<qvalue>` weight
//! (§12.4.2); coding and parameter names are case-insensitive and whitespace around the
//! separators is tolerated. A member whose weight is missing, malformed or out of range,
//! or that carries any other parameter, is skipped. When a coding is listed more than
//! once, its highest weight counts. `x-gzip` is an alias of `gzip` (§8.4.1.3). Codings
//! leanserve does not send (`deflate`, `compress`, ...) are ignored; the dictionary
//! codings `dcz` and `dcb` are read apart ([`Accepted::dictionary_coding`]). A header that
//! is malformed through and through is read as an empty one: never an error.
//!
//! Weights are resolved as §12.5.3 describes:
//!
//! - a content coding (gzip, br, zstd): its own entry, else the `*` entry, else 0 (not
//!   acceptable);
//! - identity: its own entry, else the `*` entry, else acceptable: only `identity;q=0`,
//!   or `*;q=0` without an `identity` entry, rules it out. An identity the client did not
//!   list ranks below every coding it listed (`gzip;q=0.5` prefers gzip).
//!
//! [`Accepted::choose`] picks among the representations that exist: the highest weight
//! wins, and **at equal weight the smallest representation wins** (a client that takes
//! `gzip, br, zstd` alike gets whichever of them is stored smallest; identity, never
//! smaller than a kept compressed form, comes last). With nothing acceptable there is
//! nothing to send (406). No header at all means identity.
//!
//! [`Accepted::preferred`] answers which compressed coding the cache should build for a
//! client: the acceptable coding of the highest weight among those enabled, ties broken by
//! the server's order (`static_files.encodings`, br before zstd before gzip by default),
//! and only when it ranks at least as high as identity.

use super::dictionary::DictCoding;

/// A content coding leanserve can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Coding {
    /// The representation as stored, with no `Content-Encoding`.
    Identity,
    /// `Content-Encoding: gzip`.
    Gzip,
    /// `Content-Encoding: br` (RFC 7932).
    Br,
    /// `Content-Encoding: zstd` (RFC 8878).
    Zstd,
}

impl Coding {
    /// The compressed codings, in the order of their slots ([`Coding::slot`]).
    pub const COMPRESSED: [Coding; 3] = [Coding::Gzip, Coding::Br, Coding::Zstd];

    /// The coding's token, as `Content-Encoding` and `Accept-Encoding` spell it.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// A compressed coding from its configuration name (`gzip`, `br`, `zstd`).
    pub fn from_name(name: &str) -> Option<Coding> {
        Coding::COMPRESSED
            .into_iter()
            .find(|coding| coding.token() == name)
    }

    /// The index of a compressed coding in [`Coding::COMPRESSED`]; None for identity.
    pub fn slot(self) -> Option<usize> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some(0),
            Coding::Br => Some(1),
            Coding::Zstd => Some(2),
        }
    }

    /// Index into [`Listed::weights`].
    fn index(self) -> usize {
        match self {
            Coding::Identity => 3,
            coding => coding.slot().expect("compressed"),
        }
    }
}

/// A weight (`qvalue`) in thousandths: 0 is "not acceptable", 1000 is the most preferred.
type Weight = u16;

/// The weight of a member without `;q=`.
const FULL_WEIGHT: Weight = 1000;

/// What one `Accept-Encoding` header accepts (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Accepted {
    /// No header at all: identity only.
    absent: bool,
    /// The listed weights of gzip, br, zstd and identity; None where not listed.
    weights: [Option<Weight>; 4],
    any: Option<Weight>,
    /// The listed weights of the dictionary codings (`dcz`, `dcb`, by
    /// [`DictCoding::slot`]); `*` does not stand for them, as they need a dictionary the
    /// request names.
    dictionary: [Option<Weight>; 2],
}

impl Accepted {
    /// Reads a request's `Accept-Encoding` (None: no header).
    pub fn parse(header: Option<&str>) -> Accepted {
        let Some(value) = header else {
            return Accepted {
                absent: true,
                ..Accepted::default()
            };
        };
        let mut accepted = Accepted::default();
        for member in value.split(',') {
            let Some((name, weight)) = parse_member(member) else {
                continue;
            };
            let slot = if name == "*" {
                &mut accepted.any
            } else if let Some(coding) = coding_named(name) {
                &mut accepted.weights[coding.index()]
            } else if let Some(coding) = DictCoding::from_name(name) {
                &mut accepted.dictionary[coding.slot()]
            } else {
                continue;
            };
            *slot = Some(slot.map_or(weight, |previous| previous.max(weight)));
        }
        accepted
    }

    /// The weight `coding` resolves to; 0 means not acceptable.
    fn weight(&self, coding: Coding) -> Weight {
        if self.absent {
            return if coding == Coding::Identity {
                FULL_WEIGHT
            } else {
                0
            };
        }
        let listed = self.weights[coding.index()].or(self.any);
        match coding {
            Coding::Identity => listed.unwrap_or(FULL_WEIGHT),
            _ => listed.unwrap_or(0),
        }
    }

    /// The weight `coding` ranks with: its weight, except that an identity the client
    /// did not list ranks below every listed coding.
    fn rank(&self, coding: Coding) -> Weight {
        match coding {
            Coding::Identity if !self.absent => {
                self.weights[coding.index()].or(self.any).unwrap_or(0)
            }
            _ => self.weight(coding),
        }
    }

    /// Whether `coding` may be sent at all.
    pub fn accepts(&self, coding: Coding) -> bool {
        self.weight(coding) > 0
    }

    /// Picks the representation to send among those that exist, each given with its
    /// length: the acceptable one of the highest rank, the smallest of equals. None when
    /// none is acceptable (406).
    pub fn choose(&self, available: impl IntoIterator<Item = (Coding, u64)>) -> Option<Coding> {
        // A plain loop: `filter` then `min_by_key` on this chain made LLVM 22 (Rust 1.95)
        // crash with SIGILL in a release build (opt-level 3, one codegen unit).
        let mut best: Option<(Coding, Weight, u64)> = None;
        for (coding, len) in available {
            if !self.accepts(coding) {
                continue;
            }
            let rank = self.rank(coding);
            let better = best.is_none_or(|(_, best_rank, best_len)| {
                rank > best_rank || (rank == best_rank && len < best_len)
            });
            if better {
                best = Some((coding, rank, len));
            }
        }
        best.map(|(coding, _, _)| coding)
    }

    /// The compressed coding, among `enabled` (in the server's order of preference), the
    /// cache should hold for this client; None when the client takes none of them over
    /// identity.
    pub fn preferred(&self, enabled: &[Coding]) -> Option<Coding> {
        let identity = self.rank(Coding::Identity);
        let mut best: Option<(Coding, Weight)> = None;
        for &coding in enabled {
            let weight = self.weight(coding);
            if weight > 0 && weight >= identity && best.is_none_or(|(_, w)| weight > w) {
                best = Some((coding, weight));
            }
        }
        best.map(|(coding, _)| coding)
    }
}

impl Accepted {
    /// The dictionary coding, among `enabled` (in the server's order of preference),
    /// to send this client when it names a dictionary leanserve holds: the listed one of
    /// the highest weight, ties broken by `enabled`'s order; None when it lists none.
    pub fn dictionary_coding(&self, enabled: &[DictCoding]) -> Option<DictCoding> {
        let mut best: Option<(DictCoding, Weight)> = None;
        for &coding in enabled {
            let weight = self.dictionary[coding.slot()].unwrap_or(0);
            if weight > 0 && best.is_none_or(|(_, w)| weight > w) {
                best = Some((coding, weight));
            }
        }
        best.map(|(coding, _)| coding)
    }
}

/// Picks between gzip (when `gzip_available`) and identity, as [`Accepted::choose`] does
/// with gzip smaller than identity; for responses that have no other coding (renders).
pub fn negotiate(accept_encoding: Option<&str>, gzip_available: bool) -> Option<Coding> {
    let accepted = Accepted::parse(accept_encoding);
    let gzip = gzip_available.then_some((Coding::Gzip, 0));
    accepted.choose(gzip.into_iter().chain([(Coding::Identity, 1)]))
}

/// The coding a member names, if leanserve sends it.
fn coding_named(name: &str) -> Option<Coding> {
    if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
        Some(Coding::Gzip)
    } else if name.eq_ignore_ascii_case("br") {
        Some(Coding::Br)
    } else if name.eq_ignore_ascii_case("zstd") {
        Some(Coding::Zstd)
    } else if name.eq_ignore_ascii_case("identity") {
        Some(Coding::Identity)
    } else {
        None
    }
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
    fn dictionary_codings_are_listed_explicitly_and_weighed() {
        let both = [DictCoding::Dcz, DictCoding::Dcb];
        let chromium = Accepted::parse(Some("gzip, deflate, br, zstd, dcb, dcz"));
        assert_eq!(chromium.dictionary_coding(&both), Some(DictCoding::Dcz));
        assert_eq!(
            chromium.dictionary_coding(&[DictCoding::Dcb, DictCoding::Dcz]),
            Some(DictCoding::Dcb),
            "ties go to the server's order"
        );
        assert_eq!(
            Accepted::parse(Some("dcz;q=0.5, DCB")).dictionary_coding(&both),
            Some(DictCoding::Dcb)
        );
        assert_eq!(
            Accepted::parse(Some("dcz;q=0")).dictionary_coding(&both),
            None
        );
        assert_eq!(Accepted::parse(Some("*")).dictionary_coding(&both), None);
        assert_eq!(Accepted::parse(None).dictionary_coding(&both), None);
        assert_eq!(chromium.dictionary_coding(&[]), None);
        // Listing them changes nothing for the plain codings.
        assert_eq!(
            Accepted::parse(Some("dcz, dcb")).choose([(Coding::Gzip, 1), (Coding::Identity, 9)]),
            Some(Coding::Identity)
        );
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

    const ALL: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

    /// Chooses among identity (1000 bytes) and the given compressed representations.
    fn choose(value: Option<&str>, stored: &[(Coding, u64)]) -> Option<Coding> {
        Accepted::parse(value).choose(stored.iter().copied().chain([(Coding::Identity, 1000)]))
    }

    #[test]
    fn encoding_equal_weights_choose_the_smallest_representation() {
        let stored = [(Coding::Gzip, 300), (Coding::Br, 240), (Coding::Zstd, 260)];
        let chrome = Some("gzip, deflate, br, zstd");
        assert_eq!(choose(chrome, &stored), Some(Coding::Br));
        let stored = [(Coding::Gzip, 300), (Coding::Br, 280), (Coding::Zstd, 260)];
        assert_eq!(choose(chrome, &stored), Some(Coding::Zstd));
        assert_eq!(choose(Some("gzip, br"), &stored), Some(Coding::Br));
        assert_eq!(choose(Some("*"), &stored), Some(Coding::Zstd));
    }

    #[test]
    fn encoding_weights_beat_sizes() {
        let stored = [(Coding::Gzip, 300), (Coding::Br, 240), (Coding::Zstd, 260)];
        assert_eq!(
            choose(Some("br;q=0.5, gzip;q=0.9, zstd;q=0.1"), &stored),
            Some(Coding::Gzip)
        );
        assert_eq!(
            choose(Some("br;q=0.2, identity"), &stored),
            Some(Coding::Identity)
        );
        assert_eq!(
            choose(Some("zstd;q=0.2, *;q=0.1"), &stored),
            Some(Coding::Zstd)
        );
        assert_eq!(choose(Some("*;q=0.5, br;q=0"), &stored), Some(Coding::Zstd));
    }

    #[test]
    fn encoding_only_stored_representations_are_chosen() {
        assert_eq!(
            choose(Some("br"), &[(Coding::Gzip, 300)]),
            Some(Coding::Identity)
        );
        assert_eq!(
            choose(Some("br, identity;q=0"), &[(Coding::Gzip, 300)]),
            None
        );
        assert_eq!(
            choose(Some("br, identity;q=0"), &[(Coding::Br, 300)]),
            Some(Coding::Br)
        );
        assert_eq!(choose(Some("zstd, *;q=0"), &[]), None);
        assert_eq!(choose(None, &[(Coding::Br, 1)]), Some(Coding::Identity));
        assert_eq!(choose(Some(""), &[(Coding::Br, 1)]), Some(Coding::Identity));
    }

    #[test]
    fn encoding_unknown_codings_are_ignored() {
        let stored = [(Coding::Gzip, 300)];
        assert_eq!(
            choose(Some("deflate, compress, dcz, dcb"), &stored),
            Some(Coding::Identity)
        );
        assert_eq!(
            choose(Some("deflate, compress;q=1, gzip;q=0.1"), &stored),
            Some(Coding::Gzip)
        );
        assert_eq!(choose(Some("deflate, identity;q=0"), &stored), None);
    }

    #[test]
    fn encoding_preferred_follows_weights_then_the_servers_order() {
        let pref =
            |value: &str, enabled: &[Coding]| Accepted::parse(Some(value)).preferred(enabled);
        assert_eq!(pref("gzip, deflate, br, zstd", &ALL), Some(Coding::Br));
        assert_eq!(
            pref("gzip, deflate, br, zstd", &[Coding::Zstd, Coding::Gzip]),
            Some(Coding::Zstd)
        );
        assert_eq!(pref("gzip", &ALL), Some(Coding::Gzip));
        assert_eq!(pref("gzip;q=1, br;q=0.5", &ALL), Some(Coding::Gzip));
        assert_eq!(pref("br", &[Coding::Gzip]), None);
        assert_eq!(
            pref("identity, gzip;q=0.5", &ALL),
            None,
            "identity ranks higher"
        );
        assert_eq!(pref("identity;q=0.5, gzip;q=0.5", &ALL), Some(Coding::Gzip));
        assert_eq!(pref("*", &ALL), Some(Coding::Br));
        assert_eq!(pref("*;q=0", &ALL), None);
        assert_eq!(pref("", &ALL), None);
        assert_eq!(Accepted::parse(None).preferred(&ALL), None);
    }

    #[test]
    fn encoding_token_names_round_trip() {
        for coding in Coding::COMPRESSED {
            assert_eq!(Coding::from_name(coding.token()), Some(coding));
            assert_eq!(Coding::COMPRESSED[coding.slot().unwrap()], coding);
        }
        assert_eq!(Coding::from_name("identity"), None);
        assert_eq!(Coding::from_name("deflate"), None);
        assert_eq!(Coding::Identity.slot(), None);
    }
}
