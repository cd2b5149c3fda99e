//! Property tests of the pure parsers over arbitrary bytes and arbitrary structured
//! input (proptest: only the stable toolchain exists here, so cargo-fuzz's nightly is
//! out). They never panic, and they keep their invariants: a satisfiable range lies
//! within the length, a parsed path stays under the root, gzip is chosen only when it
//! exists, a matching validator gives 304, and a configuration value is accepted or
//! refused with an error, never a crash.
//!
//! `PROPTEST_CASES` sets the cases per property (1,000 by default here); a longer run:
//!
//! ```text
//! PROPTEST_CASES=200000 cargo test --release --lib properties
//! ```

use std::collections::HashMap;
use std::path::{Component, Path};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::keys::KEYS;
use crate::config::{Config, LoadOptions};
use crate::http::conditional::{self, Conditions, Precondition, Validators};
use crate::http::encoding::{Coding, negotiate};
use crate::http::path;
use crate::http::range::{self, RangeOutcome};
use proptest::prelude::*;

fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Header-like text: printable ASCII with the separators the parsers split on, or any
/// string at all.
fn header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,64}",
        "[0-9a-zA-Z=,;\\-\\*\"/ WW]{0,48}",
        any::<String>(),
    ]
}

/// `bytes=` range specs built from numbers, including huge and reversed ones.
fn range_header() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        0u64..200,
        any::<u64>().prop_map(|n| n % 1_000_000),
        any::<u64>()
    ];
    let spec = prop_oneof![
        (number.clone(), number.clone()).prop_map(|(a, b)| format!("{a}-{b}")),
        number.clone().prop_map(|a| format!("{a}-")),
        number.clone().prop_map(|b| format!("-{b}")),
        header_text(),
    ];
    prop_oneof![
        prop::collection::vec(spec, 1..4).prop_map(|specs| format!("bytes={}", specs.join(","))),
        header_text(),
    ]
}

fn http_date(seconds: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(seconds % 4_000_000_000))
}

