//! The tuner's knobs as a type: the rules name what they recommend with a [`Knob`], the
//! tuner actor applies a recommendation by an exhaustive `match` on it, and the decisions
//! and change counters are keyed by it.
//!
//! A knob's name (`/admin/tuner`'s `knob` field, the `knob` label of the
//! `tuner_knob_*` and `tuner_changes_total` metrics, `leanserve tune`'s rows) is its
//! [`Display`](fmt::Display) form, and [`FromStr`] reads it back; the names are the ones
//! the tuner always spelt. As with the configuration keys (`config/keys.rs`), a misspelt
//! knob is a compile error rather than a string that matches nothing (which is what an
//! unknown knob used to be: applied as nothing, silently):
//!
//! ```
//! use leanserve::Knob;
//!
//! let gzip = Knob::PoolScaleMax { pool: "gzip".into() };
//! assert_eq!(gzip.to_string(), "pool_scale_max:gzip");
//! assert_eq!("pool_scale_max:gzip".parse(), Ok(gzip));
//! ```
//!
//! ```compile_fail,E0599
//! let cache = leanserve::Knob::CacheBudgetByte;
//! ```
//!
//! Whether a knob is applied while serving and the unit of its values are properties of
//! the knob, not of one recommendation, so they are answered here ([`Knob::live`],
//! [`Knob::unit`]).

use std::fmt;
use std::str::FromStr;

const ALLOCATOR_DIRTY_DECAY_MS: &str = "allocator_dirty_decay_ms";
const CACHE_BUDGET_BYTES: &str = "cache_budget_bytes";
const IN_FLIGHT_LIMIT: &str = "in_flight_limit";
const POOL_SCALE_MAX: &str = "pool_scale_max";
const SERVER_WORKERS: &str = "server.workers";
const RENDER_WORKERS: &str = "templates.render_workers";

/// Separates a knob's name from the pool or limiter it belongs to.
const OWNER_SEPARATOR: char = ':';

/// A setting the tuner recommends a value for.
///
/// The variants are declared in the order of their names, so the derived ordering sorts
/// knobs as their names sort: the order the change counters (a `BTreeMap` keyed by knob)
/// come out in, as they did when they were keyed by the name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Knob {
    /// `allocator_dirty_decay_ms`: how long jemalloc keeps freed pages before returning
    /// them. Live.
    AllocatorDirtyDecayMs,
    /// `cache_budget_bytes`: the file cache's byte budget. Live.
    CacheBudgetBytes,
    /// `in_flight_limit:{limiter}`: a concurrency limiter's in-flight limit. Live, but
    /// the limiter adapts it itself every window: the tuner only reports it.
    InFlightLimit {
        /// The limiter's name (`files`, `renders`).
        limiter: String,
    },
    /// `pool_scale_max:{pool}`: the ceiling a pool's autoscaler moves its maximum under.
    /// Live.
    PoolScaleMax {
        /// The pool's name (`gzip`, `inflate`, `render_buffers`).
        pool: String,
    },
    /// `server.workers`: HTTP worker threads. Taken at the next start.
    ServerWorkers,
    /// `templates.render_workers`: template render threads. Taken at the next start.
    RenderWorkers,
}

