//! Pure HTTP semantics, free of actix: decisions made from request facts, tested
//! exhaustively here and applied by `src/web`.

pub mod auth;
pub mod conditional;
pub mod dictionary;
pub mod encoding;
pub mod media;
pub mod path;
pub mod range;
