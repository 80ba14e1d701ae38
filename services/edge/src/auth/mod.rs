//! Authentication: tokens, passwords and sessions. The HTTP extractors built on them live in
//! `http/extract/auth.rs`.

pub mod jwt;
pub mod password;
pub mod sessions;
