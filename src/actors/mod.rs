//! The supervised actors, one per file (a subsystem with several parts is a folder).

pub mod file_cache;
pub mod monitor;
pub mod pool_manager;
pub mod process;
pub mod profiler;
pub mod templates;
pub mod tuner;
