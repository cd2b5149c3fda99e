//! The configuration tests: layering, per-key checks, typed reads and the key table,
//! validation of loaded and hand-built options, and the configuration reference's table
//! (docs/configuration.md).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::keys::KEYS;
use super::load::{compiled_defaults, read_file};
use super::parse::parse_text;
use super::value::{Setting, Value};
use super::*;

/// A config folder with the given files and a `site/` folder to serve.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(files: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("site")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Fixture { dir }
    }

    fn options(&self) -> LoadOptions {
        let root = self.dir.path().join("site").display().to_string();
        LoadOptions {
            config_dir: Some(self.dir.path().to_owned()),
            env: HashMap::from([("STATIC_FILE_ROOT_DIR".to_owned(), root)]),
            ..LoadOptions::default()
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn flag(key: &str, value: &str) -> (String, String, String) {
    (key.into(), value.into(), format!("--set {key}={value}"))
}

#[test]
fn config_each_layer_overrides_the_one_below() {
    let fixture = Fixture::new(&[
        (
            "default.toml",
            "[server]\nshutdown_timeout = 10\nworkers = 2\nbind = \"127.0.0.1:9000\"\n[supervisor]\nmax_restarts = 7\n",
        ),
        ("dev.toml", "[server]\nshutdown_timeout = 20\nworkers = 3\n"),
    ]);
    let mut options = fixture.options();
    options
        .env
        .insert("LEANSERVE_SHUTDOWN_TIMEOUT".into(), "30".into());
    options.env.insert("LEANSERVE_WORKERS".into(), "5".into());
    options.flags.push(flag("server.shutdown_timeout", "40"));
    let config = Config::load(&options).unwrap();
    let source = |key: &str| config.settings[key].source.clone();

    assert_eq!(config.opts.server.shutdown_timeout, Duration::from_secs(40));
    assert_eq!(
        source("server.shutdown_timeout"),
        Source::Flag("--set server.shutdown_timeout=40".into())
    );
    assert_eq!(config.opts.server.workers, 5);
    assert_eq!(source("server.workers"), Source::Env("LEANSERVE_WORKERS"));
    assert_eq!(config.opts.server.bind, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(
        source("server.bind"),
        Source::File(fixture.path("default.toml"))
    );
    assert_eq!(config.opts.supervisor.max_restarts, 7);
    assert_eq!(config.opts.supervisor.call_timeout, Duration::from_secs(2));
    assert_eq!(source("supervisor.call_timeout_ms"), Source::Default);

    // The profile file beats default.toml.
    options.env.remove("LEANSERVE_WORKERS");
    let config = Config::load(&options).unwrap();
    assert_eq!(config.opts.server.workers, 3);
    assert_eq!(
        config.settings["server.workers"].source,
        Source::File(fixture.path("dev.toml"))
    );
}

#[test]
fn config_profile_comes_from_flag_then_env_then_default() {
    let fixture = Fixture::new(&[
        ("test.toml", "[server]\nshutdown_timeout = 1\n"),
        ("prod.toml", "[server]\nshutdown_timeout = 2\n"),
    ]);
    let mut options = fixture.options();
    assert_eq!(Config::load(&options).unwrap().opts.profile, Profile::Dev);
    options.env.insert(PROFILE_ENV.into(), "test".into());
    let config = Config::load(&options).unwrap();
    assert_eq!(
        (
            config.opts.profile,
            config.opts.server.shutdown_timeout.as_secs()
        ),
        (Profile::Test, 1)
    );
    options.profile = Some("prod".into());
    // prod wants a token for a TCP admin listener...
    let refused = Config::load(&options).unwrap_err().to_string();
    assert!(
        refused.contains("prod profile") && refused.contains("admin.token"),
        "{refused}"
    );
    // ...or the admin surface on a Unix socket.
    options.env.insert(
        "LEANSERVE_ADMIN_BIND".into(),
        "unix:/run/leanserve.sock".into(),
    );
    let config = Config::load(&options).unwrap();
    assert_eq!(
        (
            config.opts.profile,
            config.opts.server.shutdown_timeout.as_secs()
        ),
        (Profile::Prod, 2)
    );
    assert_eq!(
        config.opts.admin.bind,
        AdminBind::Unix("/run/leanserve.sock".into())
    );
    assert_eq!(config.profile.source, Source::Flag("--env".into()));
}

#[test]
fn config_unparsable_number_names_key_source_and_range() {
    let fixture = Fixture::new(&[]);
    let mut options = fixture.options();
    options
        .env
        .insert("STATIC_FILE_MAX_CACHE_SIZE".into(), "100MB".into());
    let error = Config::load(&options).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid value for `static_files.max_cache_size` from env STATIC_FILE_MAX_CACHE_SIZE: \
         \"100MB\" (allowed: a whole number of bytes from 0 to 1099511627776)"
    );
}

#[test]
fn config_out_of_range_value_in_a_file_is_rejected() {
    let fixture = Fixture::new(&[("default.toml", "[server]\nworkers = 0\n")]);
    let error = Config::load(&fixture.options()).unwrap_err();
    let ConfigError::Invalid {
        key, origin, value, ..
    } = error
    else {
        panic!("{error}")
    };
    assert_eq!((key.as_str(), value.as_str()), ("server.workers", "0"));
    assert_eq!(origin, Source::File(fixture.path("default.toml")));
}

#[test]
fn config_wrong_type_in_a_file_is_rejected() {
    let fixture = Fixture::new(&[("dev.toml", "[static_files]\nenable_cache = \"yes\"\n")]);
    let error = Config::load(&fixture.options()).unwrap_err().to_string();
    assert!(
        error.contains("`static_files.enable_cache`") && error.contains("dev.toml"),
        "{error}"
    );
    assert!(error.contains("true or false"), "{error}");
}

#[test]
fn config_unknown_profile_is_rejected() {
    let fixture = Fixture::new(&[]);
    let mut options = fixture.options();
    options.env.insert(PROFILE_ENV.into(), "staging".into());
    let error = Config::load(&options).unwrap_err().to_string();
    assert_eq!(
        error,
        "invalid value for `env` from env LEANSERVE_ENV: \"staging\" (allowed: dev, test or prod)"
    );
}

#[test]
fn config_missing_root_dir_is_rejected() {
    let fixture = Fixture::new(&[]);
    let mut options = fixture.options();
    options.flags.push((
        "static_files.root_dir".into(),
        "/no/such/dir".into(),
        "--root".into(),
    ));
    let error = Config::load(&options).unwrap_err().to_string();
    assert!(
        error.starts_with(
            "invalid value for `static_files.root_dir` from flag --root: \"/no/such/dir\""
        ),
        "{error}"
    );
}

#[test]
fn config_bad_values_of_each_kind_are_rejected() {
    let fixture = Fixture::new(&[]);
    for (env, value) in [
        ("LEANSERVE_BIND", "localhost"),
        ("STATIC_FILE_CACHE_ENABLED", "maybe"),
        ("LEANSERVE_WORKERS", "-1"),
        ("MEMORY_THRESHOLD_MB", "0"),
        ("LEANSERVE_ADMIN_TOKEN", "  "),
    ] {
        let mut options = fixture.options();
        options.env.insert(env.into(), value.into());
        let error = Config::load(&options).unwrap_err().to_string();
        assert!(error.contains(&format!("from env {env}")), "{env}: {error}");
    }
}

#[test]
fn config_encodings_take_known_codings_once_each_in_order() {
    let fixture = Fixture::new(&[]);
    let load = |value: &str| {
        let mut options = fixture.options();
        options
            .env
            .insert("STATIC_FILE_ENCODINGS".into(), value.into());
        Config::load(&options).map(|config| config.opts.static_files.encodings)
    };
    use crate::http::encoding::Coding;
    assert_eq!(load("gzip, br").unwrap(), [Coding::Gzip, Coding::Br]);
    assert_eq!(load("zstd").unwrap(), [Coding::Zstd]);
    assert_eq!(load("").unwrap(), []);
    for bad in ["deflate", "br,br", "gzip,identity", "BR"] {
        let error = load(bad).unwrap_err().to_string();
        assert!(
            error.contains("static_files.encodings")
                && error.contains("from env STATIC_FILE_ENCODINGS")
                && error.contains("any of br, zstd, gzip, each at most once"),
            "{bad}: {error}"
        );
    }
    let defaults = Config::load(&fixture.options()).unwrap().opts.static_files;
    assert_eq!(defaults.encodings, [Coding::Br, Coding::Zstd, Coding::Gzip]);
    assert_eq!(
        (defaults.gzip_level, defaults.br_level, defaults.zstd_level),
        (6, 11, 19)
    );
    for (env, value) in [
        ("STATIC_FILE_GZIP_LEVEL", "13"),
        ("STATIC_FILE_BR_LEVEL", "12"),
        ("STATIC_FILE_ZSTD_LEVEL", "0"),
    ] {
        let mut options = fixture.options();
        options.env.insert(env.into(), value.into());
        let error = Config::load(&options).unwrap_err().to_string();
        assert!(error.contains(&format!("from env {env}")), "{env}: {error}");
    }
}

#[test]
fn config_unknown_keys_in_files_warn_and_unknown_flags_fail() {
    let fixture = Fixture::new(&[("default.toml", "[server]\nbnd = \"x\"\n[nonsense]\na = 1\n")]);
    let config = Config::load(&fixture.options()).unwrap();
    assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
    assert!(
        config.warnings[0].contains("`nonsense.a`") || config.warnings[1].contains("`nonsense.a`")
    );
    assert!(config.warnings.iter().any(|w| w.contains("`server.bnd`")));

    let mut options = fixture.options();
    options.flags.push(flag("server.bnd", "1"));
    let error = Config::load(&options).unwrap_err().to_string();
    assert_eq!(
        error,
        "unknown configuration key `server.bnd` from flag --set server.bnd=1"
    );
}

#[test]
fn config_missing_config_dir_flag_is_rejected() {
    let options = LoadOptions {
        config_dir: Some("/no/such/config".into()),
        ..LoadOptions::default()
    };
    assert!(matches!(
        Config::load(&options),
        Err(ConfigError::MissingDir { .. })
    ));
}

#[test]
fn config_describe_redacts_the_admin_token() {
    let fixture = Fixture::new(&[]);
    let mut options = fixture.options();
    options
        .env
        .insert("LEANSERVE_ADMIN_TOKEN".into(), "s3cret-token".into());
    let config = Config::load(&options).unwrap();
    let rows = config.describe();
    let token = rows.iter().find(|row| row.0 == "admin.token").unwrap();
    assert_eq!(
        (token.1.as_str(), token.2.as_str()),
        ("<redacted>", "env LEANSERVE_ADMIN_TOKEN")
    );
    assert!(!format!("{rows:?}{:?}", config.opts).contains("s3cret"));
}

/// REDbot flags `public` on responses to requests without credentials as
/// unnecessary; the shipped profiles must not send it.
#[test]
fn config_shipped_profiles_send_no_unneeded_public_cache_control() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for profile in ["dev", "test", "prod"] {
        let options = LoadOptions {
            config_dir: Some(shipped.clone()),
            profile: Some(profile.into()),
            env: HashMap::from([
                (
                    "STATIC_FILE_ROOT_DIR".to_owned(),
                    shipped.display().to_string(),
                ),
                (
                    "LEANSERVE_ADMIN_BIND".to_owned(),
                    "unix:/run/l.sock".to_owned(),
                ),
            ]),
            ..LoadOptions::default()
        };
        let control = Config::load(&options)
            .unwrap()
            .opts
            .static_files
            .cache_control;
        assert!(!control.contains("public"), "{profile}: {control}");
    }
}

#[test]
fn config_shipped_default_toml_matches_compiled_defaults() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let options = LoadOptions {
        config_dir: Some(shipped.clone()),
        profile: Some("dev".into()),
        env: HashMap::from([(
            "STATIC_FILE_ROOT_DIR".to_owned(),
            shipped.display().to_string(),
        )]),
        ..LoadOptions::default()
    };
    let config = Config::load(&options).unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let mut defaults = BTreeMap::new();
    read_file(
        &shipped.join("default.toml"),
        &mut defaults,
        &mut Vec::new(),
    )
    .unwrap();
    for key in KEYS {
        let compiled = key
            .default
            .map(|text| parse_text(key, text, &Source::Default).unwrap());
        let shipped = defaults.get(key.path).map(|setting| setting.value.clone());
        assert_eq!(
            compiled, shipped,
            "config/default.toml disagrees on `{}`",
            key.path
        );
    }
    for profile in Profile::ALL {
        let mut options = options.clone();
        options.profile = Some(profile.name().into());
        // prod refuses a TCP admin listener without a token.
        options
            .env
            .insert("LEANSERVE_ADMIN_TOKEN".into(), "t".into());
        assert!(
            Config::load(&options).unwrap().warnings.is_empty(),
            "{profile}.toml"
        );
    }
}

