//! SQL generation: the install schema, per-table capture triggers and the context `BEGIN`.
//!
//! Every identifier is quoted with [`quote_ident`](crate::quote_ident) and every literal with
//! [`quote_literal`](crate::quote_literal) (the context `BEGIN` writes escape-string literals,
//! see [`begin_with_context_sql`]); the output is snapshot-tested.

mod capture;
mod context;
mod harden;
mod install;
mod replication;
mod seal;
mod snapshot;

pub use capture::{CaptureError, CapturePlan, STAMP_PREFIX, TRIGGER_NAMES, capture_function_name};
pub use context::{begin_with_context_sql, begin_with_settings_sql, set_settings_sql};
pub use harden::PINNED_SEARCH_PATH;
pub(crate) use install::CACHED_ACTOR_KEY;
pub use install::{AUDIT_TABLES, InstallOptions, actor_key_sql, install_sql};
pub use replication::{ReplicationSql, replication_sql};
pub use seal::SEAL_TABLES;

/// Picks a dollar-quote tag that does not occur in `body`.
pub(crate) fn dollar_tag(body: &str) -> String {
    let mut n = 0u32;
    loop {
        let tag = if n == 0 {
            "$threadline$".to_owned()
        } else {
            format!("$threadline{n}$")
        };
        if !body.contains(&tag) {
            return tag;
        }
        n += 1;
    }
}

/// 64-bit FNV-1a, used for stable, short name suffixes and stamps.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
