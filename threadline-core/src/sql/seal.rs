//! The seal and erasure tables of the install schema (`guides/compliance.md`).
//!
//! Every statement is additive (`CREATE ... IF NOT EXISTS`, `ADD COLUMN IF NOT EXISTS`), so
//! running the install again over an older install adds them without touching captured rows.

/// The tables that hold seals and erasure records. Like [`AUDIT_TABLES`](super::AUDIT_TABLES)
/// they are never audited, and in a hardened install only the owner role writes them.
pub const SEAL_TABLES: [&str; 3] = ["audit_seals", "audit_seal_items", "audit_erasures"];

/// Appended to the install template; `@S` is replaced by the quoted schema.
pub(crate) const SEAL_SCHEMA: &str = r#"
-- Seals (guides/compliance.md): a hash chain over the trail. Each action records the
-- transaction id that inserted it, so that an action recorded outside any audit transaction
-- falls into exactly one seal's txid range, like the transactions do.
ALTER TABLE @S.audit_actions ADD COLUMN IF NOT EXISTS txid bigint DEFAULT txid_current();
CREATE INDEX IF NOT EXISTS audit_actions_txid_idx ON @S.audit_actions (txid);
CREATE INDEX IF NOT EXISTS audit_transactions_txid_idx ON @S.audit_transactions (txid);

-- Seal N covers the transactions and actions whose txid lies in [from_txid, to_txid).
CREATE TABLE IF NOT EXISTS @S.audit_seals (
    id bigint PRIMARY KEY,
    encoding_version integer NOT NULL,
    from_txid bigint NOT NULL,
    to_txid bigint NOT NULL,
    transaction_count bigint NOT NULL,
    change_count bigint NOT NULL,
    action_count bigint NOT NULL,
    prev_hash bytea,
    hash bytea NOT NULL,
    sealed_at timestamptz NOT NULL DEFAULT now(),
    purged_at timestamptz
);

-- The digest of every sealed row, kept so that verification can locate a difference and so
-- that an erased change still verifies. kind: T transaction, C change, A action.
CREATE TABLE IF NOT EXISTS @S.audit_seal_items (
    kind "char" NOT NULL,
    item_id bigint NOT NULL,
    seal_id bigint NOT NULL,
    transaction_id bigint,
    digest bytea NOT NULL,
    PRIMARY KEY (kind, item_id)
);
CREATE INDEX IF NOT EXISTS audit_seal_items_seal_id_idx ON @S.audit_seal_items (seal_id);

-- Erasure records: which changes an erasure (the threadline.erase action) masked, which
-- columns, and the digest of each change after masking. Never the erased values.
CREATE TABLE IF NOT EXISTS @S.audit_erasures (
    action_id bigint NOT NULL,
    change_id bigint NOT NULL,
    columns text[] NOT NULL,
    digest bytea NOT NULL,
    PRIMARY KEY (action_id, change_id)
);
CREATE INDEX IF NOT EXISTS audit_erasures_change_id_idx ON @S.audit_erasures (change_id);
"#;
