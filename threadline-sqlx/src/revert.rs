//! Revert (SPEC §11), the half that talks to PostgreSQL: planning reads the target's changes,
//! the tables and the trail; execution serializes per reverted transaction, plans again under
//! the lock, runs the steps on the caller's transaction and records `threadline.revert`.
//! What a plan is, and the SQL of each step, live in `threadline_core::revert`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

use serde_json::Value;
use sqlx::{Connection, PgConnection, Row};
use threadline_core::revert::{
    self, ColumnInfo, LaterChange, PriorValues, REVERT_ACTION, RevertError, RevertPlan,
    RevertTarget, StepStatus, TableState,
};
use threadline_core::sql::TRIGGER_NAMES;
use threadline_core::{
    ActionOptions, ActorRef, AuditAction, AuditChange, CaptureComment, quote_ident,
};

use crate::capture_policy::POLICIES;
use crate::error::{Error, Result};
use crate::threadline::Threadline;

impl Threadline {
    /// Starts a revert of `target`: [`plan`](Revert::plan) it, print it, then
    /// [`execute`](PlannedRevert::execute) it on a transaction you hold, under the reverting
    /// actor.
    ///
    /// ```no_run
    /// # async fn run(threadline: threadline_sqlx::Threadline) -> threadline_sqlx::Result<()> {
    /// use threadline_sqlx::{ActorRef, RevertTarget, TransactionExt};
    /// let plan = threadline.revert(RevertTarget::Transaction(42)).plan().await?;
    /// print!("{}", plan.render());
    /// let mut tx = threadline.pool().begin().await?;
    /// tx.with_actor(&ActorRef::admin("7")?).await?;
    /// let done = plan.execute(&mut tx).await?;
    /// tx.commit().await?;
    /// println!("reverted in transaction {:?}", done.transaction_id);
    /// # Ok(()) }
    /// ```
    pub fn revert(&self, target: RevertTarget) -> Revert<'_> {
        Revert {
            threadline: self,
            target,
            skip_conflicts: false,
        }
    }
}

/// A revert being set up (see [`Threadline::revert`]).
#[derive(Debug)]
#[must_use = "a revert does nothing until it is planned and executed"]
pub struct Revert<'a> {
    threadline: &'a Threadline,
    target: RevertTarget,
    skip_conflicts: bool,
}

impl Revert<'_> {
    /// Skip conflicting and not revertible rows instead of refusing the whole revert; the
    /// outcome lists what was skipped.
    pub fn skip_conflicts(mut self, skip: bool) -> Self {
        self.skip_conflicts = skip;
        self
    }

    /// Plans the revert (reads only). A target without captured changes is
    /// [`RevertError::NothingToRevert`].
    pub async fn plan(self) -> Result<PlannedRevert> {
        self.target.validate()?;
        let mut conn = self.threadline.conn().await?;
        let plan = plan_on(&mut conn, self.threadline, &self.target).await?;
        conn.finish().await?;
        Ok(PlannedRevert {
            threadline: self.threadline.clone(),
            plan,
            skip_conflicts: self.skip_conflicts,
        })
    }
}

/// A planned revert: print it (it derefs to [`RevertPlan`]), then execute it.
#[derive(Debug, Clone)]
pub struct PlannedRevert {
    threadline: Threadline,
    plan: RevertPlan,
    skip_conflicts: bool,
}

impl Deref for PlannedRevert {
    type Target = RevertPlan;

    fn deref(&self) -> &RevertPlan {
        &self.plan
    }
}

/// What an executed revert did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RevertOutcome {
    /// The plan as executed: each step `Applied` or `Skipped`.
    pub plan: RevertPlan,
    /// The `threadline.revert` action, linked to the revert's own transaction.
    pub action: AuditAction,
    /// The revert's own audited transaction (`None` if the audit row could not be linked).
    pub transaction_id: Option<i64>,
}

impl RevertOutcome {
    /// Change ids whose inversion ran.
    pub fn applied(&self) -> Vec<i64> {
        self.plan
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Applied)
            .map(|s| s.change_id)
            .collect()
    }

    /// Steps that were skipped, with why.
    pub fn skipped(&self) -> impl Iterator<Item = &revert::RevertStep> {
        self.plan
            .steps
            .iter()
            .filter(|s| matches!(s.status, StepStatus::Skipped { .. }))
    }
}

