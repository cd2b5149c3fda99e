//! The template engine, pure: no actix. The store actor
//! ([`actors::templates`](crate::actors::templates)) reads the folder, builds the set with
//! these modules and publishes it.

pub mod chain;
pub mod context;
pub mod flatten;
pub mod machinery;
pub mod memory;
pub mod render;
