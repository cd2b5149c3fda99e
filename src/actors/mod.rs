//! The supervised actors, one per file.

pub mod process;
