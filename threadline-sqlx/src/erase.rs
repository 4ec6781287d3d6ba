//! Erasure of one row's personal data from the trail (right to erasure):
//! [`Threadline::plan_erase`] and [`Threadline::erase`].

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{PgConnection, Row};
use threadline_core::query::PrimaryKey;
use threadline_core::seal;
use threadline_core::{ActionOptions, ActorRef, AuditAction, DEFAULT_MASK_PLACEHOLDER, Ident};

use crate::context::TransactionExt;
use crate::error::{Error, Result};
use crate::sql;
use crate::threadline::{IntoTableName, Threadline};

/// The name of the action an erasure records.
pub const ERASE_ACTION: &str = "threadline.erase";

/// What to erase and why.
///
/// ```
/// use threadline_sqlx::EraseOptions;
/// let options = EraseOptions::new("GDPR art. 17 request #1234").columns(["email", "name"]);
/// assert_eq!(options.placeholder, "[REDACTED]");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EraseOptions {
    /// The columns to erase (default: every column of the row except its key).
    pub columns: Option<Vec<String>>,
    /// Why (recorded as the action's reason; required).
    pub reason: String,
    /// What replaces each erased value (default `[REDACTED]`, the mask placeholder).
    pub placeholder: String,
}

impl EraseOptions {
    /// Erase every non-key column, for `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            columns: None,
            reason: reason.into(),
            placeholder: DEFAULT_MASK_PLACEHOLDER.to_owned(),
        }
    }

    /// Erase only these columns.
    #[must_use]
    pub fn columns<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Use this placeholder (e.g. the table's `mask_placeholder`).
    #[must_use]
    pub fn placeholder(mut self, placeholder: impl Into<String>) -> Self {
        self.placeholder = placeholder.into();
        self
    }
}

/// One change an erasure masks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct EraseStep {
    /// The change.
    pub change_id: i64,
    /// Its transaction.
    pub transaction_id: i64,
    /// insert, update, delete, snapshot or truncate.
    pub op: String,
    /// When it was captured.
    pub captured_at: DateTime<Utc>,
    /// The columns holding a value that will be replaced (in any of its images).
    pub columns: Vec<String>,
}

/// What an erasure touches (and, after [`Threadline::erase`], touched).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ErasePlan {
    /// The table, `schema.name`.
    pub table: String,
    /// The row's key as stored (`table_pk`), when anything was captured for it.
    pub key: Option<Value>,
    /// The key columns (never erased).
    pub key_columns: Vec<String>,
    /// The columns erased.
    pub columns: Vec<String>,
    /// Changes captured for the row (all its images, snapshots included).
    pub captured_changes: u64,
    /// The changes holding a value to erase, oldest first.
    pub steps: Vec<EraseStep>,
}

impl ErasePlan {
    /// Whether there is nothing to erase (never captured, or already erased).
    pub fn is_noop(&self) -> bool {
        self.steps.is_empty()
    }

    /// A human-readable report of the plan.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let key = self
            .key
            .as_ref()
            .map_or_else(|| "?".to_owned(), Value::to_string);
        if self.captured_changes == 0 {
            return format!(
                "nothing to erase: no change of {} with key {key} was ever captured\n",
                self.table
            );
        }
        if self.steps.is_empty() {
            return format!(
                "nothing to erase: the {} captured change(s) of {} {key} hold no value of {} (never captured, or already erased)\n",
                self.captured_changes,
                self.table,
                self.columns.join(", ")
            );
        }
        let mut out = format!(
            "erase {} of {} {key} in {} of {} captured change(s):\n",
            self.columns.join(", "),
            self.table,
            self.steps.len(),
            self.captured_changes
        );
        for s in &self.steps {
            let _ = writeln!(
                out,
                "  change {} ({}, transaction {}, {}): {}",
                s.change_id,
                s.op,
                s.transaction_id,
                s.captured_at.to_rfc3339(),
                s.columns.join(", ")
            );
        }
        out
    }
}

/// A done erasure.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Erased {
    /// What was erased.
    pub plan: ErasePlan,
    /// The `threadline.erase` action recording it (`None` when there was nothing to erase).
    pub action: Option<AuditAction>,
}

const CHANGES: &str = "SELECT id, transaction_id, op, captured_at, table_pk, data_after, data_before, changed_from \
     FROM @S.audit_changes WHERE table_schema = $1 AND table_name = $2 AND table_pk = ANY($3::jsonb[]) \
     ORDER BY captured_at, id";

