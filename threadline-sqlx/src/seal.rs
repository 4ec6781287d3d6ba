//! Seals (tamper evidence): [`Threadline::seal`], [`Threadline::verify_seals`] and
//! [`Threadline::seals_covering`]. The canonical encoding lives in
//! [`threadline_core::seal`]; `guides/compliance.md` says what a seal proves.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use threadline_core::seal::{
    self, ACTION_FIELDS, Digest, SEAL_ENCODING_VERSION, SealHasher, SealItemKind,
};

use crate::error::{Error, Result};
use crate::sql;
use crate::threadline::Threadline;

/// Items inserted per statement when a seal stores its digests.
const ITEM_BATCH: usize = 10_000;

/// The columns of `audit_seals` that [`Seal`] reads, in order.
const SEAL_COLUMNS: &str = "id, encoding_version, from_txid, to_txid, transaction_count, \
     change_count, action_count, prev_hash, hash, sealed_at, purged_at";

/// One seal of the chain (`audit_seals`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Seal {
    /// The seal number N (1 for the first seal).
    pub id: i64,
    /// The canonical encoding's version ([`SEAL_ENCODING_VERSION`] for new seals).
    pub encoding_version: i32,
    /// The first txid covered.
    pub from_txid: i64,
    /// The first txid not covered: the oldest transaction still running when the seal was
    /// taken.
    pub to_txid: i64,
    /// Transactions covered.
    pub transaction_count: i64,
    /// Changes covered.
    pub change_count: i64,
    /// Actions covered.
    pub action_count: i64,
    /// The previous seal's hash, lowercase hex (`None` for the first seal).
    pub prev_hash: Option<String>,
    /// This seal's SHA-256, lowercase hex.
    pub hash: String,
    /// When the seal was taken.
    pub sealed_at: DateTime<Utc>,
    /// When a retention purge deleted rows of this seal's range; its content is no longer
    /// verified (the chain link still is).
    pub purged_at: Option<DateTime<Utc>>,
}

impl Seal {
    fn from_row(row: &PgRow) -> sqlx::Result<Self> {
        let prev: Option<Vec<u8>> = row.try_get("prev_hash")?;
        let hash: Vec<u8> = row.try_get("hash")?;
        Ok(Self {
            id: row.try_get("id")?,
            encoding_version: row.try_get("encoding_version")?,
            from_txid: row.try_get("from_txid")?,
            to_txid: row.try_get("to_txid")?,
            transaction_count: row.try_get("transaction_count")?,
            change_count: row.try_get("change_count")?,
            action_count: row.try_get("action_count")?,
            prev_hash: prev.map(|p| seal::to_hex(&p)),
            hash: seal::to_hex(&hash),
            sealed_at: row.try_get("sealed_at")?,
            purged_at: row.try_get("purged_at")?,
        })
    }
}

/// What [`Threadline::seal`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealOutcome {
    /// A new seal was appended.
    Sealed(Seal),
    /// Nothing finished since the last seal; no seal was added.
    NothingNew {
        /// Where the next seal will start.
        from_txid: i64,
    },
    /// Another seal was being taken at the same time; this run did nothing.
    Busy,
}

/// A difference between the sealed trail and the trail as it is now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum SealProblem {
    /// A sealed row's content differs from its sealed digest.
    Modified {
        /// The seal.
        seal: i64,
        /// Transaction, change or action.
        kind: &'static str,
        /// Its id.
        id: i64,
        /// The transaction it belongs to, when known.
        transaction_id: Option<i64>,
    },
    /// A sealed row is gone.
    Deleted {
        /// The seal.
        seal: i64,
        /// Transaction, change or action.
        kind: &'static str,
        /// Its id.
        id: i64,
        /// The transaction it belonged to, when known.
        transaction_id: Option<i64>,
    },
    /// A row lies in a sealed range but was not sealed.
    Inserted {
        /// The seal.
        seal: i64,
        /// Transaction, change or action.
        kind: &'static str,
        /// Its id.
        id: i64,
        /// The transaction it belongs to, when known.
        transaction_id: Option<i64>,
    },
    /// The digests kept for a seal no longer reproduce its hash.
    DigestsAltered {
        /// The seal.
        seal: i64,
    },
    /// An erasure record no longer matches the digest its (sealed) `threadline.erase` action
    /// pinned: `audit_erasures` was altered.
    ErasureRecordAltered {
        /// The erasure's action.
        action_id: i64,
    },
    /// A link of the chain is broken: a seal is missing, or its previous hash or range does
    /// not follow the seal before it.
    BrokenLink {
        /// The seal whose link is broken.
        seal: i64,
        /// What does not match.
        detail: String,
    },
}