#[test]
fn config_alert_rules_change_defaults_add_and_remove() {
    let fixture = Fixture::new(&[(
        "default.toml",
        "[[monitoring.alerts]]\nname = \"low_hit_ratio\"\nthreshold = 0.3\nfor = 120\n\n\
         [[monitoring.alerts]]\nname = \"busy\"\nmetric = \"requests_per_second\"\ncomparison = \">=\"\nthreshold = 1000\nseverity = \"critical\"\n\n\
         [[monitoring.alerts]]\nname = \"memory_critical\"\nenabled = false\n",
    )]);
    let rules = Config::load(&fixture.options())
        .unwrap()
        .opts
        .monitoring
        .alerts;
    let low = rules.iter().find(|r| r.name == "low_hit_ratio").unwrap();
    assert_eq!(
        (low.threshold, low.for_duration, low.min_requests),
        (0.3, Duration::from_secs(120), Some(100))
    );
    let busy = rules.iter().find(|r| r.name == "busy").unwrap();
    assert_eq!(busy.comparison, crate::alerts::Comparison::AtLeast);
    assert_eq!(busy.severity, crate::alerts::Severity::Critical);
    assert!(rules.iter().all(|r| r.name != "memory_critical"));
    assert_eq!(rules.len(), 10, "the 10 defaults, one removed, one added");
}

