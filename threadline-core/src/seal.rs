//! Seals: the canonical encoding of audit rows and the hash chain over them
//! (`guides/compliance.md` spells the encoding out for auditors).
//!
//! Version 1 of the encoding:
//!
//! * Each covered row is an *item*: a transaction (`T`), a change (`C`) or an action (`A`).
//!   Its fields (see [`TRANSACTION_FIELDS`], [`CHANGE_FIELDS`], [`ACTION_FIELDS`]) are read as
//!   text by [`seal_items_sql`]: numbers in decimal, `jsonb` in PostgreSQL's own text form
//!   (keys sorted, whitespace normalized, so it does not depend on how the value was written),
//!   `text[]` as a JSON array, `inet` in its text form and timestamps as microseconds since the
//!   Unix epoch in decimal (no time zone, no rounding).
//! * An item's digest is SHA-256 over `"threadline.seal.v1\0"`, the kind byte, and for each
//!   field in order either `0x00` (NULL) or `0x01`, its length in bytes as a big-endian u64
//!   and its UTF-8 bytes ([`item_digest`]).
//! * A seal's hash is SHA-256 over `"threadline.seal.v1\0"`, `S`, the seal number, `from_txid`
//!   and `to_txid` as big-endian i64, the previous seal's hash (32 zero bytes for the first
//!   seal), then for every item in canonical order (transactions by id, then changes by id,
//!   then actions by id) its kind byte, its id as big-endian i64 and its digest, and last the
//!   three counts (transactions, changes, actions) as big-endian i64 ([`SealHasher`]).
//!
//! A seal hashes the digests of its changes, not the changes themselves, so a change whose
//! columns were erased later still verifies against the digest kept for it.

use sha2::{Digest as _, Sha256};

use crate::ident::Ident;

/// The version of the canonical encoding written into every seal (`audit_seals.encoding_version`).
pub const SEAL_ENCODING_VERSION: i32 = 1;

/// The domain-separation prefix of every digest and seal hash of encoding version 1.
const DOMAIN: &[u8] = b"threadline.seal.v1\0";

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The kind of a sealed row, in canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SealItemKind {
    /// An `audit_transactions` row.
    Transaction,
    /// An `audit_changes` row.
    Change,
    /// An `audit_actions` row.
    Action,
}

impl SealItemKind {
    /// Every kind, in canonical order.
    pub const ALL: [SealItemKind; 3] = [Self::Transaction, Self::Change, Self::Action];

    /// The kind byte (`T`, `C`, `A`), as stored in `audit_seal_items.kind`.
    pub fn code(self) -> u8 {
        match self {
            Self::Transaction => b'T',
            Self::Change => b'C',
            Self::Action => b'A',
        }
    }

    /// The kind of a kind byte.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// `transaction`, `change` or `action`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Transaction => "transaction",
            Self::Change => "change",
            Self::Action => "action",
        }
    }

    fn fields(self) -> &'static [(&'static str, FieldType)] {
        match self {
            Self::Transaction => TRANSACTION_FIELDS,
            Self::Change => CHANGE_FIELDS,
            Self::Action => ACTION_FIELDS,
        }
    }
}

/// How a field is turned into text by [`seal_items_sql`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// `bigint`: decimal.
    Int,
    /// `text`: as is.
    Text,
    /// `jsonb`: PostgreSQL's text form.
    Jsonb,
    /// `text[]`: a JSON array of strings.
    TextArray,
    /// `inet`: its text form.
    Inet,
    /// `timestamptz`: microseconds since the Unix epoch, decimal.
    Timestamp,
}

/// The fields of a transaction item, in encoding order.
pub const TRANSACTION_FIELDS: &[(&str, FieldType)] = &[
    ("id", FieldType::Int),
    ("txid", FieldType::Int),
    ("occurred_at", FieldType::Timestamp),
    ("actor_ref", FieldType::Jsonb),
    ("request_id", FieldType::Text),
    ("correlation_id", FieldType::Text),
    ("remote_ip", FieldType::Inet),
    ("source", FieldType::Text),
    ("meta", FieldType::Jsonb),
    ("trace_id", FieldType::Text),
];