impl fmt::Display for SealProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let item = |f: &mut fmt::Formatter<'_>, kind: &str, id: i64, tx: Option<i64>| {
            write!(f, "{kind} {id}")?;
            match (kind, tx) {
                ("change" | "action", Some(tx)) => write!(f, " (transaction {tx})"),
                _ => Ok(()),
            }
        };
        match self {
            Self::Modified {
                seal,
                kind,
                id,
                transaction_id,
            }
            | Self::Deleted {
                seal,
                kind,
                id,
                transaction_id,
            }
            | Self::Inserted {
                seal,
                kind,
                id,
                transaction_id,
            } => {
                let what = match self {
                    Self::Modified { .. } => "was modified after it was sealed",
                    Self::Deleted { .. } => "was deleted after it was sealed",
                    _ => "was inserted into the sealed range",
                };
                write!(f, "seal {seal}: ")?;
                item(f, kind, *id, *transaction_id)?;
                write!(f, " {what}")
            }
            Self::DigestsAltered { seal } => write!(
                f,
                "seal {seal}: the digests kept for its rows do not reproduce its hash (audit_seal_items was altered)"
            ),
            Self::ErasureRecordAltered { action_id } => write!(
                f,
                "erasure {action_id}: its records in audit_erasures do not match the digest its threadline.erase action pinned"
            ),
            Self::BrokenLink { seal, detail } => {
                write!(f, "seal {seal}: broken chain link: {detail}")
            }
        }
    }
}

/// A change whose columns were erased after it was sealed; it verified against the digest
/// kept for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ErasedChange {
    /// The seal covering it.
    pub seal: i64,
    /// The change.
    pub change_id: i64,
    /// The `threadline.erase` action that erased it.
    pub action_id: i64,
}

/// The result of [`Threadline::verify_seals`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SealVerification {
    /// The first seal whose content was checked (`None` when none was).
    pub first_verified: Option<i64>,
    /// The newest seal that a retention purge reached: verification starts after it (the
    /// oldest retained seal), since the rows it covered are partly or wholly gone.
    pub purged_through: Option<i64>,
    /// The newest seal.
    pub head: Option<Seal>,
    /// Seals whose content was checked.
    pub seals: u64,
    /// Transactions checked.
    pub transactions: u64,
    /// Changes checked.
    pub changes: u64,
    /// Actions checked.
    pub actions: u64,
    /// Changes that verified against their kept digest because they were erased.
    pub erased: Vec<ErasedChange>,
    /// Actions whose transaction row was purged (their link was cleared); they verified
    /// against their sealed link.
    pub unlinked_actions: u64,
    /// Every difference found, in chain order; empty when the trail verifies.
    pub problems: Vec<SealProblem>,
}

impl SealVerification {
    /// Whether the chain and every checked seal verified.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The head seal's hash, lowercase hex.
    pub fn head_hash(&self) -> Option<&str> {
        self.head.as_ref().map(|s| s.hash.as_str())
    }
}

/// One kept digest.
struct StoredItem {
    kind: SealItemKind,
    id: i64,
    transaction_id: Option<i64>,
    digest: Digest,
}

/// One row as it is now.
pub(crate) struct CurrentItem {
    pub(crate) id: i64,
    transaction_id: Option<i64>,
    fields: Vec<Option<String>>,
}

impl CurrentItem {
    pub(crate) fn digest(&self, kind: SealItemKind) -> Digest {
        let fields: Vec<Option<&str>> = self.fields.iter().map(Option::as_deref).collect();
        seal::item_digest(kind, &fields)
    }
}