#[test]
fn config_bad_alert_rules_name_the_field() {
    for (rule, field) in [
        (
            "name = \"low_hit_ratio\"\ncomparison = \"==\"",
            "monitoring.alerts[0].comparison",
        ),
        (
            "name = \"x\"\nmetric = \"cache_bytes\"\ncomparison = \">\"",
            "monitoring.alerts[0].threshold",
        ),
        (
            "name = \"low_hit_ratio\"\nthreshold = \"high\"",
            "monitoring.alerts[0].threshold",
        ),
        (
            "name = \"low_hit_ratio\"\nseverity = \"page\"",
            "monitoring.alerts[0].severity",
        ),
        (
            "name = \"low_hit_ratio\"\nfor = -5",
            "monitoring.alerts[0].for",
        ),
        (
            "name = \"low_hit_ratio\"\nthresold = 1",
            "monitoring.alerts[0].thresold",
        ),
        ("threshold = 1", "monitoring.alerts[0].name"),
    ] {
        let fixture = Fixture::new(&[("dev.toml", &format!("[[monitoring.alerts]]\n{rule}\n"))]);
        let error = Config::load(&fixture.options()).unwrap_err().to_string();
        assert!(
            error.contains(&format!("`{field}`")) && error.contains("dev.toml"),
            "{rule}: {error}"
        );
    }
    let fixture = Fixture::new(&[]);
    let mut options = fixture.options();
    options
        .env
        .insert("LEANSERVE_MONITORING_ALERTS".into(), "x".into());
    let error = Config::load(&options).unwrap_err().to_string();
    assert!(error.contains("in a config file"), "{error}");
}

