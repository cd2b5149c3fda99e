//! leanserve: a memory-lean, self-healing web runtime on actix-web.
pub mod actors;
pub mod config;
pub mod http;
pub mod runtime;
pub mod supervisor;
pub mod web;