impl PlannedRevert {
    /// The plan.
    pub fn plan(&self) -> &RevertPlan {
        &self.plan
    }

    /// Whether conflicting rows are skipped.
    pub fn skips_conflicts(&self) -> bool {
        self.skip_conflicts
    }

    /// Runs the revert inside the transaction `tx` (`&mut tx`), whose actor must be set
    /// (`tx.with_actor(&actor)`): the revert is captured like any write under that actor.
    ///
    /// It takes a transaction-scoped advisory lock per reverted transaction, so that two
    /// reverts of the same changes run one after the other; plans again under the lock (the
    /// second of two concurrent reverts then finds the first's changes as conflicts); refuses
    /// with [`Error::RevertRefused`] (nothing changed) when a row conflicts or cannot be
    /// restored, unless conflicts are skipped; runs each step, checking that the row is as
    /// the reverted change left it; and records the action `threadline.revert` with the
    /// target and the reverted transaction ids. Commit `tx` to keep it.
    pub async fn execute(self, tx: &mut PgConnection) -> Result<RevertOutcome> {
        let conn = tx;
        if !conn.is_in_transaction() {
            return Err(Error::NotInTransaction);
        }
        let threadline = &self.threadline;
        let actor: Option<String> = threadline
            .query("SELECT NULLIF(current_setting('threadline.actor_ref', true), '')")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        let actor = actor
            .as_deref()
            .map(serde_json::from_str::<Value>)
            .transpose()
            .ok()
            .flatten()
            .map(|v| ActorRef::from_value(&v))
            .transpose()?
            .ok_or_else(|| {
                Error::invalid(
                    "actor",
                    "a revert runs under the reverting actor: set it on the transaction first (tx.with_actor(&actor))",
                )
            })?;
        threadline
            .query(revert::LOCK_SQL)
            .bind(sqlx::types::Json(&self.plan.transactions))
            .execute(&mut *conn)
            .await?;
        let mut plan = plan_on(conn, threadline, &self.plan.target).await?;
        if !self.skip_conflicts && !plan.is_clean() {
            return Err(Error::RevertRefused(Box::new(plan)));
        }
        for step in &mut plan.steps {
            let Some(statement) = step
                .statement
                .as_ref()
                .filter(|_| step.status == StepStatus::Ready)
            else {
                let reason = match &step.status {
                    StepStatus::Conflict { later } => format!(
                        "changed later by change {} (transaction {})",
                        later.change_id, later.transaction_id
                    ),
                    StepStatus::NotRevertible { reason } => reason.clone(),
                    other => format!("{other:?}"),
                };
                step.status = StepStatus::Skipped { reason };
                continue;
            };
            let done = threadline
                .bind(statement)
                .execute(&mut *conn)
                .await
                .map_err(|source| Error::RevertStep {
                    change_id: step.change_id,
                    table: step.table.clone(),
                    source,
                })?;
            if done.rows_affected() == 1 {
                step.status = StepStatus::Applied;
            } else if self.skip_conflicts {
                step.status = StepStatus::Skipped {
                    reason: "the row is not as the change left it (changed without capture)"
                        .to_owned(),
                };
            } else {
                return Err(RevertError::RowChanged {
                    change_id: step.change_id,
                    table: step.table.clone(),
                    key: step.key.to_string(),
                }
                .into());
            }
        }
        let options = ActionOptions::new()
            .verb("revert")
            .category(plan.target.kind())
            .comment(revert::action_comment(&plan));
        let action = threadline
            .on(conn)
            .record_action(REVERT_ACTION, &actor, options)
            .await?;
        Ok(RevertOutcome {
            transaction_id: action.transaction_id,
            plan,
            action,
        })
    }
}