impl Knob {
    /// Every knob's name as [`FromStr`] reads it, in the order of the variants; `{pool}`
    /// and `{limiter}` stand for a pool's and a limiter's name.
    pub const NAMES: &'static [&'static str] = &[
        ALLOCATOR_DIRTY_DECAY_MS,
        CACHE_BUDGET_BYTES,
        "in_flight_limit:{limiter}",
        "pool_scale_max:{pool}",
        SERVER_WORKERS,
        RENDER_WORKERS,
    ];

    /// The name without its owner, and the pool or limiter it belongs to.
    fn parts(&self) -> (&'static str, Option<&str>) {
        match self {
            Knob::AllocatorDirtyDecayMs => (ALLOCATOR_DIRTY_DECAY_MS, None),
            Knob::CacheBudgetBytes => (CACHE_BUDGET_BYTES, None),
            Knob::InFlightLimit { limiter } => (IN_FLIGHT_LIMIT, Some(limiter)),
            Knob::PoolScaleMax { pool } => (POOL_SCALE_MAX, Some(pool)),
            Knob::ServerWorkers => (SERVER_WORKERS, None),
            Knob::RenderWorkers => (RENDER_WORKERS, None),
        }
    }

    /// Whether a change takes effect while serving (applied in auto mode) rather than at
    /// the next start.
    pub fn live(&self) -> bool {
        match self {
            Knob::AllocatorDirtyDecayMs
            | Knob::CacheBudgetBytes
            | Knob::InFlightLimit { .. }
            | Knob::PoolScaleMax { .. } => true,
            Knob::ServerWorkers | Knob::RenderWorkers => false,
        }
    }

    /// The unit of the knob's values, as `/admin/tuner` reports it (`leanserve tune`
    /// shows `bytes` as MB and `milliseconds` with `ms`).
    pub fn unit(&self) -> &'static str {
        match self {
            Knob::AllocatorDirtyDecayMs => "milliseconds",
            Knob::CacheBudgetBytes => "bytes",
            Knob::InFlightLimit { .. } => "requests",
            Knob::PoolScaleMax { .. } => "objects",
            Knob::ServerWorkers | Knob::RenderWorkers => "threads",
        }
    }
}

impl fmt::Display for Knob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parts() {
            (name, None) => f.write_str(name),
            (name, Some(owner)) => write!(f, "{name}{OWNER_SEPARATOR}{owner}"),
        }
    }
}

/// A knob name [`FromStr`] refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KnobError {
    /// None of [`Knob::NAMES`].
    #[error("unknown tuner knob `{name}`; the knobs are {}", Knob::NAMES.join(", "))]
    Unknown {
        /// The name as given.
        name: String,
    },
    /// A knob of a pool or limiter without the pool's or limiter's name.
    #[error("tuner knob `{name}` names no {owner}: write {knob}:{{{owner}}}")]
    Unowned {
        /// The name as given.
        name: String,
        /// The knob's name without its owner (`pool_scale_max`).
        knob: &'static str,
        /// What it belongs to (`pool`, `limiter`).
        owner: &'static str,
    },
}

impl FromStr for Knob {
    type Err = KnobError;

    fn from_str(name: &str) -> Result<Knob, KnobError> {
        let (knob, owner) = match name.split_once(OWNER_SEPARATOR) {
            Some((knob, owner)) => (knob, Some(owner)),
            None => (name, None),
        };
        let unowned = |knob, owner| KnobError::Unowned {
            name: name.to_owned(),
            knob,
            owner,
        };
        match (knob, owner) {
            (ALLOCATOR_DIRTY_DECAY_MS, None) => Ok(Knob::AllocatorDirtyDecayMs),
            (CACHE_BUDGET_BYTES, None) => Ok(Knob::CacheBudgetBytes),
            (IN_FLIGHT_LIMIT, Some(limiter)) if !limiter.is_empty() => Ok(Knob::InFlightLimit {
                limiter: limiter.to_owned(),
            }),
            (IN_FLIGHT_LIMIT, _) => Err(unowned(IN_FLIGHT_LIMIT, "limiter")),
            (POOL_SCALE_MAX, Some(pool)) if !pool.is_empty() => Ok(Knob::PoolScaleMax {
                pool: pool.to_owned(),
            }),
            (POOL_SCALE_MAX, _) => Err(unowned(POOL_SCALE_MAX, "pool")),
            (SERVER_WORKERS, None) => Ok(Knob::ServerWorkers),
            (RENDER_WORKERS, None) => Ok(Knob::RenderWorkers),
            _ => Err(KnobError::Unknown {
                name: name.to_owned(),
            }),
        }
    }
}

impl serde::Serialize for Knob {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Knob {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One knob of each variant, in the order of the variants (and of [`Knob::NAMES`]).
    fn one_of_each() -> Vec<Knob> {
        vec![
            Knob::AllocatorDirtyDecayMs,
            Knob::CacheBudgetBytes,
            Knob::InFlightLimit {
                limiter: "files".into(),
            },
            Knob::PoolScaleMax {
                pool: "gzip".into(),
            },
            Knob::ServerWorkers,
            Knob::RenderWorkers,
        ]
    }

