//! Lazy values: a variable whose value is computed only when a render looks it up, at
//! most once per render ([`LazyMode::PerRender`]) or once overall ([`LazyMode::Cached`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use minijinja::value::{Serde, Value, ValueKind};
use serde::Serialize;

use super::lock;
use crate::templates::TemplateError;
use crate::templates::error::DataFileError;

/// When a lazy value's loader runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum LazyMode {
    /// On the first render that reads it; the value is kept for every later render
    /// (until [`LazyHandle::invalidate`]). A failed load is not kept: the next render
    /// that reads it tries again.
    Cached,
    /// On each render that reads it, once per render however often it reads it: for
    /// live values (statistics) that must be current.
    PerRender,
}

/// A loader: computes a value, or says why it could not.
pub type Loader = Arc<dyn Fn() -> Result<Value, TemplateError> + Send + Sync>;

/// A value computed only when a render reads it. Shared through [`LazyHandle`].
pub struct LazyValue {
    loader: Loader,
    mode: LazyMode,
    cached: Mutex<Option<Value>>,
    loads: AtomicU64,
}

impl fmt::Debug for LazyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyValue")
            .field("mode", &self.mode)
            .field("loads", &self.loads.load(Ordering::Relaxed))
            .finish()
    }
}

/// A cheap, shareable handle to a [`LazyValue`]: put it into any number of contexts
/// (`Entry::Lazy`); they share the cache and the load counter.
#[derive(Clone, Debug)]
pub struct LazyHandle(Arc<LazyValue>);

/// A lazy value computed once, on the first render that reads it ([`LazyMode::Cached`]).
pub fn lazy(
    loader: impl Fn() -> Result<Value, TemplateError> + Send + Sync + 'static,
) -> LazyHandle {
    LazyHandle::new(LazyMode::Cached, loader)
}

/// A lazy value computed on each render that reads it ([`LazyMode::PerRender`]).
pub fn lazy_per_render(
    loader: impl Fn() -> Result<Value, TemplateError> + Send + Sync + 'static,
) -> LazyHandle {
    LazyHandle::new(LazyMode::PerRender, loader)
}

impl LazyHandle {
    /// A lazy value loaded by `loader` in `mode`.
    pub fn new(
        mode: LazyMode,
        loader: impl Fn() -> Result<Value, TemplateError> + Send + Sync + 'static,
    ) -> LazyHandle {
        LazyHandle(Arc::new(LazyValue {
            loader: Arc::new(loader),
            mode,
            cached: Mutex::new(None),
            loads: AtomicU64::new(0),
        }))
    }

    /// How many times the loader ran (failed runs included).
    pub fn loads(&self) -> u64 {
        self.0.loads.load(Ordering::Relaxed)
    }

    /// The mode it was created with.
    pub fn mode(&self) -> LazyMode {
        self.0.mode
    }

    /// Drops a cached value, so the next render that reads it loads it again (e.g.
    /// after its data file changed). No effect in [`LazyMode::PerRender`].
    pub fn invalidate(&self) {
        *lock(&self.0.cached) = None;
    }

    /// The value, running the loader unless a cached value exists. For
    /// [`LazyMode::Cached`] the loader runs under a lock, so concurrent first reads load
    /// once (a loader must therefore not read its own handle).
    pub fn load(&self) -> Result<Value, TemplateError> {
        let inner = &self.0;
        match inner.mode {
            LazyMode::PerRender => {
                inner.loads.fetch_add(1, Ordering::Relaxed);
                (inner.loader)()
            }
            LazyMode::Cached => {
                let mut cached = lock(&inner.cached);
                if let Some(value) = cached.as_ref() {
                    return Ok(value.clone());
                }
                inner.loads.fetch_add(1, Ordering::Relaxed);
                let value = (inner.loader)()?;
                *cached = Some(value.clone());
                Ok(value)
            }
        }
    }
}

/// A loader reading and parsing a JSON file (e.g. under `templates/data/`) each time it
/// runs. Errors name the file.
pub fn json_file_loader(
    path: impl Into<PathBuf>,
) -> impl Fn() -> Result<Value, TemplateError> + Send + Sync + 'static {
    let path = path.into();
    move || {
        let text = std::fs::read_to_string(&path).map_err(|error| DataFileError::Unreadable {
            path: path.clone(),
            reason: error.to_string(),
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|error| DataFileError::NotJson {
                path: path.clone(),
                reason: error.to_string(),
            })?;
        Ok(Value::from(Serde(&json)))
    }
}

/// A loader for a live value the application computes (e.g. the file cache's
/// statistics as a `serde_json::Value`): anything serializable.
pub fn fn_loader<T: Serialize>(
    f: impl Fn() -> T + Send + Sync + 'static,
) -> impl Fn() -> Result<Value, TemplateError> + Send + Sync + 'static {
    move || {
        let value = Value::from(Serde(&f()));
        // A failing `Serialize` implementation yields an invalid value; report it as a
        // load error instead of letting it surface somewhere later.
        if value.kind() == ValueKind::Invalid {
            Err(TemplateError::Value {
                reason: value.to_string().into(),
            })
        } else {
            Ok(value)
        }
    }
}