impl Threadline {
    /// Appends a seal covering every transaction and action whose txid lies between the last
    /// seal's end and the oldest transaction still running, with the digest of each
    /// transaction, change and action in it (see `guides/compliance.md`).
    ///
    /// Safe to run from cron: a transaction-scoped advisory lock makes a concurrent run return
    /// [`SealOutcome::Busy`] without doing anything, and a run with nothing new returns
    /// [`SealOutcome::NothingNew`]. Writing seals needs the owner role's privileges in a
    /// hardened install.
    ///
    /// ```no_run
    /// # async fn run(threadline: threadline_sqlx::Threadline) -> threadline_sqlx::Result<()> {
    /// if let threadline_sqlx::SealOutcome::Sealed(seal) = threadline.seal().await? {
    ///     println!("seal {} {}", seal.id, seal.hash);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn seal(&self) -> Result<SealOutcome> {
        let schema = self.schema();
        let mut tx = self.pool().begin().await?;
        let locked: bool = self
            .query(sql::generated(
                "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))".to_owned(),
            ))
            .bind(format!("threadline.seal:{}", schema.quoted()))
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if !locked {
            return Ok(SealOutcome::Busy);
        }
        let to_txid = seal_boundary(self, &mut tx).await?;
        let last = self.last_seal(&mut tx).await?;
        let from_txid = last.as_ref().map_or(0, |s| s.to_txid);
        if to_txid <= from_txid {
            return Ok(SealOutcome::NothingNew { from_txid });
        }
        let number = last.as_ref().map_or(1, |s| s.id + 1);
        let prev = match &last {
            Some(s) => Some(self.seal_hash(&mut tx, s.id).await?),
            None => None,
        };
        let mut hasher = SealHasher::new(number, from_txid, to_txid, prev.as_ref());
        let mut items = Vec::new();
        for kind in SealItemKind::ALL {
            let statement = sql::generated(seal::seal_items_sql(kind, schema));
            let mut rows = self
                .query(statement)
                .bind(from_txid)
                .bind(to_txid)
                .fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                let item = current_item(&row)?;
                let digest = item.digest(kind);
                hasher.push(kind, item.id, &digest);
                items.push(StoredItem {
                    kind,
                    id: item.id,
                    transaction_id: item.transaction_id,
                    digest,
                });
            }
        }
        if items.is_empty() {
            return Ok(SealOutcome::NothingNew { from_txid });
        }
        let counts = hasher.counts();
        let hash = hasher.finish();
        let row = self
            .query(sql::generated(format!(
                "INSERT INTO {schema}.audit_seals (id, encoding_version, from_txid, to_txid, \
                 transaction_count, change_count, action_count, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {SEAL_COLUMNS}"
            )))
            .bind(number)
            .bind(SEAL_ENCODING_VERSION)
            .bind(from_txid)
            .bind(to_txid)
            .bind(counts[0])
            .bind(counts[1])
            .bind(counts[2])
            .bind(prev.map(|p| p.to_vec()))
            .bind(hash.to_vec())
            .fetch_one(&mut *tx)
            .await?;
        let sealed = Seal::from_row(&row)?;
        for chunk in items.chunks(ITEM_BATCH) {
            self.query(sql::generated(format!(
                "INSERT INTO {schema}.audit_seal_items (kind, item_id, seal_id, transaction_id, digest) \
                 SELECT k::\"char\", i, $5, t, d FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[]) AS u(k, i, t, d)"
            )))
            .bind(
                chunk
                    .iter()
                    .map(|i| char::from(i.kind.code()).to_string())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|i| i.id).collect::<Vec<_>>())
            .bind(chunk.iter().map(|i| i.transaction_id).collect::<Vec<_>>())
            .bind(chunk.iter().map(|i| i.digest.to_vec()).collect::<Vec<_>>())
            .bind(number)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        tracing::info!(
            target: "threadline::seal",
            seal = sealed.id,
            from_txid = sealed.from_txid,
            to_txid = sealed.to_txid,
            transactions = sealed.transaction_count,
            changes = sealed.change_count,
            actions = sealed.action_count,
            hash = %sealed.hash,
            "threadline seal"
        );
        Ok(SealOutcome::Sealed(sealed))
    }

    /// Every seal, oldest first.
    pub async fn seals(&self) -> Result<Vec<Seal>> {
        let rows = self
            .query(sql::generated(format!(
                "SELECT {SEAL_COLUMNS} FROM {}.audit_seals ORDER BY id",
                self.schema()
            )))
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(Seal::from_row)
            .collect::<sqlx::Result<_>>()?)
    }

    /// The seals whose txid range overlaps `[from_txid, to_txid)`, oldest first: what an
    /// archive of that range carries so that it can be verified offline.
    pub async fn seals_covering(&self, from_txid: i64, to_txid: i64) -> Result<Vec<Seal>> {
        let mut conn = self.pool().acquire().await?;
        seals_overlapping(&mut conn, self.schema(), from_txid, to_txid).await
    }

    /// Recomputes the chain and the content of every retained seal from `from_seal` (default:
    /// the first), comparing each transaction, change and action with the digest sealed for
    /// it. Differences are returned in [`SealVerification::problems`], not as an error.
    ///
    /// Seals up to the newest one a retention purge reached are not checked for content
    /// ([`SealVerification::purged_through`]); the links of the whole chain are. A change
    /// erased with [`Threadline::erase`] verifies against its kept digest and is listed in
    /// [`SealVerification::erased`].
    pub async fn verify_seals(&self, from_seal: Option<i64>) -> Result<SealVerification> {
        if let Some(n) = from_seal
            && n < 1
        {
            return Err(Error::invalid(
                "from_seal",
                format!("{n} is not a seal number; seals are numbered from 1"),
            ));
        }
        let seals = self.seals().await?;
        let mut out = SealVerification {
            first_verified: None,
            purged_through: seals
                .iter()
                .filter(|s| s.purged_at.is_some())
                .map(|s| s.id)
                .max(),
            head: seals.last().cloned(),
            seals: 0,
            transactions: 0,
            changes: 0,
            actions: 0,
            erased: Vec::new(),
            unlinked_actions: 0,
            problems: Vec::new(),
        };
        if let (Some(n), Some(head)) = (from_seal, &out.head)
            && n > head.id
        {
            return Err(Error::invalid(
                "from_seal",
                format!("seal {n} does not exist; the newest seal is {}", head.id),
            ));
        }
        let start = from_seal.unwrap_or(1);
        check_links(&seals, start, &mut out.problems);
        let content_from = start.max(out.purged_through.map_or(1, |p| p + 1));
        let erasures = self.erasures(&mut out.problems).await?;
        let mut conn = self.pool().acquire().await?;
        for s in seals.iter().filter(|s| s.id >= content_from) {
            out.first_verified.get_or_insert(s.id);
            self.verify_content(&mut conn, s, &erasures, &mut out)
                .await?;
        }
        Ok(out)
    }

    async fn verify_content(
        &self,
        conn: &mut PgConnection,
        s: &Seal,
        erasures: &HashMap<i64, (i64, Digest)>,
        out: &mut SealVerification,
    ) -> Result<()> {
        let schema = self.schema();
        let stored = self.stored_items(conn, s.id).await?;
        let prev = s.prev_hash.as_deref().and_then(parse_hex);
        let mut hasher = SealHasher::new(s.id, s.from_txid, s.to_txid, prev.as_ref());
        for item in &stored {
            hasher.push(item.kind, item.id, &item.digest);
        }
        let counts = hasher.counts();
        if seal::to_hex(&hasher.finish()) != s.hash
            || counts != [s.transaction_count, s.change_count, s.action_count]
        {
            out.problems
                .push(SealProblem::DigestsAltered { seal: s.id });
        }
        out.seals += 1;
        for kind in SealItemKind::ALL {
            let mut kept = stored.iter().filter(|i| i.kind == kind).peekable();
            let statement = sql::generated(seal::seal_items_sql(kind, schema));
            let mut rows = self
                .query(statement)
                .bind(s.from_txid)
                .bind(s.to_txid)
                .fetch(&mut *conn);
            while let Some(row) = rows.try_next().await? {
                let item = current_item(&row)?;
                while let Some(k) = kept.next_if(|k| k.id < item.id) {
                    out.problems.push(SealProblem::Deleted {
                        seal: s.id,
                        kind: kind.name(),
                        id: k.id,
                        transaction_id: k.transaction_id,
                    });
                }
                let Some(k) = kept.next_if(|k| k.id == item.id) else {
                    out.problems.push(SealProblem::Inserted {
                        seal: s.id,
                        kind: kind.name(),
                        id: item.id,
                        transaction_id: item.transaction_id,
                    });
                    continue;
                };
                match kind {
                    SealItemKind::Transaction => out.transactions += 1,
                    SealItemKind::Change => out.changes += 1,
                    SealItemKind::Action => out.actions += 1,
                }
                if item.digest(kind) == k.digest {
                    continue;
                }
                if kind == SealItemKind::Change
                    && let Some((action_id, after)) = erasures.get(&item.id)
                    && item.digest(kind) == *after
                {
                    out.erased.push(ErasedChange {
                        seal: s.id,
                        change_id: item.id,
                        action_id: *action_id,
                    });
                    continue;
                }
                if kind == SealItemKind::Action && self.unlinked_by_purge(&item, k).await? {
                    out.unlinked_actions += 1;
                    continue;
                }
                out.problems.push(SealProblem::Modified {
                    seal: s.id,
                    kind: kind.name(),
                    id: item.id,
                    transaction_id: item.transaction_id.or(k.transaction_id),
                });
            }
            for k in kept {
                out.problems.push(SealProblem::Deleted {
                    seal: s.id,
                    kind: kind.name(),
                    id: k.id,
                    transaction_id: k.transaction_id,
                });
            }
        }
        Ok(())
    }

    /// Whether an action differs from its sealed digest only because retention deleted the
    /// transaction row it was linked to (which clears the link).
    async fn unlinked_by_purge(&self, item: &CurrentItem, kept: &StoredItem) -> Result<bool> {
        let (None, Some(linked)) = (item.transaction_id, kept.transaction_id) else {
            return Ok(false);
        };
        let Some(at) = ACTION_FIELDS
            .iter()
            .position(|(name, _)| *name == "transaction_id")
        else {
            return Ok(false);
        };
        let mut fields = item.fields.clone();
        fields[at] = Some(linked.to_string());
        let relinked = CurrentItem {
            id: item.id,
            transaction_id: Some(linked),
            fields,
        };
        if relinked.digest(SealItemKind::Action) != kept.digest {
            return Ok(false);
        }
        let exists: bool = self
            .query(sql::generated(format!(
                "SELECT EXISTS (SELECT 1 FROM {}.audit_transactions WHERE id = $1)",
                self.schema()
            )))
            .bind(linked)
            .fetch_one(self.pool())
            .await?
            .try_get(0)?;
        Ok(!exists)
    }

    async fn last_seal(&self, conn: &mut PgConnection) -> Result<Option<Seal>> {
        let row = self
            .query(sql::generated(format!(
                "SELECT {SEAL_COLUMNS} FROM {}.audit_seals ORDER BY id DESC LIMIT 1",
                self.schema()
            )))
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.as_ref().map(Seal::from_row).transpose()?)
    }

    async fn seal_hash(&self, conn: &mut PgConnection, id: i64) -> Result<Digest> {
        let hash: Vec<u8> = self
            .query(sql::generated(format!(
                "SELECT hash FROM {}.audit_seals WHERE id = $1",
                self.schema()
            )))
            .bind(id)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        seal::digest_from_slice(&hash).ok_or_else(|| {
            Error::invalid(
                "audit_seals.hash",
                format!(
                    "seal {id} holds a hash of {} bytes, not 32; run threadline verify-seals",
                    hash.len()
                ),
            )
        })
    }

    async fn stored_items(&self, conn: &mut PgConnection, seal_id: i64) -> Result<Vec<StoredItem>> {
        let mut rows = self
            .query(sql::generated(format!(
                "SELECT kind::text, item_id, transaction_id, digest FROM {}.audit_seal_items \
                 WHERE seal_id = $1 ORDER BY position(kind::text IN 'TCA'), item_id",
                self.schema()
            )))
            .bind(seal_id)
            .fetch(&mut *conn);
        // Streamed into compact items: a seal of a million changes keeps about 64 MB here.
        let mut items = Vec::new();
        while let Some(row) = rows.try_next().await? {
            let kind: String = row.try_get(0)?;
            let digest: Vec<u8> = row.try_get(3)?;
            let kind = kind.bytes().next().and_then(SealItemKind::from_code);
            let (Some(kind), Some(digest)) = (kind, seal::digest_from_slice(&digest)) else {
                // An unreadable kept digest cannot match anything: the seal's hash check
                // reports the seal, and the row it stood for is reported missing.
                continue;
            };
            items.push(StoredItem {
                kind,
                id: row.try_get(1)?,
                transaction_id: row.try_get(2)?,
                digest,
            });
        }
        Ok(items)
    }

    /// Erased changes with the latest `threadline.erase` action that erased each and the
    /// digest it recorded after masking. An erasure whose records no longer match the digest
    /// its action pinned is reported, and its records are not used.
    async fn erasures(
        &self,
        problems: &mut Vec<SealProblem>,
    ) -> Result<HashMap<i64, (i64, Digest)>> {
        let rows = self
            .query(sql::generated(format!(
                "SELECT a.id, a.comment, array_agg(e.change_id ORDER BY e.change_id), \
                 array_agg(e.digest ORDER BY e.change_id) \
                 FROM {s}.audit_erasures AS e \
                 JOIN {s}.audit_actions AS a ON a.id = e.action_id AND a.name = $1 \
                 GROUP BY a.id, a.comment ORDER BY a.id",
                s = self.schema()
            )))
            .bind(crate::erase::ERASE_ACTION)
            .fetch_all(self.pool())
            .await?;
        let mut out = HashMap::new();
        for row in rows {
            let action_id: i64 = row.try_get(0)?;
            let comment: Option<String> = row.try_get(1)?;
            let ids: Vec<i64> = row.try_get(2)?;
            let digests: Vec<Vec<u8>> = row.try_get(3)?;
            let records: Option<Vec<(i64, Digest)>> = ids
                .into_iter()
                .zip(digests)
                .map(|(id, d)| seal::digest_from_slice(&d).map(|d| (id, d)))
                .collect();
            let pinned = comment
                .and_then(|c| serde_json::from_str::<serde_json::Value>(&c).ok())
                .and_then(|c| c.get("digest").and_then(|d| d.as_str()).map(str::to_owned));
            match records {
                Some(records)
                    if pinned.as_deref()
                        == Some(seal::to_hex(&seal::erasure_digest(&records)).as_str()) =>
                {
                    // Later erasures of the same change replace earlier ones (ordered by id).
                    out.extend(records.into_iter().map(|(id, d)| (id, (action_id, d))));
                }
                _ => problems.push(SealProblem::ErasureRecordAltered { action_id }),
            }
        }
        Ok(out)
    }
}

