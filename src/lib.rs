//! leanserve: a memory-lean, self-healing web runtime on actix-web.
pub mod supervisor;
