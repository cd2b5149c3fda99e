//! Loading: the layers read in order of precedence into one map of winning settings, then
//! [`Opts`] built from it and checked, once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::key::Key;
use super::keys::{self, KEYS};
use super::opts::Opts;
use super::parse::{parse_text, parse_toml};
use super::validate::{Origins, check_across_keys, check_root_dir};
use super::value::{Setting, Value, Values};
use super::{ConfigError, DEFAULT_CONFIG_DIR, DEFAULT_PROFILE, PROFILE_ENV, Profile, Source};

/// What the caller knows before configuration is read: the binary fills it from its
/// flags and the process environment; tests fill it directly.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// `--config DIR`; `None` uses `config/` if it exists.
    pub config_dir: Option<PathBuf>,
    /// `--env PROFILE`.
    pub profile: Option<String>,
    /// The environment variables to consult.
    pub env: HashMap<String, String>,
    /// Command-line overrides in order: (key path, value, flag as written).
    pub flags: Vec<(String, String, String)>,
    /// Do not require `static_files.root_dir` to exist (for commands that only talk to a
    /// running server).
    pub skip_root_check: bool,
}

impl LoadOptions {
    /// Reads the configuration files in `dir` (`--config`) instead of `config/`.
    pub fn config_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config_dir = Some(dir.into());
        self
    }

    /// Chooses the profile (`--env`), whatever `LEANSERVE_ENV` says.
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// Consults `env` as the environment variables.
    pub fn env(mut self, env: HashMap<String, String>) -> Self {
        self.env = env;
        self
    }

    /// Adds one environment variable to those consulted.
    pub fn var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Options that read the real process environment.
    pub fn from_process_env() -> Self {
        LoadOptions {
            env: std::env::vars().collect(),
            ..LoadOptions::default()
        }
    }
}

/// The resolved configuration: every key's winning value with its source, the profile,
/// warnings for unknown keys, and the typed [`Opts`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The profile, with where it was chosen (the tests' view; hosts read
    /// [`Config::describe`]).
    #[cfg(test)]
    pub(crate) profile: Setting,
    /// Every key's winning value with its source (the tests' view, as above).
    #[cfg(test)]
    pub(crate) settings: BTreeMap<&'static str, Setting>,
    /// Unknown keys found in files, to be logged once a logger exists.
    pub warnings: Vec<String>,
    /// The typed, validated options.
    pub opts: Opts,
}

impl Config {
    /// Reads every layer, checks every value and resolves [`Opts`].
    pub fn load(options: &LoadOptions) -> Result<Config, ConfigError> {
        let (profile_value, profile) = resolve_profile(options)?;
        let mut settings = compiled_defaults()?;
        let mut warnings = Vec::new();
        if let Some(dir) = config_dir(options)? {
            for file in ["default.toml".to_owned(), format!("{profile_value}.toml")] {
                let path = dir.join(file);
                if path.is_file() {
                    read_file(&path, &mut settings, &mut warnings)?;
                }
            }
        }
        read_env(&options.env, &mut settings)?;
        read_flags(&options.flags, &mut settings)?;
        let mut opts = Opts::build(profile_value, &Values::new(&settings));
        let origins = Origins::Loaded(&settings);
        if !options.skip_root_check {
            check_root_dir(&opts, &origins)?;
        }
        fit_default_cache_floor(&mut opts, &settings);
        check_across_keys(&opts, &origins)?;
        opts.described = describe(&profile, &settings, &opts);
        Ok(Config {
            #[cfg(test)]
            profile,
            #[cfg(test)]
            settings,
            warnings,
            opts,
        })
    }

    /// Every key with its value (secrets redacted, unset keys as `(unset)`) and source.
    pub fn describe(&self) -> Vec<(String, String, String)> {
        self.opts.described.clone()
    }
}

/// Every key's compiled default, the lowest layer.
pub(super) fn compiled_defaults() -> Result<BTreeMap<&'static str, Setting>, ConfigError> {
    let mut settings = BTreeMap::new();
    for key in KEYS {
        if let Some(default) = key.default {
            let value = parse_text(key, default, &Source::Default)?;
            settings.insert(
                key.path,
                Setting {
                    value,
                    source: Source::Default,
                },
            );
        }
    }
    Ok(settings)
}

/// Reads each key's environment variable into `settings`.
fn read_env(
    env: &HashMap<String, String>,
    settings: &mut BTreeMap<&'static str, Setting>,
) -> Result<(), ConfigError> {
    for key in KEYS {
        if let Some(text) = env.get(key.env) {
            let source = Source::Env(key.env);
            let value = parse_text(key, text, &source)?;
            settings.insert(key.path, Setting { value, source });
        }
    }
    Ok(())
}