/// The fields of a change item, in encoding order.
pub const CHANGE_FIELDS: &[(&str, FieldType)] = &[
    ("id", FieldType::Int),
    ("transaction_id", FieldType::Int),
    ("table_schema", FieldType::Text),
    ("table_name", FieldType::Text),
    ("table_pk", FieldType::Jsonb),
    ("op", FieldType::Text),
    ("data_after", FieldType::Jsonb),
    ("data_before", FieldType::Jsonb),
    ("changed_fields", FieldType::TextArray),
    ("changed_from", FieldType::Jsonb),
    ("captured_at", FieldType::Timestamp),
];

/// The fields of an action item, in encoding order.
pub const ACTION_FIELDS: &[(&str, FieldType)] = &[
    ("id", FieldType::Int),
    ("txid", FieldType::Int),
    ("name", FieldType::Text),
    ("actor_ref", FieldType::Jsonb),
    ("status", FieldType::Text),
    ("verb", FieldType::Text),
    ("category", FieldType::Text),
    ("reason", FieldType::Text),
    ("comment", FieldType::Text),
    ("correlation_id", FieldType::Text),
    ("request_id", FieldType::Text),
    ("job_id", FieldType::Text),
    ("transaction_id", FieldType::Int),
    ("inserted_at", FieldType::Timestamp),
    ("trace_id", FieldType::Text),
];

/// The digest of one item from its fields as text (`None` for NULL), in the order of its
/// kind's field list.
///
/// ```
/// use threadline_core::seal::{SealItemKind, item_digest};
/// let a = item_digest(SealItemKind::Change, &[Some("1"), None]);
/// let b = item_digest(SealItemKind::Change, &[Some("1"), Some("")]);
/// assert_ne!(a, b); // NULL and the empty string differ
/// ```
pub fn item_digest(kind: SealItemKind, fields: &[Option<&str>]) -> Digest {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update([kind.code()]);
    for field in fields {
        match field {
            None => h.update([0u8]),
            Some(text) => {
                h.update([1u8]);
                h.update((text.len() as u64).to_be_bytes());
                h.update(text.as_bytes());
            }
        }
    }
    h.finalize().into()
}

/// Computes a seal's hash from its header and its items in canonical order.
///
/// ```
/// use threadline_core::seal::{SealHasher, SealItemKind, item_digest, to_hex};
/// let mut hasher = SealHasher::new(1, 0, 100, None);
/// hasher.push(SealItemKind::Transaction, 1, &item_digest(SealItemKind::Transaction, &[Some("1")]));
/// assert_eq!(hasher.counts(), [1, 0, 0]);
/// assert_eq!(to_hex(&hasher.finish()).len(), 64);
/// ```
#[derive(Debug, Clone)]
pub struct SealHasher {
    inner: Sha256,
    counts: [i64; 3],
}

impl SealHasher {
    /// Starts the hash of seal `number` over `[from_txid, to_txid)`, chained to `prev`.
    pub fn new(number: i64, from_txid: i64, to_txid: i64, prev: Option<&Digest>) -> Self {
        let mut inner = Sha256::new();
        inner.update(DOMAIN);
        inner.update(b"S");
        inner.update(number.to_be_bytes());
        inner.update(from_txid.to_be_bytes());
        inner.update(to_txid.to_be_bytes());
        inner.update(prev.copied().unwrap_or([0; 32]));
        Self {
            inner,
            counts: [0; 3],
        }
    }

    /// Adds the next item (items must come in canonical order).
    pub fn push(&mut self, kind: SealItemKind, id: i64, digest: &Digest) {
        self.inner.update([kind.code()]);
        self.inner.update(id.to_be_bytes());
        self.inner.update(digest);
        self.counts[kind as usize] += 1;
    }

    /// Items pushed so far: transactions, changes, actions.
    pub fn counts(&self) -> [i64; 3] {
        self.counts
    }

    /// The seal's hash.
    pub fn finish(self) -> Digest {
        let mut inner = self.inner;
        for count in self.counts {
            inner.update(count.to_be_bytes());
        }
        inner.finalize().into()
    }
}

/// Lowercase hexadecimal.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// A digest from bytes read back from the database (`None` unless exactly 32 bytes).
pub fn digest_from_slice(bytes: &[u8]) -> Option<Digest> {
    bytes.try_into().ok()
}

