//! Conditional requests: whether to serve, answer 304 Not Modified or 412 Precondition
//! Failed, from the request's precondition headers and the selected representation's
//! validators (RFC 9110 §13.1).
//!
//! [`evaluate`] follows the evaluation order of RFC 9110 §13.2.2, stopping at the first
//! step that decides:
//!
//! 1. `If-Match` (§13.1.1): `*` or a strong match with the current entity tag, else 412.
//! 2. `If-Unmodified-Since` (§13.1.4), only without `If-Match`: 412 when the
//!    representation changed after the date.
//! 3. `If-None-Match` (§13.1.2): `*` or a weak match means 304 for GET and HEAD, 412 for
//!    other methods.
//! 4. `If-Modified-Since` (§13.1.3), only without `If-None-Match` and only for GET and
//!    HEAD: 304 when the representation has not changed since the date.
//! 5. Otherwise the request proceeds.
//!
//! Entity-tag lists are scanned with quotes in mind, because an opaque tag may contain a
//! comma (`etagc` is `%x21 / %x23-7E / obs-text`). A list member that is not `*`, a
//! quoted tag or a `W/`-prefixed quoted tag is skipped, so a list made only of malformed
//! members matches nothing. Dates that are not valid HTTP-dates make their header
//! ignored, as §13.1.3 and §13.1.4 require. Modification times are compared at
//! one-second resolution, the resolution of an HTTP-date; a time before the Unix epoch
//! counts as unknown, which can only ever lead to sending the full representation.
//!
//! The caller decides when preconditions apply at all: §13.2.1 says they are ignored
//! when the response without them would not be 2xx or 412 (a 404, for instance).

use std::time::{SystemTime, UNIX_EPOCH};

