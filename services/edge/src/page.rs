//! A window into a list (feeds, comments, a user's posts): how many items, from where.
//!
//! Neutral ground between the HTTP layer, which parses and bounds it, and the cache client,
//! which forwards it to the cache service.

/// A checked page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Items per page, 1–[`MAX_LIMIT`].
    pub limit: u32,
    /// Items skipped, at most [`MAX_OFFSET`].
    pub offset: u32,
}

/// Items per page when the client does not say.
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest page.
pub const MAX_LIMIT: u32 = 100;
/// Deepest offset: feeds are for browsing, not for walking the whole catalogue.
pub const MAX_OFFSET: u32 = 10_000;