/// The query streaming the items of one kind whose txid lies in `[$1, $2)`, ordered by id.
/// Each row is `(id bigint, transaction_id bigint, fields text[])`: `transaction_id` is the
/// transaction a change belongs to (the transaction's own id for a transaction, the linked
/// one or NULL for an action), `fields` the item's fields as [`item_digest`] takes them.
/// Changes are covered through their transaction's txid.
///
/// ```
/// use threadline_core::{Ident, seal::{SealItemKind, seal_items_sql}};
/// let sql = seal_items_sql(SealItemKind::Change, &Ident::new("audit")?);
/// assert!(sql.contains(r#""audit".audit_changes"#) && sql.contains("ORDER BY i.id"));
/// # Ok::<(), threadline_core::IdentError>(())
/// ```
pub fn seal_items_sql(kind: SealItemKind, schema: &Ident) -> String {
    let (table, transaction, filter) = match kind {
        SealItemKind::Transaction => (
            "audit_transactions",
            "i.id",
            "i.txid >= $1 AND i.txid < $2".to_owned(),
        ),
        SealItemKind::Change => (
            "audit_changes",
            "i.transaction_id",
            format!(
                "i.transaction_id IN (SELECT t.id FROM {schema}.audit_transactions AS t \
                 WHERE t.txid >= $1 AND t.txid < $2)"
            ),
        ),
        SealItemKind::Action => (
            "audit_actions",
            "i.transaction_id",
            "i.txid >= $1 AND i.txid < $2".to_owned(),
        ),
    };
    items_sql(kind, schema, table, transaction, &filter)
}

/// Like [`seal_items_sql`], for the changes whose ids are in `$1` (a `bigint[]`): what an
/// erasure digests after masking them.
pub fn change_items_by_id_sql(schema: &Ident) -> String {
    items_sql(
        SealItemKind::Change,
        schema,
        "audit_changes",
        "i.transaction_id",
        "i.id = ANY($1::bigint[])",
    )
}

fn items_sql(
    kind: SealItemKind,
    schema: &Ident,
    table: &str,
    transaction: &str,
    filter: &str,
) -> String {
    let fields: Vec<String> = kind
        .fields()
        .iter()
        .map(|(name, ty)| field_text(&format!("i.{name}"), *ty))
        .collect();
    let fields = fields.join(",\n        ");
    format!(
        "SELECT i.id, {transaction}, ARRAY[\n        {fields}\n    ]::text[]\n\
         FROM {schema}.{table} AS i\nWHERE {filter}\nORDER BY i.id"
    )
}

/// The digest an erasure records in its action's comment: SHA-256 over
/// `"threadline.seal.v1\0"`, `E`, then for each erased change in id order its id as
/// big-endian i64 and the digest of its content after masking. It pins the post-erasure
/// digests kept in `audit_erasures` to the (sealed) action.
pub fn erasure_digest(changes: &[(i64, Digest)]) -> Digest {
    let mut sorted: Vec<&(i64, Digest)> = changes.iter().collect();
    sorted.sort_by_key(|(id, _)| *id);
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(b"E");
    for (id, digest) in sorted {
        h.update(id.to_be_bytes());
        h.update(digest);
    }
    h.finalize().into()
}