/// The request's conditional headers, raw header values (None when absent).
#[derive(Clone, Copy, Debug, Default)]
pub struct Conditions<'a> {
    /// `If-Match`: `*` or a list of entity tags.
    pub if_match: Option<&'a str>,
    /// `If-None-Match`: `*` or a list of entity tags.
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since`: an HTTP-date.
    pub if_modified_since: Option<&'a str>,
    /// `If-Unmodified-Since`: an HTTP-date.
    pub if_unmodified_since: Option<&'a str>,
}

/// The selected representation's validators.
#[derive(Clone, Copy, Debug)]
pub struct Validators<'a> {
    /// Strong entity tag including quotes, e.g. "\"abc\"".
    pub etag: &'a str,
    /// Last modification time (compare at one-second resolution: truncate sub-second parts of both sides).
    pub last_modified: Option<SystemTime>,
}

/// What to do with a request once its preconditions are evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// No precondition stops the request: handle it normally.
    Proceed,
    /// 304 Not Modified: the client's cached copy is current (GET and HEAD only).
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// One member of an entity-tag list, borrowing from the header value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityTag<'a> {
    /// `*`: matches any current representation.
    Any,
    /// A strong tag; the opaque tag keeps its quotes, e.g. `"abc"`.
    Strong(&'a str),
    /// A weak tag (`W/"abc"`); holds the opaque tag with its quotes, without `W/`.
    Weak(&'a str),
}

impl<'a> EntityTag<'a> {
    /// Parses one list member (`*`, `"..."` or `W/"..."`, surrounding whitespace
    /// allowed); None when it is malformed.
    pub fn parse(member: &'a str) -> Option<Self> {
        let member = trim_ows(member);
        if member == "*" {
            return Some(EntityTag::Any);
        }
        match member.strip_prefix("W/") {
            Some(opaque) => is_opaque_tag(opaque).then_some(EntityTag::Weak(opaque)),
            None => is_opaque_tag(member).then_some(EntityTag::Strong(member)),
        }
    }

    /// The quoted opaque tag, whether weak or strong; None for `*`.
    pub fn opaque(&self) -> Option<&'a str> {
        match *self {
            EntityTag::Any => None,
            EntityTag::Strong(opaque) | EntityTag::Weak(opaque) => Some(opaque),
        }
    }

    /// Strong comparison (§8.8.3.2): both tags strong and their opaque tags identical.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        match (self, other) {
            (EntityTag::Strong(a), EntityTag::Strong(b)) => a == b,
            _ => false,
        }
    }

    /// Weak comparison (§8.8.3.2): opaque tags identical, `W/` ignored on both sides.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        match (self.opaque(), other.opaque()) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }
}

/// The well-formed members of an `If-Match` / `If-None-Match` value, in order, without
/// allocating. Commas inside quotes do not split members; malformed members are left out.
pub fn entity_tags(value: &str) -> impl Iterator<Item = EntityTag<'_>> {
    list_members(value).filter_map(EntityTag::parse)
}

/// Whether two full entity tags (quotes included, e.g. `"x"` and `W/"x"`) match under
/// strong comparison: a weak or malformed tag never matches.
pub fn strong_match(a: &str, b: &str) -> bool {
    match (EntityTag::parse(a), EntityTag::parse(b)) {
        (Some(a), Some(b)) => a.strong_eq(&b),
        _ => false,
    }
}

/// Evaluates the preconditions in RFC 9110 §13.2.2 order. `get_or_head`: whether the
/// method is GET or HEAD.
pub fn evaluate(
    conditions: &Conditions<'_>,
    validators: &Validators<'_>,
    get_or_head: bool,
) -> Precondition {
    let current = EntityTag::parse(validators.etag);
    let last_modified = validators.last_modified.and_then(unix_seconds);

    if let Some(if_match) = conditions.if_match {
        let matched = entity_tags(if_match).any(|tag| match tag {
            EntityTag::Any => true,
            tag => current.is_some_and(|ours| tag.strong_eq(&ours)),
        });
        if !matched {
            return Precondition::Failed;
        }
    } else if let Some(date) = conditions.if_unmodified_since.and_then(parse_date)
        && last_modified.is_some_and(|modified| modified > date)
    {
        return Precondition::Failed;
    }

    if let Some(if_none_match) = conditions.if_none_match {
        let matched = entity_tags(if_none_match).any(|tag| match tag {
            EntityTag::Any => true,
            tag => current.is_some_and(|ours| tag.weak_eq(&ours)),
        });
        if matched {
            return if get_or_head {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if get_or_head
        && let Some(date) = conditions.if_modified_since.and_then(parse_date)
        && last_modified.is_some_and(|modified| modified <= date)
    {
        return Precondition::NotModified;
    }

    Precondition::Proceed
}

/// Whole seconds since the Unix epoch, the resolution HTTP-dates carry; None before it.
pub(crate) fn unix_seconds(time: SystemTime) -> Option<u64> {
    time.duration_since(UNIX_EPOCH)
        .ok()
        .map(|since| since.as_secs())
}

/// An HTTP-date (any of the three formats of §5.6.7) as whole seconds since the epoch.
pub(crate) fn parse_date(value: &str) -> Option<u64> {
    httpdate::parse_http_date(value).ok().and_then(unix_seconds)
}

/// The members of a list, split on the commas that are outside double quotes. An
/// unterminated quote runs to the end of the value, making that last member malformed.
fn list_members(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let current = rest?;
        let mut in_quotes = false;
        for (index, byte) in current.bytes().enumerate() {
            match byte {
                b'"' => in_quotes = !in_quotes,
                b',' if !in_quotes => {
                    rest = current.get(index.saturating_add(1)..);
                    return current.get(..index);
                }
                _ => {}
            }
        }
        rest = None;
        Some(current)
    })
}

/// `opaque-tag = DQUOTE *etagc DQUOTE`.
fn is_opaque_tag(text: &str) -> bool {
    text.strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .is_some_and(|inner| inner.bytes().all(is_etagc))
}

/// `etagc = %x21 / %x23-7E / obs-text`: visible characters except the double quote.
fn is_etagc(byte: u8) -> bool {
    byte == 0x21 || (0x23..=0x7E).contains(&byte) || byte >= 0x80
}

/// Removes optional whitespace (spaces and tabs) from both ends.
fn trim_ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const ETAG: &str = "\"v1\"";
    /// 2015-10-21 07:28:00 UTC.
    const MODIFIED_SECS: u64 = 1_445_412_480;
    const MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
    const ONE_SECOND_BEFORE: &str = "Wed, 21 Oct 2015 07:27:59 GMT";
    const ONE_SECOND_AFTER: &str = "Wed, 21 Oct 2015 07:28:01 GMT";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn validators() -> Validators<'static> {
        Validators {
            etag: ETAG,
            last_modified: Some(at(MODIFIED_SECS)),
        }
    }

    fn tags(value: &str) -> Vec<EntityTag<'_>> {
        entity_tags(value).collect()
    }

    fn get(conditions: Conditions<'_>) -> Precondition {
        evaluate(&conditions, &validators(), true)
    }

    fn post(conditions: Conditions<'_>) -> Precondition {
        evaluate(&conditions, &validators(), false)
    }

    #[test]
    fn conditional_no_headers_proceeds() {
        assert_eq!(get(Conditions::default()), Precondition::Proceed);
        assert_eq!(post(Conditions::default()), Precondition::Proceed);
    }

    #[test]
    fn conditional_if_match_star_proceeds() {
        let conditions = Conditions {
            if_match: Some("*"),
            ..Default::default()
        };
        assert_eq!(get(conditions), Precondition::Proceed);
        assert_eq!(post(conditions), Precondition::Proceed);
    }

    #[test]
    fn conditional_if_match_strong_match_proceeds() {
        for value in [
            "\"v1\"",
            "\"v0\", \"v1\"",
            "  \"v0\" ,\t\"v1\"  ",
            "\"v0\",\"v1\"",
        ] {
            let conditions = Conditions {
                if_match: Some(value),
                ..Default::default()
            };
            assert_eq!(post(conditions), Precondition::Proceed, "{value}");
        }
    }

    #[test]
    fn conditional_if_match_mismatch_fails() {
        for value in ["\"v0\"", "\"v0\", \"v2\"", "\"V1\"", "\"v1 \""] {
            let conditions = Conditions {
                if_match: Some(value),
                ..Default::default()
            };
            assert_eq!(get(conditions), Precondition::Failed, "{value}");
        }
    }

    #[test]
    fn conditional_if_match_weak_tag_never_matches() {
        let conditions = Conditions {
            if_match: Some("W/\"v1\""),
            ..Default::default()
        };
        assert_eq!(get(conditions), Precondition::Failed);
        // A weak current tag cannot satisfy If-Match either.
        let weak_current = Validators {
            etag: "W/\"v1\"",
            last_modified: None,
        };
        let conditions = Conditions {
            if_match: Some("\"v1\""),
            ..Default::default()
        };
        assert_eq!(
            evaluate(&conditions, &weak_current, true),
            Precondition::Failed
        );
    }

    #[test]
    fn conditional_if_match_malformed_list_fails() {
        for value in [
            "", "v1", "\"v1", "v1\"", ",,,", "W/v1", "w/\"v1\"", "\"v\"1\"",
        ] {
            let conditions = Conditions {
                if_match: Some(value),
                ..Default::default()
            };
            assert_eq!(get(conditions), Precondition::Failed, "{value:?}");
        }
    }

    #[test]
    fn conditional_if_match_skips_malformed_members_and_matches_the_rest() {
        let conditions = Conditions {
            if_match: Some("garbage, \"v1\""),
            ..Default::default()
        };
        assert_eq!(get(conditions), Precondition::Proceed);
    }

    #[test]
    fn conditional_if_match_beats_if_unmodified_since() {
        // If-Unmodified-Since alone would fail: the file changed after the date.
        let conditions = Conditions {
            if_match: Some(ETAG),
            if_unmodified_since: Some(ONE_SECOND_BEFORE),
            ..Default::default()
        };
        assert_eq!(post(conditions), Precondition::Proceed);
    }

    #[test]
    fn conditional_if_unmodified_since_later_modification_fails() {
        let conditions = Conditions {
            if_unmodified_since: Some(ONE_SECOND_BEFORE),
            ..Default::default()
        };
        assert_eq!(post(conditions), Precondition::Failed);
        assert_eq!(get(conditions), Precondition::Failed);
    }

    #[test]
    fn conditional_if_unmodified_since_same_or_later_date_proceeds() {
        for date in [MODIFIED, ONE_SECOND_AFTER] {
            let conditions = Conditions {
                if_unmodified_since: Some(date),
                ..Default::default()
            };
            assert_eq!(post(conditions), Precondition::Proceed, "{date}");
        }
    }

    #[test]
    fn conditional_if_unmodified_since_invalid_date_is_ignored() {
        for date in ["", "yesterday", "Wed, 21 Oct 2015 07:28:00", "1445412480"] {
            let conditions = Conditions {
                if_unmodified_since: Some(date),
                ..Default::default()
            };
            assert_eq!(post(conditions), Precondition::Proceed, "{date:?}");
        }
    }

    #[test]
    fn conditional_if_unmodified_since_without_last_modified_is_ignored() {
        let unknown = Validators {
            etag: ETAG,
            last_modified: None,
        };
        let conditions = Conditions {
            if_unmodified_since: Some(ONE_SECOND_BEFORE),
            ..Default::default()
        };
        assert_eq!(
            evaluate(&conditions, &unknown, false),
            Precondition::Proceed
        );
    }

    #[test]
    fn conditional_if_unmodified_since_truncates_sub_seconds() {
        let modified = Validators {
            etag: ETAG,
            last_modified: Some(at(MODIFIED_SECS) + Duration::from_millis(999)),
        };
        let conditions = Conditions {
            if_unmodified_since: Some(MODIFIED),
            ..Default::default()
        };
        assert_eq!(
            evaluate(&conditions, &modified, false),
            Precondition::Proceed
        );
    }

    #[test]
    fn conditional_if_none_match_match_on_get_is_not_modified() {
        for value in ["\"v1\"", "*", "\"v0\", \"v1\"", " \"v0\" ,  \"v1\" "] {
            let conditions = Conditions {
                if_none_match: Some(value),
                ..Default::default()
            };
            assert_eq!(get(conditions), Precondition::NotModified, "{value}");
        }
    }

    #[test]
    fn conditional_if_none_match_match_on_post_fails() {
        for value in ["\"v1\"", "*", "W/\"v1\""] {
            let conditions = Conditions {
                if_none_match: Some(value),
                ..Default::default()
            };
            assert_eq!(post(conditions), Precondition::Failed, "{value}");
        }
    }

    #[test]
    fn conditional_if_none_match_uses_weak_comparison() {
        let conditions = Conditions {
            if_none_match: Some("W/\"v1\""),
            ..Default::default()
        };
        assert_eq!(get(conditions), Precondition::NotModified);
        let weak_current = Validators {
            etag: "W/\"v1\"",
            last_modified: None,
        };
        for value in ["\"v1\"", "W/\"v1\""] {
            let conditions = Conditions {
                if_none_match: Some(value),
                ..Default::default()
            };
            assert_eq!(
                evaluate(&conditions, &weak_current, true),
                Precondition::NotModified,
                "{value}"
            );
        }
    }

    #[test]
    fn conditional_if_none_match_mismatch_proceeds() {
        for value in ["\"v0\"", "W/\"v0\"", "\"v0\", W/\"v2\"", "", "v1", "\"v1"] {
            let conditions = Conditions {
                if_none_match: Some(value),
                ..Default::default()
            };
            assert_eq!(get(conditions), Precondition::Proceed, "{value:?}");
            assert_eq!(post(conditions), Precondition::Proceed, "{value:?}");
        }
    }

    #[test]
    fn conditional_if_none_match_beats_if_modified_since() {
        // If-Modified-Since alone would answer 304; a non-matching If-None-Match wins.
        let conditions = Conditions {
            if_none_match: Some("\"v0\""),
            if_modified_since: Some(MODIFIED),
            ..Default::default()
        };
        assert_eq!(get(conditions), Precondition::Proceed);
    }

    #[test]
    fn conditional_if_match_failure_beats_if_none_match() {
        let conditions = Conditions {
            if_match: Some("\"v0\""),
            if_none_match: Some("\"v1\""),
            ..Default::default()
        };
        assert_eq!(get(conditions), Precondition::Failed);
    }

    #[test]
    fn conditional_if_unmodified_since_failure_beats_if_none_match() {
        let conditions = Conditions {
            if_unmodified_since: Some(ONE_SECOND_BEFORE),
            if_none_match: Some("\"v1\""),
            ..Default::default()
        };
        assert_eq!(get(conditions), Precondition::Failed);
    }

    #[test]
    fn conditional_if_match_pass_then_if_none_match_decides() {
        let conditions = Conditions {
            if_match: Some("*"),
            if_none_match: Some("\"v1\""),
            ..Default::default()
        };
        assert_eq!(get(conditions), Precondition::NotModified);
    }

    #[test]
    fn conditional_if_modified_since_unchanged_is_not_modified() {
        for date in [MODIFIED, ONE_SECOND_AFTER] {
            let conditions = Conditions {
                if_modified_since: Some(date),
                ..Default::default()
            };
            assert_eq!(get(conditions), Precondition::NotModified, "{date}");
        }
    }

    #[test]
    fn conditional_if_modified_since_older_date_proceeds() {
        let conditions = Conditions {
            if_modified_since: Some(ONE_SECOND_BEFORE),
            ..Default::default()
        };
        assert_eq!(get(conditions), Precondition::Proceed);
    }

    #[test]
    fn conditional_if_modified_since_accepts_obsolete_date_formats() {
        for date in [
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            let conditions = Conditions {
                if_modified_since: Some(date),
                ..Default::default()
            };
            assert_eq!(get(conditions), Precondition::NotModified, "{date}");
        }
    }

    #[test]
    fn conditional_if_modified_since_truncates_sub_seconds() {
        let modified = Validators {
            etag: ETAG,
            last_modified: Some(at(MODIFIED_SECS) + Duration::from_nanos(999_999_999)),
        };
        let conditions = Conditions {
            if_modified_since: Some(MODIFIED),
            ..Default::default()
        };
        assert_eq!(
            evaluate(&conditions, &modified, true),
            Precondition::NotModified
        );
    }

    #[test]
    fn conditional_if_modified_since_ignored_for_other_methods() {
        let conditions = Conditions {
            if_modified_since: Some(MODIFIED),
            ..Default::default()
        };
        assert_eq!(post(conditions), Precondition::Proceed);
    }

    #[test]
    fn conditional_if_modified_since_invalid_date_is_ignored() {
        for date in ["", "now", "Wed, 32 Oct 2015 07:28:00 GMT", "Ünïcode"] {
            let conditions = Conditions {
                if_modified_since: Some(date),
                ..Default::default()
            };
            assert_eq!(get(conditions), Precondition::Proceed, "{date:?}");
        }
    }

    #[test]
    fn conditional_if_modified_since_without_last_modified_proceeds() {
        let unknown = Validators {
            etag: ETAG,
            last_modified: None,
        };
        let conditions = Conditions {
            if_modified_since: Some(MODIFIED),
            ..Default::default()
        };
        assert_eq!(evaluate(&conditions, &unknown, true), Precondition::Proceed);
    }

    #[test]
    fn conditional_last_modified_before_epoch_counts_as_unknown() {
        let ancient = Validators {
            etag: ETAG,
            last_modified: UNIX_EPOCH.checked_sub(Duration::from_secs(10)),
        };
        let conditions = Conditions {
            if_unmodified_since: Some(MODIFIED),
            if_modified_since: Some(MODIFIED),
            ..Default::default()
        };
        assert_eq!(evaluate(&conditions, &ancient, true), Precondition::Proceed);
    }

    #[test]
    fn conditional_entity_tags_reads_every_member_kind() {
        assert_eq!(
            tags(" \"a\", W/\"b\" ,*,\t\"\""),
            vec![
                EntityTag::Strong("\"a\""),
                EntityTag::Weak("\"b\""),
                EntityTag::Any,
                EntityTag::Strong("\"\""),
            ]
        );
    }

    #[test]
    fn conditional_entity_tags_keeps_commas_inside_quotes() {
        assert_eq!(
            tags("\"a,b\", W/\",\""),
            vec![EntityTag::Strong("\"a,b\""), EntityTag::Weak("\",\"")]
        );
        let conditions = Conditions {
            if_match: Some("\"x\", \"v,1\""),
            ..Default::default()
        };
        let comma_tag = Validators {
            etag: "\"v,1\"",
            last_modified: None,
        };
        assert_eq!(
            evaluate(&conditions, &comma_tag, true),
            Precondition::Proceed
        );
    }

    #[test]
    fn conditional_entity_tags_skips_malformed_members() {
        assert_eq!(tags(""), vec![]);
        assert_eq!(tags(" , ,"), vec![]);
        assert_eq!(
            tags("abc, \"ok\", W/, \"a b\", \"x\"y, **"),
            vec![EntityTag::Strong("\"ok\"")]
        );
        // An unterminated quote swallows the rest of the value.
        assert_eq!(tags("\"a\", \"b, \"c\""), vec![EntityTag::Strong("\"a\"")]);
        assert_eq!(tags("\""), vec![]);
    }

    #[test]
    fn conditional_entity_tags_accepts_obs_text() {
        assert_eq!(tags("\"café\""), vec![EntityTag::Strong("\"café\"")]);
    }

    #[test]
    fn conditional_entity_tags_survives_hostile_input() {
        let long = "\",".repeat(10_000);
        let _ = tags(&long);
        let long = "W/".repeat(10_000);
        assert_eq!(tags(&long), vec![]);
    }

    #[test]
    fn conditional_strong_match_needs_two_equal_strong_tags() {
        assert!(strong_match("\"x\"", "\"x\""));
        assert!(strong_match(" \"x\"", "\"x\" "));
        assert!(!strong_match("\"x\"", "W/\"x\""));
        assert!(!strong_match("W/\"x\"", "W/\"x\""));
        assert!(!strong_match("\"x\"", "\"y\""));
        assert!(!strong_match("*", "\"x\""));
        assert!(!strong_match("*", "*"));
        assert!(!strong_match("x", "x"));
        assert!(!strong_match("", ""));
    }

    #[test]
    fn conditional_weak_eq_ignores_weakness_but_not_star() {
        let strong = EntityTag::Strong("\"x\"");
        let weak = EntityTag::Weak("\"x\"");
        assert!(strong.weak_eq(&weak));
        assert!(weak.weak_eq(&weak));
        assert!(!weak.weak_eq(&EntityTag::Weak("\"y\"")));
        assert!(!EntityTag::Any.weak_eq(&EntityTag::Any));
    }
}