/// Checks every link from seal `start` on: numbering, previous hash and contiguous ranges.
fn check_links(seals: &[Seal], start: i64, problems: &mut Vec<SealProblem>) {
    let mut previous: Option<&Seal> = None;
    for s in seals {
        if s.id >= start {
            let broken = |detail: String| SealProblem::BrokenLink { seal: s.id, detail };
            match previous {
                None if s.id == 1 => {
                    if s.prev_hash.is_some() || s.from_txid != 0 {
                        problems.push(broken(
                            "the first seal must start at txid 0 with no previous hash".to_owned(),
                        ));
                    }
                }
                None if s.id == start => {}
                None => problems.push(broken(format!("seals {start} to {} are missing", s.id - 1))),
                Some(p) if p.id != s.id - 1 => problems.push(broken(format!(
                    "seals {} to {} are missing",
                    p.id + 1,
                    s.id - 1
                ))),
                Some(p) => {
                    if s.prev_hash.as_deref() != Some(p.hash.as_str()) {
                        problems.push(broken(format!(
                            "its previous hash {} is not seal {}'s hash {}",
                            s.prev_hash.as_deref().unwrap_or("(none)"),
                            p.id,
                            p.hash
                        )));
                    }
                    if s.from_txid != p.to_txid {
                        problems.push(broken(format!(
                            "its range starts at txid {} but seal {} ended at {}",
                            s.from_txid, p.id, p.to_txid
                        )));
                    }
                }
            }
        }
        previous = Some(s);
    }
}

