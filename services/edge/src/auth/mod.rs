//! Authentication: tokens, passwords, accounts and sessions, plus the extractors handlers use.

pub mod extract;
pub mod jwt;
pub mod password;
pub mod sessions;
