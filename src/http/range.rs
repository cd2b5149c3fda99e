//! Byte-range requests: whether to send the whole representation, one slice of it (206
//! Partial Content) or 416 Range Not Satisfiable (RFC 9110 §14).
//!
//! [`evaluate`] applies, in order:
//!
//! 1. No `Range` header: the whole representation.
//! 2. `If-Range` (§13.1.5), consulted only when `Range` is present: an entity tag (a value
//!    starting with `"` or `W/`) must match the current tag under strong comparison, so
//!    a weak tag never does; otherwise the value is an HTTP-date that must equal the
//!    last modification time at one-second resolution. A failed or unparsable `If-Range`
//!    means the whole representation.
//! 3. `Range` (§14.2): the `bytes` unit (case-insensitive), `=`, then a list of
//!    `first-last`, `first-` or `-suffix` specs with optional whitespace around them.
//!    Empty list members are skipped, as §5.6.1.2 asks of recipients. A header that does
//!    not parse (another unit, a non-digit, a number beyond `u64`, `last` before `first`,
//!    no spec at all) is ignored and the whole representation is sent.
//! 4. A single spec is resolved against the length (§14.1.2): an end past the last byte
//!    is clamped to it; a start at or past the length, a zero-length suffix, or any range
//!    of an empty representation is unsatisfiable (416).
//!
//! Requests for several ranges are answered with the whole representation: leanserve
//! never builds `multipart/byteranges` responses. §14.2 lets a server ignore `Range`
//! altogether, and doing so for multi-range requests also removes a class of
//! amplification attacks, where many small or overlapping ranges make the server send
//! far more bytes (and part headers) than the representation holds.

use std::time::SystemTime;

use super::conditional::{parse_date, strong_match, unix_seconds};

/// What to send in answer to a `Range` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Send the whole representation (200): no Range, an invalid Range, a failed If-Range, or several ranges.
    Full,
    /// Send bytes `start..=end` (206).
    Partial {
        /// Offset of the first byte sent.
        start: u64,
        /// Offset of the last byte sent, inclusive; always below the length.
        end: u64,
    },
    /// 416 with `Content-Range: bytes */<len>`.
    Unsatisfiable,
}

/// One syntactically valid `range-spec` before it meets the representation's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RangeSpec {
    /// `first-last`, with `first <= last`.
    Bounded { first: u64, last: u64 },
    /// `first-`: from `first` to the end.
    From { first: u64 },
    /// `-suffix`: the last `suffix` bytes.
    Suffix { length: u64 },
}

/// Decides the outcome from the `Range` and `If-Range` header values. `len`: length of
/// the representation being sent; `etag`/`last_modified`: its validators (for If-Range).
pub fn evaluate(
    range: Option<&str>,
    if_range: Option<&str>,
    len: u64,
    etag: &str,
    last_modified: Option<SystemTime>,
) -> RangeOutcome {
    let Some(range) = range else {
        return RangeOutcome::Full;
    };
    if let Some(if_range) = if_range
        && !if_range_holds(if_range, etag, last_modified)
    {
        return RangeOutcome::Full;
    }
    match parse_single_spec(range) {
        Some(spec) => resolve(spec, len),
        None => RangeOutcome::Full,
    }
}

/// `Content-Range` value for a partial response: "bytes {start}-{end}/{len}".
pub fn content_range(start: u64, end: u64, len: u64) -> String {
    format!("bytes {start}-{end}/{len}")
}

/// `Content-Range` value for a 416: "bytes */{len}".
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// Whether an `If-Range` value lets the range apply to the current representation.
fn if_range_holds(if_range: &str, etag: &str, last_modified: Option<SystemTime>) -> bool {
    let if_range = if_range.trim_matches([' ', '\t']);
    if if_range.starts_with('"') || if_range.starts_with("W/") {
        return strong_match(if_range, etag);
    }
    match (parse_date(if_range), last_modified.and_then(unix_seconds)) {
        (Some(date), Some(modified)) => date == modified,
        _ => false,
    }
}

