//! leanserve: a memory-lean, self-healing web runtime on actix-web.
pub mod config;
pub mod supervisor;
