//! The configuration tuner's pure part: where the memory limit comes from
//! ([`memory`]), the CPUs threads are sized for ([`cpu`]), the knobs it tunes ([`knob`])
//! and the rules that turn readings into recommendations ([`rules`]). The
//! `tuner` actor (`src/actors/tuner.rs`) gathers the readings every `tuner.interval`,
//! keeps the recommendations and applies the live ones in auto mode.

pub mod cpu;
pub mod knob;
pub mod memory;
pub mod rules;

pub use cpu::{CpuLimit, CpuSource};
pub use knob::{Knob, KnobError};
pub use memory::{LimitSource, MemoryLimit};
pub use rules::{Evidence, Readings, Recommendation, Targets, recommend};