/// Reads command-line overrides into `settings`, in order; an unknown key is an error.
fn read_flags(
    flags: &[(String, String, String)],
    settings: &mut BTreeMap<&'static str, Setting>,
) -> Result<(), ConfigError> {
    for (path, text, flag) in flags {
        let source = Source::Flag(flag.clone());
        let key = find_key(path).ok_or_else(|| ConfigError::UnknownKey {
            key: path.clone(),
            origin: source.clone(),
        })?;
        let value = parse_text(key, text, &source)?;
        settings.insert(key.path, Setting { value, source });
    }
    Ok(())
}

/// A cache budget smaller than the tuner's default floor (8 MiB) lowers the floor to the
/// budget: only a floor the user chose (in a profile file, the environment or a flag) is
/// held against the ceiling and refused when above it.
fn fit_default_cache_floor(opts: &mut Opts, settings: &BTreeMap<&'static str, Setting>) {
    let chosen = match settings
        .get(keys::TUNER_CACHE_FLOOR_MB.path())
        .map(|s| &s.source)
    {
        None | Some(Source::Default) => false,
        Some(Source::File(path)) => path.file_name() != Some(std::ffi::OsStr::new("default.toml")),
        Some(_) => true,
    };
    if !chosen && opts.tuner.cache_floor > opts.tuner.cache_ceiling {
        opts.tuner.cache_floor = opts.tuner.cache_ceiling;
    }
}

/// The rows of [`Config::describe`]: (key, value, source), the profile first.
pub(super) fn describe(
    profile: &Setting,
    settings: &BTreeMap<&'static str, Setting>,
    opts: &Opts,
) -> Vec<(String, String, String)> {
    let mut rows = vec![(
        "env".to_owned(),
        profile.value.to_string(),
        profile.source.to_string(),
    )];
    for key in KEYS {
        let row = match settings.get(key.path) {
            Some(setting) if key.secret => ("<redacted>".to_owned(), setting.source.to_string()),
            Some(setting) => (setting.value.to_string(), setting.source.to_string()),
            None if key.path == keys::SERVER_WORKERS.path() => {
                (opts.server.workers.to_string(), "number of CPUs".to_owned())
            }
            None => ("(unset)".to_owned(), Source::Default.to_string()),
        };
        rows.push((key.path.to_owned(), row.0, row.1));
    }
    rows
}

fn resolve_profile(options: &LoadOptions) -> Result<(Profile, Setting), ConfigError> {
    let (text, source) = if let Some(flag) = &options.profile {
        (flag.clone(), Source::Flag("--env".into()))
    } else if let Some(env) = options.env.get(PROFILE_ENV) {
        (env.clone(), Source::Env(PROFILE_ENV))
    } else {
        (DEFAULT_PROFILE.name().to_owned(), Source::Default)
    };
    match Profile::parse(&text) {
        Some(profile) => Ok((
            profile,
            Setting {
                value: Value::Text(text),
                source,
            },
        )),
        None => Err(ConfigError::Invalid {
            key: "env".into(),
            origin: source,
            value: text,
            allowed: "dev, test or prod".into(),
        }),
    }
}

fn config_dir(options: &LoadOptions) -> Result<Option<PathBuf>, ConfigError> {
    match &options.config_dir {
        Some(dir) if dir.is_dir() => Ok(Some(dir.clone())),
        Some(dir) => Err(ConfigError::MissingDir {
            path: dir.clone(),
            origin: Source::Flag("--config".into()),
        }),
        None => {
            let dir = PathBuf::from(DEFAULT_CONFIG_DIR);
            Ok(dir.is_dir().then_some(dir))
        }
    }
}

fn find_key(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.path == path)
}

/// Reads one TOML file into `settings`, checking each value against its key.
pub(super) fn read_file(
    path: &Path,
    settings: &mut BTreeMap<&'static str, Setting>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        message: error.to_string(),
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|error: toml::de::Error| ConfigError::Parse {
            path: path.to_owned(),
            message: error.message().to_owned(),
        })?;
    let source = Source::File(path.to_owned());
    for (section, body) in &table {
        let Some(body) = body.as_table() else {
            warnings.push(format!(
                "unknown key `{section}` in {} (ignored)",
                path.display()
            ));
            continue;
        };
        for (name, raw) in body {
            let dotted = format!("{section}.{name}");
            let Some(key) = find_key(&dotted) else {
                warnings.push(format!(
                    "unknown key `{dotted}` in {} (ignored)",
                    path.display()
                ));
                continue;
            };
            let value = parse_toml(key, raw, &source)?;
            settings.insert(
                key.path,
                Setting {
                    value,
                    source: source.clone(),
                },
            );
        }
    }
    Ok(())
}