/// Masks `$2` (column names) with `$3` in every image of the changes `$1`.
const MASK: &str = "UPDATE @S.audit_changes SET
        data_after = data_after || coalesce((SELECT jsonb_object_agg(k, to_jsonb($3::text))
            FROM unnest($2::text[]) AS k WHERE data_after ? k), '{}'),
        data_before = data_before || coalesce((SELECT jsonb_object_agg(k, to_jsonb($3::text))
            FROM unnest($2::text[]) AS k WHERE data_before ? k), '{}'),
        changed_from = changed_from || coalesce((SELECT jsonb_object_agg(k, to_jsonb($3::text))
            FROM unnest($2::text[]) AS k WHERE changed_from ? k), '{}')
    WHERE id = ANY($1::bigint[])";

const RECORD: &str = "INSERT INTO @S.audit_erasures (action_id, change_id, columns, digest)
    SELECT $1, c, $3::text[], d FROM unnest($2::bigint[], $4::bytea[]) AS u(c, d)";

impl Threadline {
    /// What [`erase`](Self::erase) would do, changing nothing.
    ///
    /// `pk` is the row's key as for [`history`](Self::history): a scalar for a one-column key
    /// or a JSON object of every key column. A key column cannot be erased
    /// ([`Error::EraseKeyColumn`]).
    pub async fn plan_erase(
        &self,
        table: impl IntoTableName,
        pk: impl Into<PrimaryKey>,
        options: &EraseOptions,
    ) -> Result<ErasePlan> {
        let mut conn = self.pool().acquire().await?;
        let table = table.into_table_name()?;
        plan(self, &mut conn, &table, &pk.into(), options, false).await
    }