/// Plans `target` on `conn`: its changes, the state of their tables, prior images and later
/// changes.
async fn plan_on(
    conn: &mut PgConnection,
    threadline: &Threadline,
    target: &RevertTarget,
) -> Result<RevertPlan> {
    let schema = threadline.schema();
    let changes = threadline
        .fetch_changes(conn, target.changes_statement(schema))
        .await?;
    let changes: Vec<AuditChange> = changes
        .into_iter()
        .filter(|c| c.op != threadline_core::ChangeOp::Snapshot)
        .collect();
    if changes.is_empty() {
        return Err(RevertError::NothingToRevert(target.to_string()).into());
    }
    let names: BTreeSet<(String, String)> = changes
        .iter()
        .map(|c| (c.table_schema.clone(), c.table_name.clone()))
        .collect();
    let policies: Vec<(String, String, Option<String>)> = threadline
        .query(POLICIES)
        .bind(TRIGGER_NAMES.as_slice())
        .bind(schema.as_str())
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<sqlx::Result<_>>()?;
    let mut tables = BTreeMap::new();
    for (s, n) in names {
        let qualified = format!("{}.{}", quote_ident(&s), quote_ident(&n));
        let columns = threadline
            .query(revert::TABLE_COLUMNS_SQL)
            .bind(qualified)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                Ok(ColumnInfo {
                    name: r.try_get("name")?,
                    generated: r.try_get("generated")?,
                    identity_always: r.try_get("identity_always")?,
                })
            })
            .collect::<sqlx::Result<Vec<_>>>()?;
        let mine: Vec<&Option<String>> = policies
            .iter()
            .filter(|(ps, pn, _)| *ps == s && *pn == n)
            .map(|(_, _, c)| c)
            .collect();
        let policy = mine
            .iter()
            .filter_map(|c| c.as_deref())
            .filter_map(|c| CaptureComment::parse(c).policy)
            .find_map(std::result::Result::ok);
        tables.insert(
            (s, n),
            TableState {
                columns,
                audited: !mine.is_empty(),
                policy,
            },
        );
    }
    let ids: Vec<i64> = changes.iter().map(|c| c.id).collect();
    let mut priors = BTreeMap::new();
    let mut later = BTreeMap::new();
    for change in &changes {
        if change.op == threadline_core::ChangeOp::Update && change.changed_from.is_none() {
            let row = threadline
                .bind(&revert::prior_image_statement(schema, change))
                .fetch_optional(&mut *conn)
                .await?;
            let prior = match row {
                Some(row) => {
                    let op: String = row.try_get("op")?;
                    let after: Option<Value> = row.try_get("data_after")?;
                    match (op.as_str(), after) {
                        ("delete", _) | (_, None) => PriorValues::Missing,
                        (_, Some(image)) => PriorValues::Image {
                            change_id: row.try_get("id")?,
                            image,
                        },
                    }
                }
                None => PriorValues::Missing,
            };
            priors.insert(change.id, prior);
        }
        let mut keys = vec![change.table_pk.clone()];
        if let (Some(Value::Object(from)), Value::Object(pk)) =
            (&change.changed_from, &change.table_pk)
        {
            let mut old = pk.clone();
            for (k, v) in from {
                if let Some(slot) = old.get_mut(k) {
                    *slot = v.clone();
                }
            }
            if old != *pk {
                keys.push(Value::Object(old));
            }
        }
        for key in keys {
            let statement = revert::later_change_statement(schema, change, &key, &ids);
            if let Some(row) = threadline
                .bind(&statement)
                .fetch_optional(&mut *conn)
                .await?
            {
                let op: String = row.try_get("op")?;
                let found = LaterChange {
                    change_id: row.try_get("id")?,
                    transaction_id: row.try_get("transaction_id")?,
                    op: op.parse().map_err(|e| sqlx::Error::ColumnDecode {
                        index: "op".into(),
                        source: Box::new(e),
                    })?,
                    actor_ref: row.try_get("actor_ref")?,
                    captured_at: row.try_get("captured_at")?,
                };
                let entry = later.entry(change.id).or_insert_with(|| found.clone());
                if found.change_id < entry.change_id {
                    *entry = found;
                }
            }
        }
    }
    Ok(revert::build_plan(
        schema,
        target.clone(),
        &changes,
        &tables,
        &priors,
        &later,
    )?)
}