#[test]
fn config_monitoring_history_follows_the_interval() {
    let fixture = Fixture::new(&[]);
    let mut options = fixture.options();
    options
        .env
        .insert("LEANSERVE_MONITORING_INTERVAL_MS".into(), "500".into());
    options
        .env
        .insert("LEANSERVE_MONITORING_HISTORY_SECONDS".into(), "60".into());
    let monitoring = Config::load(&options).unwrap().opts.monitoring;
    assert_eq!(
        (monitoring.interval, monitoring.history_len),
        (Duration::from_millis(500), 120)
    );
    options
        .env
        .insert("LEANSERVE_MONITORING_WEBHOOK_URL".into(), "ftp://x".into());
    assert!(
        Config::load(&options)
            .unwrap_err()
            .to_string()
            .contains("http:// or https:// URL")
    );
}

#[test]
fn config_every_key_has_a_unique_path_and_env_var() {
    let mut paths = std::collections::HashSet::new();
    let mut envs = std::collections::HashSet::new();
    for key in KEYS {
        assert!(
            paths.insert(key.path) && envs.insert(key.env),
            "{}",
            key.path
        );
        assert_eq!(key.path.matches('.').count(), 1, "{}", key.path);
    }
}

#[test]
fn config_opts_build_reads_every_key_of_the_table() {
    let settings = compiled_defaults().unwrap();
    let values = super::value::Values::new(&settings);
    Opts::build(Profile::Dev, &values);
    assert_eq!(
        values.unread(),
        Vec::<&str>::new(),
        "keys of the table that Opts::build never reads"
    );
}