/// Parses a `Range` value that asks for exactly one byte range; None when the value is
/// invalid or asks for several ranges, both of which mean sending everything.
fn parse_single_spec(value: &str) -> Option<RangeSpec> {
    let (unit, specs) = value.trim_matches([' ', '\t']).split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut members = specs
        .split(',')
        .map(|member| member.trim_matches([' ', '\t']))
        .filter(|member| !member.is_empty());
    let only = members.next()?;
    if members.next().is_some() {
        return None;
    }
    parse_spec(only)
}

/// Parses one `range-spec`: `first-last`, `first-` or `-suffix`.
fn parse_spec(spec: &str) -> Option<RangeSpec> {
    let (first, last) = spec.split_once('-')?;
    match (first, last) {
        ("", suffix) => Some(RangeSpec::Suffix {
            length: parse_digits(suffix)?,
        }),
        (first, "") => Some(RangeSpec::From {
            first: parse_digits(first)?,
        }),
        (first, last) => {
            let first = parse_digits(first)?;
            let last = parse_digits(last)?;
            (first <= last).then_some(RangeSpec::Bounded { first, last })
        }
    }
}

/// `1*DIGIT` as a `u64`; None when empty, not all digits, or too large.
fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Resolves a spec against the representation's length (§14.1.2).
fn resolve(spec: RangeSpec, len: u64) -> RangeOutcome {
    let Some(last_byte) = len.checked_sub(1) else {
        return RangeOutcome::Unsatisfiable;
    };
    match spec {
        RangeSpec::Bounded { first, .. } | RangeSpec::From { first } if first >= len => {
            RangeOutcome::Unsatisfiable
        }
        RangeSpec::Bounded { first, last } => RangeOutcome::Partial {
            start: first,
            end: last.min(last_byte),
        },
        RangeSpec::From { first } => RangeOutcome::Partial {
            start: first,
            end: last_byte,
        },
        RangeSpec::Suffix { length: 0 } => RangeOutcome::Unsatisfiable,
        RangeSpec::Suffix { length } => RangeOutcome::Partial {
            start: len.saturating_sub(length),
            end: last_byte,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const ETAG: &str = "\"v1\"";
    /// 2015-10-21 07:28:00 UTC.
    const MODIFIED_SECS: u64 = 1_445_412_480;
    const MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
    const LEN: u64 = 100;

    fn modified() -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_secs(MODIFIED_SECS))
    }

    /// `Range` alone against a 100-byte representation.
    fn range(value: &str) -> RangeOutcome {
        evaluate(Some(value), None, LEN, ETAG, modified())
    }

    fn partial(start: u64, end: u64) -> RangeOutcome {
        RangeOutcome::Partial { start, end }
    }

    #[test]
    fn range_absent_is_full() {
        assert_eq!(
            evaluate(None, None, LEN, ETAG, modified()),
            RangeOutcome::Full
        );
        assert_eq!(
            evaluate(None, Some(ETAG), LEN, ETAG, modified()),
            RangeOutcome::Full
        );
    }

    #[test]
    fn range_bounded_spec_is_partial() {
        assert_eq!(range("bytes=0-0"), partial(0, 0));
        assert_eq!(range("bytes=0-1"), partial(0, 1));
        assert_eq!(range("bytes=10-19"), partial(10, 19));
        assert_eq!(range("bytes=99-99"), partial(99, 99));
    }

    #[test]
    fn range_bounded_end_past_length_is_clamped() {
        assert_eq!(range("bytes=50-100"), partial(50, 99));
        assert_eq!(range("bytes=0-18446744073709551615"), partial(0, 99));
    }

    #[test]
    fn range_bounded_start_past_length_is_unsatisfiable() {
        assert_eq!(range("bytes=100-100"), RangeOutcome::Unsatisfiable);
        assert_eq!(range("bytes=100-200"), RangeOutcome::Unsatisfiable);
    }

    #[test]
    fn range_open_ended_runs_to_the_last_byte() {
        assert_eq!(range("bytes=0-"), partial(0, 99));
        assert_eq!(range("bytes=42-"), partial(42, 99));
        assert_eq!(range("bytes=99-"), partial(99, 99));
    }

    #[test]
    fn range_open_ended_start_past_length_is_unsatisfiable() {
        assert_eq!(range("bytes=100-"), RangeOutcome::Unsatisfiable);
        assert_eq!(
            range("bytes=18446744073709551615-"),
            RangeOutcome::Unsatisfiable
        );
    }

    #[test]
    fn range_suffix_takes_the_last_bytes() {
        assert_eq!(range("bytes=-1"), partial(99, 99));
        assert_eq!(range("bytes=-10"), partial(90, 99));
        assert_eq!(range("bytes=-100"), partial(0, 99));
    }

    #[test]
    fn range_suffix_longer_than_representation_is_whole_range() {
        assert_eq!(range("bytes=-500"), partial(0, 99));
        assert_eq!(range("bytes=-18446744073709551615"), partial(0, 99));
    }

    #[test]
    fn range_suffix_zero_is_unsatisfiable() {
        assert_eq!(range("bytes=-0"), RangeOutcome::Unsatisfiable);
    }

    #[test]
    fn range_empty_representation_is_unsatisfiable() {
        for value in ["bytes=0-0", "bytes=0-", "bytes=-1", "bytes=-0", "bytes=5-9"] {
            assert_eq!(
                evaluate(Some(value), None, 0, ETAG, modified()),
                RangeOutcome::Unsatisfiable,
                "{value}"
            );
        }
        // An invalid header is still ignored.
        assert_eq!(
            evaluate(Some("bytes=abc"), None, 0, ETAG, modified()),
            RangeOutcome::Full
        );
    }

    #[test]
    fn range_unit_is_case_insensitive() {
        assert_eq!(range("BYTES=0-1"), partial(0, 1));
        assert_eq!(range("Bytes=0-1"), partial(0, 1));
    }

    #[test]
    fn range_whitespace_around_specs_is_accepted() {
        assert_eq!(range("bytes= 0-1"), partial(0, 1));
        assert_eq!(range("bytes=0-1 "), partial(0, 1));
        assert_eq!(range("bytes=\t-5\t"), partial(95, 99));
        assert_eq!(range(" bytes=0-1"), partial(0, 1));
    }

    #[test]
    fn range_empty_list_members_are_skipped() {
        assert_eq!(range("bytes=0-1,"), partial(0, 1));
        assert_eq!(range("bytes=, ,0-1"), partial(0, 1));
    }

    #[test]
    fn range_other_unit_is_full() {
        assert_eq!(range("items=0-1"), RangeOutcome::Full);
        assert_eq!(range("bytesx=0-1"), RangeOutcome::Full);
        assert_eq!(range("=0-1"), RangeOutcome::Full);
    }

    #[test]
    fn range_invalid_syntax_is_full() {
        for value in [
            "",
            "bytes",
            "bytes 0-1",
            "bytes=",
            "bytes=,",
            "bytes=-",
            "bytes=abc",
            "bytes=a-1",
            "bytes=0-b",
            "bytes=0",
            "bytes=5-1",
            "bytes=0 - 1",
            "bytes=+0-1",
            "bytes=0-+1",
            "bytes=-+5",
            "bytes=--5",
            "bytes=0-1-2",
            "bytes=0x10-",
            "bytes=１-2",
            "bytes =0-1",
            "bytes==0-1",
        ] {
            assert_eq!(range(value), RangeOutcome::Full, "{value:?}");
        }
    }

    #[test]
    fn range_numbers_beyond_u64_are_full() {
        assert_eq!(range("bytes=99999999999999999999999-"), RangeOutcome::Full);
        assert_eq!(range("bytes=0-99999999999999999999999"), RangeOutcome::Full);
        assert_eq!(range("bytes=-99999999999999999999999"), RangeOutcome::Full);
        assert_eq!(range("bytes=18446744073709551616-"), RangeOutcome::Full);
    }

    #[test]
    fn range_several_specs_are_full() {
        assert_eq!(range("bytes=0-1,2-3"), RangeOutcome::Full);
        assert_eq!(range("bytes=0-1, -5"), RangeOutcome::Full);
        // Even when one of them alone would be unsatisfiable or invalid.
        assert_eq!(range("bytes=0-1,500-"), RangeOutcome::Full);
        assert_eq!(range("bytes=0-1,abc"), RangeOutcome::Full);
    }

    #[test]
    fn range_thousand_specs_are_full() {
        let many = vec!["0-0"; 1000].join(",");
        assert_eq!(range(&format!("bytes={many}")), RangeOutcome::Full);
    }

    #[test]
    fn range_if_range_matching_etag_applies_range() {
        assert_eq!(
            evaluate(Some("bytes=0-1"), Some(ETAG), LEN, ETAG, modified()),
            partial(0, 1)
        );
        assert_eq!(
            evaluate(Some("bytes=500-"), Some(ETAG), LEN, ETAG, modified()),
            RangeOutcome::Unsatisfiable
        );
    }

    #[test]
    fn range_if_range_other_etag_is_full() {
        assert_eq!(
            evaluate(Some("bytes=0-1"), Some("\"v0\""), LEN, ETAG, modified()),
            RangeOutcome::Full
        );
        // A failed If-Range turns even an unsatisfiable range into a full response.
        assert_eq!(
            evaluate(Some("bytes=500-"), Some("\"v0\""), LEN, ETAG, modified()),
            RangeOutcome::Full
        );
    }

    #[test]
    fn range_if_range_weak_etag_is_full() {
        assert_eq!(
            evaluate(Some("bytes=0-1"), Some("W/\"v1\""), LEN, ETAG, modified()),
            RangeOutcome::Full
        );
        assert_eq!(
            evaluate(
                Some("bytes=0-1"),
                Some("W/\"v1\""),
                LEN,
                "W/\"v1\"",
                modified()
            ),
            RangeOutcome::Full
        );
    }

    #[test]
    fn range_if_range_malformed_etag_is_full() {
        for if_range in ["\"v1", "W/v1", "\"v1\", \"v2\"", "*", "W/"] {
            assert_eq!(
                evaluate(Some("bytes=0-1"), Some(if_range), LEN, ETAG, modified()),
                RangeOutcome::Full,
                "{if_range}"
            );
        }
    }

    #[test]
    fn range_if_range_equal_date_applies_range() {
        assert_eq!(
            evaluate(Some("bytes=0-1"), Some(MODIFIED), LEN, ETAG, modified()),
            partial(0, 1)
        );
    }

    #[test]
    fn range_if_range_date_truncates_sub_seconds() {
        let precise = modified().map(|time| time + Duration::from_millis(750));
        assert_eq!(
            evaluate(Some("bytes=0-1"), Some(MODIFIED), LEN, ETAG, precise),
            partial(0, 1)
        );
    }

    #[test]
    fn range_if_range_other_date_is_full() {
        for date in [
            "Wed, 21 Oct 2015 07:27:59 GMT",
            "Wed, 21 Oct 2015 07:28:01 GMT",
        ] {
            assert_eq!(
                evaluate(Some("bytes=0-1"), Some(date), LEN, ETAG, modified()),
                RangeOutcome::Full,
                "{date}"
            );
        }
    }

    #[test]
    fn range_if_range_date_without_last_modified_is_full() {
        assert_eq!(
            evaluate(Some("bytes=0-1"), Some(MODIFIED), LEN, ETAG, None),
            RangeOutcome::Full
        );
    }

    #[test]
    fn range_if_range_unparsable_is_full() {
        for if_range in ["", "yesterday", "v1", "1445412480"] {
            assert_eq!(
                evaluate(Some("bytes=0-1"), Some(if_range), LEN, ETAG, modified()),
                RangeOutcome::Full,
                "{if_range:?}"
            );
        }
    }

    #[test]
    fn range_content_range_formats_partial_and_unsatisfied() {
        assert_eq!(content_range(0, 1, 100), "bytes 0-1/100");
        assert_eq!(content_range(90, 99, 100), "bytes 90-99/100");
        assert_eq!(unsatisfied_range(100), "bytes */100");
        assert_eq!(unsatisfied_range(0), "bytes */0");
    }

    #[test]
    fn range_huge_representation_is_handled() {
        let len = u64::MAX;
        assert_eq!(
            evaluate(Some("bytes=-1"), None, len, ETAG, None),
            partial(u64::MAX - 1, u64::MAX - 1)
        );
        assert_eq!(
            evaluate(Some("bytes=0-"), None, len, ETAG, None),
            partial(0, u64::MAX - 1)
        );
        assert_eq!(
            evaluate(Some("bytes=18446744073709551614-"), None, len, ETAG, None),
            partial(u64::MAX - 1, u64::MAX - 1)
        );
    }
}