    #[test]
    fn knob_names_are_the_tuners_strings() {
        let names: Vec<String> = one_of_each().iter().map(Knob::to_string).collect();
        assert_eq!(
            names,
            [
                "allocator_dirty_decay_ms",
                "cache_budget_bytes",
                "in_flight_limit:files",
                "pool_scale_max:gzip",
                "server.workers",
                "templates.render_workers",
            ]
        );
    }

    #[test]
    fn knob_every_variant_round_trips_through_its_name() {
        for knob in one_of_each() {
            let name = knob.to_string();
            assert_eq!(name.parse::<Knob>(), Ok(knob.clone()), "{name}");
            let json = serde_json::to_value(&knob).unwrap();
            assert_eq!(json, serde_json::Value::String(name.clone()));
            assert_eq!(
                serde_json::from_value::<Knob>(json).unwrap(),
                knob,
                "{name}"
            );
        }
        // A pool or limiter name is taken whole, whatever it holds.
        let odd = Knob::PoolScaleMax {
            pool: "a:b.c".into(),
        };
        assert_eq!(odd.to_string().parse::<Knob>(), Ok(odd));
    }

    #[test]
    fn knob_names_list_every_variant_with_its_placeholder() {
        let each = one_of_each();
        assert_eq!(each.len(), Knob::NAMES.len());
        for (knob, form) in each.iter().zip(Knob::NAMES) {
            let filled = form.replace("{pool}", "gzip").replace("{limiter}", "files");
            assert_eq!(knob.to_string(), filled);
        }
    }

    #[test]
    fn knob_unknown_names_are_refused_listing_the_knobs() {
        for name in [
            "",
            "cache_budget",
            "Cache_Budget_Bytes",
            "server.workers:4",
            "pool_max:gzip",
            "cache_budget_bytes:files",
        ] {
            let error = name.parse::<Knob>().unwrap_err();
            assert_eq!(
                error,
                KnobError::Unknown {
                    name: name.to_owned()
                }
            );
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("unknown tuner knob `{name}`; the knobs are ")),
                "{message}"
            );
            for form in Knob::NAMES {
                assert!(message.contains(form), "{message} lists {form}");
            }
        }
        let error = serde_json::from_str::<Knob>("\"cache_budget\"").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("unknown tuner knob `cache_budget`"),
            "{error}"
        );
    }

    #[test]
    fn knob_of_a_pool_or_limiter_needs_its_name() {
        for (name, knob, owner) in [
            ("pool_scale_max", "pool_scale_max", "pool"),
            ("pool_scale_max:", "pool_scale_max", "pool"),
            ("in_flight_limit", "in_flight_limit", "limiter"),
        ] {
            let error = name.parse::<Knob>().unwrap_err();
            assert_eq!(
                error,
                KnobError::Unowned {
                    name: name.to_owned(),
                    knob,
                    owner
                }
            );
            assert_eq!(
                error.to_string(),
                format!("tuner knob `{name}` names no {owner}: write {knob}:{{{owner}}}")
            );
        }
    }

    #[test]
    fn knob_order_is_the_order_of_the_names() {
        let mut knobs = one_of_each();
        knobs.push(Knob::PoolScaleMax {
            pool: "inflate".into(),
        });
        knobs.push(Knob::InFlightLimit {
            limiter: "renders".into(),
        });
        knobs.sort();
        let names: Vec<String> = knobs.iter().map(Knob::to_string).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    #[test]
    fn knob_live_and_unit_belong_to_the_knob() {
        let live: Vec<(String, bool, &str)> = one_of_each()
            .iter()
            .map(|knob| (knob.to_string(), knob.live(), knob.unit()))
            .collect();
        assert_eq!(
            live,
            [
                ("allocator_dirty_decay_ms".into(), true, "milliseconds"),
                ("cache_budget_bytes".into(), true, "bytes"),
                ("in_flight_limit:files".into(), true, "requests"),
                ("pool_scale_max:gzip".into(), true, "objects"),
                ("server.workers".into(), false, "threads"),
                ("templates.render_workers".into(), false, "threads"),
            ]
        );
    }
}