#[test]
#[should_panic(expected = "`server.workers` holds Bool(true)")]
fn config_typed_read_of_a_value_of_another_kind_panics_naming_the_key() {
    let mut settings = compiled_defaults().unwrap();
    settings.insert(
        keys::SERVER_WORKERS.path(),
        Setting {
            value: Value::Bool(true),
            source: Source::Default,
        },
    );
    super::value::Values::new(&settings).get(&keys::SERVER_WORKERS);
}

#[test]
fn config_key_constants_are_named_after_their_paths() {
    assert_eq!(keys::NAMES.len(), KEYS.len());
    for (name, key) in keys::NAMES.iter().zip(KEYS) {
        assert_eq!(*name, key.path.to_uppercase().replace('.', "_"));
    }
}

#[test]
fn config_pool_override_fields_are_the_pools_keys() {
    for (field, key) in keys::POOL_FIELDS {
        assert_eq!(key.path, format!("pools.{field}"));
    }
}

#[test]
fn config_every_choice_word_reads_as_a_value() {
    use super::key::Choice;
    fn all_read<T: Choice>() -> bool {
        T::WORDS.iter().all(|word| T::from_word(word).is_some())
    }
    assert!(all_read::<Store>() && all_read::<Admission>() && all_read::<TunerMode>());
}

#[test]
fn config_loaded_opts_pass_validate() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for profile in Profile::ALL {
        let options = LoadOptions {
            config_dir: Some(shipped.clone()),
            profile: Some(profile.name().into()),
            env: HashMap::from([
                (
                    "STATIC_FILE_ROOT_DIR".to_owned(),
                    shipped.display().to_string(),
                ),
                ("LEANSERVE_ADMIN_TOKEN".to_owned(), "t".to_owned()),
                // A budget under 1 MiB: the ceiling follows it, in bytes.
                ("STATIC_FILE_MAX_CACHE_SIZE".to_owned(), "1000".to_owned()),
                (
                    "LEANSERVE_TUNER_MEMORY_LIMIT_MB".to_owned(),
                    "64".to_owned(),
                ),
            ]),
            ..LoadOptions::default()
        };
        let opts = Config::load(&options).unwrap().opts;
        assert_eq!(opts.validate(), Ok(()), "{profile}");
    }
}