/// The end of the next seal's range: the oldest transaction of this database still running
/// (or prepared), else the next txid to be assigned. Transactions of other databases of the
/// cluster never write this trail, so they do not hold sealing back.
///
/// Two statements, in this order: the snapshot's xmax first, then the running transactions'
/// xid locks. A transaction that got its xid before the first is still running at the second
/// (and listed) or has finished; one that gets its xid later has one at or above xmax.
/// Sealing itself has no xid yet.
async fn seal_boundary(threadline: &Threadline, conn: &mut PgConnection) -> Result<i64> {
    let xmax: i64 = threadline
        .query(sql::generated(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint".to_owned(),
        ))
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let oldest: Option<i64> = threadline
        .query(sql::generated(RUNNING.to_owned()))
        .bind(xmax)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    Ok(oldest.map_or(xmax, |o| o.min(xmax)))
}

/// The oldest running or prepared transaction of this database, its 32-bit xid widened
/// against `$1` (the snapshot's xmax; a running xid is always within 2^32 of it).
const RUNNING: &str = "SELECT min($1 - (($1 - x) % 4294967296 + 4294967296) % 4294967296)
    FROM (
        SELECT l.transactionid::text::bigint AS x
        FROM pg_catalog.pg_locks AS l
        JOIN pg_catalog.pg_stat_activity AS a ON a.pid = l.pid
        WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
          AND a.datname = current_database()
        UNION ALL
        SELECT p.transaction::text::bigint FROM pg_catalog.pg_prepared_xacts AS p
        WHERE p.database = current_database()
    ) AS running";