    /// Replaces the chosen columns (default every non-key column) with the placeholder in
    /// every captured image of one row (`data_after`, `data_before`, `changed_from`, snapshot
    /// rows included), in one transaction that also records who, when, why and which changes
    /// (never the values) as the action `threadline.erase` and in `audit_erasures`.
    ///
    /// Sealed changes keep verifying: their digests were kept at seal time, and
    /// [`verify_seals`](Self::verify_seals) reports them as erased. Nothing captured, or
    /// nothing left to erase, is not an error: the plan says so and nothing is recorded.
    /// In a hardened install this needs the owner role's privileges.
    pub async fn erase(
        &self,
        table: impl IntoTableName,
        pk: impl Into<PrimaryKey>,
        options: &EraseOptions,
        actor: &ActorRef,
    ) -> Result<Erased> {
        let table = table.into_table_name()?;
        let pk = pk.into();
        let mut tx = self.pool().begin().await?;
        tx.with_actor(actor).await?;
        let plan = plan(self, &mut tx, &table, &pk, options, true).await?;
        if plan.is_noop() {
            tx.rollback().await?;
            return Ok(Erased { plan, action: None });
        }
        let schema = self.schema();
        let ids: Vec<i64> = plan.steps.iter().map(|s| s.change_id).collect();
        self.query(sql::in_schema(MASK, schema))
            .bind(&ids)
            .bind(&plan.columns)
            .bind(&options.placeholder)
            .execute(&mut *tx)
            .await?;
        let digests = self.masked_digests(&mut tx, &ids).await?;
        let pinned = seal::to_hex(&seal::erasure_digest(&digests));
        let mut comment = json!({
            "table": plan.table,
            "key": plan.key,
            "columns": plan.columns,
            "changes": ids,
            "digest": pinned,
        })
        .to_string();
        if comment.len() > threadline_core::MAX_ACTION_FIELD_BYTES {
            comment = json!({
                "table": plan.table,
                "key": plan.key,
                "columns": plan.columns,
                "changes": ids.len(),
                "digest": pinned,
            })
            .to_string();
        }
        let action = self
            .on(&mut tx)
            .record_action(
                ERASE_ACTION,
                actor,
                ActionOptions::new()
                    .verb("erase")
                    .category("erasure")
                    .reason(options.reason.clone())
                    .comment(comment),
            )
            .await?;
        self.query(sql::in_schema(RECORD, schema))
            .bind(action.id)
            .bind(digests.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .bind(&plan.columns)
            .bind(digests.iter().map(|(_, d)| d.to_vec()).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Erased {
            plan,
            action: Some(action),
        })
    }
}

impl Threadline {
    /// The digests of changes as they are now (after masking), by id.
    async fn masked_digests(
        &self,
        conn: &mut PgConnection,
        ids: &[i64],
    ) -> Result<Vec<(i64, seal::Digest)>> {
        let rows = self
            .query(sql::generated(seal::change_items_by_id_sql(self.schema())))
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter()
            .map(|row| {
                let item = crate::seal::current_item(row)?;
                Ok((item.id, item.digest(seal::SealItemKind::Change)))
            })
            .collect()
    }
}

async fn plan(
    threadline: &Threadline,
    conn: &mut PgConnection,
    table: &threadline_core::TableName,
    pk: &PrimaryKey,
    options: &EraseOptions,
    lock: bool,
) -> Result<ErasePlan> {
    if options.reason.trim().is_empty() {
        return Err(Error::invalid(
            "reason",
            "an erasure needs a reason (e.g. the request's reference); it is recorded with the erasure",
        ));
    }
    validate_placeholder(&options.placeholder)?;
    let requested = match &options.columns {
        Some(columns) if columns.is_empty() => {
            return Err(Error::invalid(
                "columns",
                "the list is empty; name at least one column, or leave it out to erase every non-key column",
            ));
        }
        Some(columns) => Some(
            columns
                .iter()
                .map(|c| Ident::new(c.trim()).map(|i| i.as_str().to_owned()))
                .collect::<std::result::Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let mut plan = ErasePlan {
        table: table.display_name(),
        key: None,
        key_columns: Vec::new(),
        columns: requested.clone().unwrap_or_default(),
        captured_changes: 0,
        steps: Vec::new(),
    };
    let Some(candidates) = threadline.on(&mut *conn).candidates(table, pk).await? else {
        plan.key = Some(pk.as_value().clone());
        return Ok(plan);
    };
    let sql = if lock {
        format!("{CHANGES} FOR UPDATE")
    } else {
        CHANGES.to_owned()
    };
    let rows = threadline
        .query(sql::generated(
            sql.replace("@S", &threadline.schema().quoted()),
        ))
        .bind(table.schema().as_str())
        .bind(table.name().as_str())
        .bind(candidates.iter().map(sqlx::types::Json).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
    plan.key = Some(
        rows.first()
            .map(|r| r.try_get::<Value, _>("table_pk"))
            .transpose()?
            .unwrap_or_else(|| pk.as_value().clone()),
    );
    plan.key_columns = match plan.key.as_ref() {
        Some(Value::Object(key)) => key.keys().cloned().collect(),
        _ => Vec::new(),
    };
    plan.captured_changes = rows.len() as u64;
    if let Some(requested) = &requested {
        let keys: Vec<&String> = requested
            .iter()
            .filter(|c| plan.key_columns.contains(c))
            .collect();
        if !keys.is_empty() {
            return Err(Error::EraseKeyColumn {
                table: plan.table,
                columns: keys
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let images = |row: &sqlx::postgres::PgRow| -> sqlx::Result<Vec<Value>> {
        let mut out = Vec::new();
        for column in ["data_after", "data_before", "changed_from"] {
            if let Some(image) = row.try_get::<Option<Value>, _>(column)? {
                out.push(image);
            }
        }
        Ok(out)
    };
    if requested.is_none() {
        let mut all = BTreeSet::new();
        for row in &rows {
            for image in images(row)? {
                if let Value::Object(map) = image {
                    all.extend(
                        map.keys()
                            .filter(|k| !plan.key_columns.contains(k))
                            .cloned(),
                    );
                }
            }
        }
        plan.columns = all.into_iter().collect();
    }
    let placeholder = Value::String(options.placeholder.clone());
    for row in &rows {
        let mut touched = BTreeSet::new();
        for image in images(row)? {
            for column in &plan.columns {
                if image.get(column).is_some_and(|v| *v != placeholder) {
                    touched.insert(column.clone());
                }
            }
        }
        if touched.is_empty() {
            continue;
        }
        plan.steps.push(EraseStep {
            change_id: row.try_get("id")?,
            transaction_id: row.try_get("transaction_id")?,
            op: row.try_get("op")?,
            captured_at: row.try_get("captured_at")?,
            columns: touched.into_iter().collect(),
        });
    }
    Ok(plan)
}

fn validate_placeholder(placeholder: &str) -> Result<()> {
    threadline_core::TableCapture::default()
        .mask_placeholder(placeholder)
        .resolve()
        .map(|_| ())
        .map_err(|e| Error::invalid("placeholder", e.to_string()))
}