/// Each case: environment variables that `Config::load` refuses, and the same mistake
/// made in code on options that loaded fine.
#[test]
fn config_validate_refuses_hand_built_opts_with_the_error_load_gives() {
    type Mistake = fn(&mut Opts);
    let cases: [(&[(&str, &str)], Mistake); 5] = [
        (
            &[
                ("LEANSERVE_TUNER_CACHE_FLOOR_MB", "64"),
                ("LEANSERVE_TUNER_CACHE_CEILING_MB", "16"),
            ],
            |opts| (opts.tuner.cache_floor, opts.tuner.cache_ceiling) = (64 << 20, 16 << 20),
        ),
        (
            &[
                ("LEANSERVE_LIMITER_MIN_LIMIT", "50"),
                ("LEANSERVE_LIMITER_MAX_LIMIT", "10"),
            ],
            |opts| {
                let limit = &mut opts.limiter.config.limit;
                (limit.min, limit.max) = (50, 10);
            },
        ),
        (
            &[
                ("LEANSERVE_POOLS_MAX_SIZE", "2"),
                ("LEANSERVE_POOLS_MIN_IDLE", "3"),
            ],
            |opts| {
                let spec = &mut opts.pools.defaults;
                (spec.max_size, spec.min_idle) = (2, 3);
            },
        ),
        (&[("LEANSERVE_PROCESS_SAMPLE_INTERVAL", "0")], |opts| {
            opts.process.sample_interval = Duration::ZERO
        }),
        (&[("LEANSERVE_SUPERVISOR_CALL_TIMEOUT_MS", "0")], |opts| {
            opts.supervisor.call_timeout = Duration::ZERO
        }),
    ];
    let fixture = Fixture::new(&[]);
    for (env, mistake) in cases {
        let mut options = fixture.options();
        for (name, value) in env {
            options.env.insert((*name).into(), (*value).into());
        }
        let ConfigError::Invalid {
            key,
            value,
            allowed,
            ..
        } = Config::load(&options).unwrap_err()
        else {
            panic!("{env:?}: not an invalid value")
        };
        let mut opts = Config::load(&fixture.options()).unwrap().opts;
        mistake(&mut opts);
        assert_eq!(
            opts.validate(),
            Err(ConfigError::Invalid {
                key,
                origin: Source::Code,
                value,
                allowed
            }),
            "{env:?}"
        );
    }
}

#[test]
fn config_validate_refuses_an_open_admin_surface_set_in_code() {
    let fixture = Fixture::new(&[]);
    let mut options = fixture.options();
    options
        .env
        .insert("LEANSERVE_ADMIN_BIND".into(), "0.0.0.0:8081".into());
    let loaded = Config::load(&options).unwrap_err().to_string();
    let mut opts = Config::load(&fixture.options()).unwrap().opts;
    opts.admin.bind = AdminBind::Tcp("0.0.0.0:8081".parse().unwrap());
    let refused = opts.validate().unwrap_err().to_string();
    assert_eq!(
        refused,
        loaded.replace("env LEANSERVE_ADMIN_BIND", "options set in code")
    );
}

#[test]
fn config_validate_refuses_a_missing_root_dir_set_in_code() {
    let fixture = Fixture::new(&[]);
    let mut opts = Config::load(&fixture.options()).unwrap().opts;
    opts.static_files.root_dir = fixture.path("missing");
    let error = opts.validate().unwrap_err().to_string();
    assert!(
        error.starts_with("invalid value for `static_files.root_dir` from options set in code"),
        "{error}"
    );
}

/// The configuration reference's table (docs/configuration.md), generated from [`KEYS`]
/// and the shipped profile files, so a test can keep the reference true.
fn reference_table(config_dir: &Path) -> String {
    let mut profiles = Vec::new();
    for profile in Profile::ALL {
        let mut settings = BTreeMap::new();
        let path = config_dir.join(format!("{profile}.toml"));
        read_file(&path, &mut settings, &mut Vec::new()).expect("shipped profile file reads");
        profiles.push(settings);
    }
    let mut table = String::from(
        "| key | environment variable | default | dev | test | prod | meaning |\n|---|---|---|---|---|---|---|\n",
    );
    for key in KEYS {
        let default = key
            .default
            .map_or("(unset)".to_owned(), |d| format!("`{d}`"));
        let per_profile: Vec<String> = profiles
            .iter()
            .map(|settings| {
                settings
                    .get(key.path)
                    .map_or("".to_owned(), |s| format!("`{}`", s.value))
            })
            .collect();
        let allowed = key.kind.allowed();
        table.push_str(&format!(
            "| `{}` | `{}` | {default} | {} | {} | {} | {}; {allowed} |\n",
            key.path, key.env, per_profile[0], per_profile[1], per_profile[2], key.help
        ));
    }
    table
}

#[test]
fn config_reference_table_lists_every_key() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let expected = reference_table(&root.join("config"));
    let path = root.join("docs/configuration.md");
    let reference = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{} does not read: {error}", path.display()));
    assert!(
        reference.contains(&expected),
        "docs/configuration.md's configuration table is out of date; it should read:\n\n{expected}"
    );
}