/// Request paths from pieces that matter to the checks: dots, encoded dots and slashes,
/// backslashes, NUL, dotfiles, percent signs and arbitrary text.
fn request_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("%2E.".to_owned()),
        Just("%2f".to_owned()),
        Just("%5c".to_owned()),
        Just("\\".to_owned()),
        Just("%00".to_owned()),
        Just(".hidden".to_owned()),
        Just("%".to_owned()),
        Just("%zz".to_owned()),
        Just(String::new()),
        "[a-zA-Z0-9_.~-]{1,12}",
        any::<String>(),
    ];
    prop_oneof![
        prop::collection::vec(segment, 0..8)
            .prop_map(|segments| format!("/{}", segments.join("/"))),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn range_any_input_gives_a_range_within_the_length(
        header in range_header(),
        if_range in proptest::option::of(header_text()),
        len in prop_oneof![0u64..4096, any::<u64>()],
    ) {
        let modified = Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        match range::evaluate(Some(&header), if_range.as_deref(), len, "\"abc\"", modified) {
            RangeOutcome::Partial { start, end } => {
                prop_assert!(start <= end && end < len, "{header}: {start}-{end} of {len}");
                let value = range::content_range(start, end, len);
                prop_assert_eq!(value, format!("bytes {start}-{end}/{len}"));
            }
            RangeOutcome::Full | RangeOutcome::Unsatisfiable => {}
        }
    }

    #[test]
    fn conditional_any_headers_decide_without_panicking_and_a_match_is_304(
        if_match in proptest::option::of(header_text()),
        if_none_match in proptest::option::of(header_text()),
        if_modified_since in proptest::option::of(prop_oneof![header_text(), any::<u64>().prop_map(http_date)]),
        if_unmodified_since in proptest::option::of(prop_oneof![header_text(), any::<u64>().prop_map(http_date)]),
        tag in "[a-z0-9]{1,16}",
        modified in any::<u32>(),
    ) {
        let etag = format!("\"{tag}\"");
        let last_modified = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(modified)));
        let validators = Validators { etag: &etag, last_modified };
        let conditions = Conditions {
            if_match: if_match.as_deref(),
            if_none_match: if_none_match.as_deref(),
            if_modified_since: if_modified_since.as_deref(),
            if_unmodified_since: if_unmodified_since.as_deref(),
        };
        conditional::evaluate(&conditions, &validators, true);
        conditional::evaluate(&conditions, &validators, false);
        for value in [&if_match, &if_none_match].into_iter().flatten() {
            let _ = conditional::entity_tags(value).count();
        }
        // The current validator in If-None-Match, nothing else: not modified.
        let matching = Conditions {
            if_match: None,
            if_none_match: Some(&etag),
            if_modified_since: if_modified_since.as_deref(),
            if_unmodified_since: None,
        };
        prop_assert_eq!(
            conditional::evaluate(&matching, &validators, true),
            Precondition::NotModified
        );
    }

    #[test]
    fn encoding_gzip_is_chosen_only_when_it_exists(
        accept in proptest::option::of(prop_oneof![
            header_text(),
            prop::collection::vec(
                (prop_oneof![Just("gzip"), Just("identity"), Just("*"), Just("br"), Just("x-gzip")],
                 proptest::option::of(0u32..1500)),
                0..5,
            )
            .prop_map(|codings| codings
                .iter()
                .map(|(name, q)| match q {
                    Some(q) => format!("{name};q={}.{:03}", q / 1000, q % 1000),
                    None => (*name).to_owned(),
                })
                .collect::<Vec<_>>()
                .join(", ")),
        ]),
        available in any::<bool>(),
    ) {
        let chosen = negotiate(accept.as_deref(), available);
        if chosen == Some(Coding::Gzip) {
            prop_assert!(available);
        }
        if accept.is_none() {
            prop_assert_eq!(chosen, Some(Coding::Identity));
        }
    }

    #[test]
    fn path_a_parsed_path_stays_under_the_root(raw in request_path(), hidden in any::<bool>()) {
        let parsed = raw.strip_prefix('/').map(|rest| path::parse_relative(rest, hidden));
        if let Some(Ok(safe)) = parsed {
            let key = &safe.key;
            prop_assert!(!key.starts_with('/') && !key.contains('\\') && !key.contains('\0'), "{raw:?} -> {key:?}");
            for segment in key.split('/').filter(|_| !key.is_empty()) {
                prop_assert!(!segment.is_empty() && segment != "." && segment != "..", "{raw:?} -> {key:?}");
                if !hidden {
                    prop_assert!(!segment.starts_with('.'), "{raw:?} -> {key:?}");
                }
            }
            let root = Path::new("/srv/site");
            let joined = root.join(key);
            prop_assert!(joined.starts_with(root), "{raw:?} -> {}", joined.display());
            prop_assert!(
                joined.components().all(|c| !matches!(c, Component::ParentDir)),
                "{raw:?} -> {}", joined.display()
            );
        }
    }

    #[test]
    fn config_any_value_is_accepted_or_refused_with_a_reason(
        key in prop::sample::select(KEYS.iter().map(|key| key.env).collect::<Vec<_>>()),
        value in prop_oneof![header_text(), any::<i64>().prop_map(|n| n.to_string()), Just(String::new())],
    ) {
        let root = std::env::temp_dir();
        let mut env = HashMap::from([
            ("STATIC_FILE_ROOT_DIR".to_owned(), root.display().to_string()),
            ("LEANSERVE_ADMIN_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ]);
        env.insert(key.to_owned(), value.clone());
        let options = LoadOptions {
            config_dir: Some(root.join("leanserve-properties-no-such-dir")),
            profile: Some("dev".into()),
            env,
            skip_root_check: true,
            ..LoadOptions::default()
        };
        if let Err(error) = Config::load(&options) {
            prop_assert!(!error.to_string().is_empty(), "{key}={value:?}");
        }
    }
}
