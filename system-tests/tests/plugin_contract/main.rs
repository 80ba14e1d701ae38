//! The plugin's contract: every call of its core loop, sent byte-shaped as the plugin sends it
//! (field names, strings vs numbers, no `Idempotency-Key`), and every field it reads checked
//! for presence and for the JSON type its parser expects. Each case names the plugin source
//! file it was derived from (`zfogg/sidechain` at 485c970), which is the authority over
//! `PLUGIN-CONTRACT.md` and over our own docs.

// Shared by the case modules; not every JSON type is read by every client call yet.
#[allow(unreachable_pub, dead_code)]
mod shape;

mod audio;
mod auth;
mod feed;
mod users;
