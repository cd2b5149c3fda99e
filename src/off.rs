//! A subsystem switched off in the configuration, and what asking it for something
//! answers: one error type for every switch, so the admin surface answers 409 Conflict
//! with the same body shape (`error`, `subsystem`, `switch`) whichever subsystem it is,
//! and library callers match one variant. Routes that only describe a subsystem
//! (`GET /admin/templates`, `/admin/tuner`, `/admin/pools`) answer 200 and say it is off;
//! routes that need it answer [`Off`].

/// A subsystem that is switched off, so it cannot do what was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Off {
    /// `templates.enabled = false`: no template store, no renders.
    #[error("templates are off (templates.enabled = false)")]
    Templates,
    /// `pools.enabled = false`: no pool manager.
    #[error("the resource pool manager is off (pools.enabled = false)")]
    Pools,
    /// `tuner.enabled = false` or `tuner.mode = "off"`: no tuner.
    #[error("the tuner is off (tuner.enabled = false or tuner.mode = \"off\")")]
    Tuner,
    /// `monitoring.enabled = false`: no metrics, history, alerts or dashboard.
    #[error("monitoring is off (monitoring.enabled = false)")]
    Monitoring,
    /// `profiler.heap_profiling = false`: jemalloc samples no allocations.
    #[error("heap profiling is off (set profiler.heap_profiling = true and restart)")]
    HeapProfiles,
}

impl Off {
    /// The subsystem's name, as `/admin/supervisor` and the metrics spell it.
    pub fn subsystem(self) -> &'static str {
        match self {
            Off::Templates => "templates",
            Off::Pools => "pools",
            Off::Tuner => "tuner",
            Off::Monitoring => "monitoring",
            Off::HeapProfiles => "heap_profiles",
        }
    }

    /// The configuration key that switches it on.
    pub fn switch(self) -> &'static str {
        match self {
            Off::Templates => "templates.enabled",
            Off::Pools => "pools.enabled",
            Off::Tuner => "tuner.enabled",
            Off::Monitoring => "monitoring.enabled",
            Off::HeapProfiles => "profiler.heap_profiling",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Off;

    #[test]
    fn every_message_names_its_switch() {
        for off in [
            Off::Templates,
            Off::Pools,
            Off::Tuner,
            Off::Monitoring,
            Off::HeapProfiles,
        ] {
            assert!(off.to_string().contains(off.switch()), "{off}");
        }
    }
}