pub(crate) fn current_item(row: &PgRow) -> Result<CurrentItem> {
    Ok(CurrentItem {
        id: row.try_get(0)?,
        transaction_id: row.try_get(1)?,
        fields: row.try_get(2)?,
    })
}

fn parse_hex(hex: &str) -> Option<Digest> {
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect();
    bytes.and_then(|b| seal::digest_from_slice(&b))
}

/// After a retention purge or a partition drop: marks every seal whose rows were (partly)
/// deleted, and every older seal, as purged, and drops their kept digests. Verification then
/// starts from the oldest retained seal and says so. Does nothing on an install without seals.
pub async fn record_purged_seals(
    conn: &mut PgConnection,
    schema: &threadline_core::Ident,
) -> Result<u64> {
    if !seals_installed(conn, schema).await? {
        return Ok(0);
    }
    let marked: i64 = sqlx::query_scalar(sql::in_schema(PURGED, schema))
        .fetch_one(&mut *conn)
        .await?;
    Ok(marked as u64)
}

const PURGED: &str = "WITH touched AS (
        SELECT max(s.id) AS id FROM @S.audit_seals AS s
        WHERE s.purged_at IS NULL AND EXISTS (
            SELECT 1 FROM @S.audit_seal_items AS i
            WHERE i.seal_id = s.id AND (
                (i.kind = 'T' AND NOT EXISTS (
                    SELECT 1 FROM @S.audit_transactions AS t WHERE t.id = i.item_id))
                OR (i.kind = 'C' AND NOT EXISTS (
                    SELECT 1 FROM @S.audit_changes AS c WHERE c.id = i.item_id))))
    ), marked AS (
        UPDATE @S.audit_seals AS s SET purged_at = now()
        WHERE s.purged_at IS NULL AND s.id <= (SELECT id FROM touched)
        RETURNING s.id
    ), dropped AS (
        DELETE FROM @S.audit_seal_items AS i WHERE i.seal_id IN (SELECT id FROM marked)
    )
    SELECT count(*) FROM marked";

/// Whether the install has the seal tables (an install from before seals has none).
async fn seals_installed(conn: &mut PgConnection, schema: &threadline_core::Ident) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT to_regclass(pg_catalog.format('%I.audit_seals', $1::text)) IS NOT NULL",
    )
    .bind(schema.as_str())
    .fetch_one(&mut *conn)
    .await?)
}

/// The seals whose txid range overlaps `[from_txid, to_txid)`, oldest first (none on an
/// install without seals).
pub(crate) async fn seals_overlapping(
    conn: &mut PgConnection,
    schema: &threadline_core::Ident,
    from_txid: i64,
    to_txid: i64,
) -> Result<Vec<Seal>> {
    if to_txid <= from_txid {
        return Err(Error::invalid(
            "txid range",
            format!("[{from_txid}, {to_txid}) is empty; give from_txid < to_txid"),
        ));
    }
    if !seals_installed(conn, schema).await? {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(sql::generated(format!(
        "SELECT {SEAL_COLUMNS} FROM {schema}.audit_seals \
         WHERE from_txid < $2 AND to_txid > $1 ORDER BY id"
    )))
    .bind(from_txid)
    .bind(to_txid)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(Seal::from_row)
        .collect::<sqlx::Result<_>>()?)
}