fn field_text(column: &str, ty: FieldType) -> String {
    match ty {
        FieldType::Int | FieldType::Jsonb | FieldType::Inet => format!("{column}::text"),
        FieldType::Text => column.to_owned(),
        FieldType::TextArray => format!("to_jsonb({column})::text"),
        FieldType::Timestamp => {
            format!("((extract(epoch FROM {column}) * 1000000)::bigint)::text")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest of version 1 is pinned: a change to the encoding must bump the version.
    #[test]
    fn item_digest_is_pinned() {
        let d = item_digest(SealItemKind::Transaction, &[Some("1"), None, Some("{}")]);
        let mut h = Sha256::new();
        h.update(b"threadline.seal.v1\0T");
        h.update([
            1, 0, 0, 0, 0, 0, 0, 0, 1, b'1', 0, 1, 0, 0, 0, 0, 0, 0, 0, 2,
        ]);
        h.update(b"{}");
        let expected: Digest = h.finalize().into();
        assert_eq!(d, expected);
        assert_eq!(
            to_hex(&item_digest(SealItemKind::Change, &[])),
            to_hex(&{
                let mut h = Sha256::new();
                h.update(b"threadline.seal.v1\0C");
                let d: Digest = h.finalize().into();
                d
            })
        );
    }

    /// Field boundaries are unambiguous: moving bytes between fields changes the digest.
    #[test]
    fn field_boundaries_matter() {
        let a = item_digest(SealItemKind::Change, &[Some("ab"), Some("c")]);
        let b = item_digest(SealItemKind::Change, &[Some("a"), Some("bc")]);
        assert_ne!(a, b);
        let c = item_digest(SealItemKind::Action, &[Some("ab"), Some("c")]);
        assert_ne!(a, c, "the kind is part of the digest");
    }

    /// A seal's hash depends on the chain link, the range, each item, their order and counts.
    #[test]
    fn seal_hash_covers_header_items_and_order() {
        let d1 = item_digest(SealItemKind::Change, &[Some("1")]);
        let d2 = item_digest(SealItemKind::Change, &[Some("2")]);
        let hash = |number, from, to, prev: Option<&Digest>, items: &[(i64, Digest)]| {
            let mut h = SealHasher::new(number, from, to, prev);
            for (id, d) in items {
                h.push(SealItemKind::Change, *id, d);
            }
            h.finish()
        };
        let base = hash(2, 10, 20, Some(&d1), &[(1, d1), (2, d2)]);
        assert_eq!(base, hash(2, 10, 20, Some(&d1), &[(1, d1), (2, d2)]));
        assert_ne!(base, hash(3, 10, 20, Some(&d1), &[(1, d1), (2, d2)]));
        assert_ne!(base, hash(2, 11, 20, Some(&d1), &[(1, d1), (2, d2)]));
        assert_ne!(base, hash(2, 10, 21, Some(&d1), &[(1, d1), (2, d2)]));
        assert_ne!(base, hash(2, 10, 20, Some(&d2), &[(1, d1), (2, d2)]));
        assert_ne!(base, hash(2, 10, 20, None, &[(1, d1), (2, d2)]));
        assert_ne!(base, hash(2, 10, 20, Some(&d1), &[(2, d2), (1, d1)]));
        assert_ne!(base, hash(2, 10, 20, Some(&d1), &[(1, d1)]));
        assert_ne!(base, hash(2, 10, 20, Some(&d1), &[(1, d2), (2, d1)]));
    }

    /// The erasure digest is independent of the order changes are listed in, and covers
    /// every id and digest.
    #[test]
    fn erasure_digest_is_order_free_and_complete() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let d = erasure_digest(&[(1, a), (2, b)]);
        assert_eq!(d, erasure_digest(&[(2, b), (1, a)]));
        assert_ne!(d, erasure_digest(&[(1, b), (2, a)]));
        assert_ne!(d, erasure_digest(&[(1, a)]));
        assert_ne!(d, erasure_digest(&[(1, a), (3, b)]));
        assert!(
            change_items_by_id_sql(&Ident::new("public").unwrap()).contains("ANY($1::bigint[])")
        );
    }

    #[test]
    fn kinds_round_trip_and_hex() {
        for kind in SealItemKind::ALL {
            assert_eq!(SealItemKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(SealItemKind::from_code(b'X'), None);
        assert_eq!(to_hex(&[0x00, 0xab, 0x10]), "00ab10");
        assert_eq!(digest_from_slice(&[1; 31]), None);
        assert_eq!(digest_from_slice(&[1; 32]), Some([1; 32]));
    }

    /// Every field is read as text in the query, in the documented order.
    #[test]
    fn items_query_reads_each_field_in_order() {
        let schema = Ident::new("public").unwrap();
        for kind in SealItemKind::ALL {
            let sql = seal_items_sql(kind, &schema);
            let mut at = 0;
            for (name, _) in kind.fields() {
                let found = sql[at..]
                    .find(&format!("i.{name}"))
                    .unwrap_or_else(|| panic!("{name} missing or out of order in {sql}"));
                at += found;
            }
        }
        let sql = seal_items_sql(SealItemKind::Change, &schema);
        assert!(sql.contains("to_jsonb(i.changed_fields)::text"), "{sql}");
        assert!(sql.contains("extract(epoch FROM i.captured_at)"), "{sql}");
    }
}
