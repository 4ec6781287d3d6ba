//! The concurrency stress run: writers hammer overlapping rows of audited tables, then the
//! audit trail is checked against what the writers themselves counted as committed.
//!
//! Each writer runs transactions of 1 to 12 statements (single-row updates, 500-row updates,
//! no-op updates, bulk inserts, deletes), rolls back some whole transactions and some
//! savepoints, and counts, per table and operation, the rows its *committed* work changed.
//! The workload takes row locks in one global order (table, then id), so it cannot deadlock
//! by itself: any deadlock would come from the audit path, and is counted and reported.
//!
//! Run it with `cargo run --release -p threadline-sqlx --example stress -- --seconds 60`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use threadline_sqlx::{ActorRef, InstallOptions, TableCapture, TransactionExt};

use crate::TestDb;

/// Settings of a stress run.
#[derive(Debug, Clone)]
pub struct StressConfig {
    /// How long the writers run.
    pub duration: Duration,
    /// Concurrent writers, each on its own connection with its own actor.
    pub writers: usize,
    /// Audited tables.
    pub tables: usize,
    /// Rows per table that every writer may update.
    pub shared_rows: i32,
    /// Rows in a bulk update.
    pub bulk_rows: i32,
    /// Seed of the pseudo-random workload.
    pub seed: u64,
}

impl Default for StressConfig {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(60),
            writers: 16,
            tables: 4,
            shared_rows: 20_000,
            bulk_rows: 500,
            seed: 0x7468_7265_6164,
        }
    }
}

/// What a stress run did and what the checks found.
#[derive(Debug, Clone, Default)]
pub struct StressReport {
    /// Wall time of the writers.
    pub elapsed: Duration,
    /// Transactions committed.
    pub committed: u64,
    /// Transactions rolled back on purpose.
    pub rolled_back: u64,
    /// Savepoints rolled back on purpose.
    pub savepoints_rolled_back: u64,
    /// Statements executed (including rolled-back ones).
    pub statements: u64,
    /// Deadlocks (SQLSTATE 40P01) the writers hit, with the server's message.
    pub deadlocks: Vec<String>,
    /// Row changes the writers counted as committed (no-op updates excluded).
    pub expected_changes: u64,
    /// Rows in `audit_changes`.
    pub captured_changes: u64,
    /// `(actor, table, op, expected, captured)` for every group whose counts differ.
    pub mismatches: Vec<(String, String, String, u64, u64)>,
    /// Captured changes written by a rolled-back transaction or savepoint.
    pub rolled_back_captured: u64,
    /// Changes whose `audit_transactions` row is missing.
    pub orphan_changes: u64,
    /// `audit_transactions` rows without any change.
    pub empty_transactions: u64,
    /// Changes whose row image names another writer than the transaction's actor.
    pub misattributed: u64,
    /// Tables whose live `sum(v)` differs from the committed increments.
    pub live_mismatches: Vec<String>,
}

impl StressReport {
    /// Every check passed.
    pub fn is_clean(&self) -> bool {
        self.deadlocks.is_empty()
            && self.expected_changes == self.captured_changes
            && self.mismatches.is_empty()
            && self.rolled_back_captured == 0
            && self.orphan_changes == 0
            && self.empty_transactions == 0
            && self.misattributed == 0
            && self.live_mismatches.is_empty()
    }
}

impl std::fmt::Display for StressReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        writeln!(f, "duration:                {secs:.1} s")?;
        writeln!(
            f,
            "transactions:            {} committed ({:.0}/s), {} rolled back, {} savepoints rolled back",
            self.committed,
            self.committed as f64 / secs,
            self.rolled_back,
            self.savepoints_rolled_back
        )?;
        writeln!(f, "statements:              {}", self.statements)?;
        writeln!(
            f,
            "row changes:             {} committed (counted by the writers), {} captured",
            self.expected_changes, self.captured_changes
        )?;
        writeln!(f, "per-group mismatches:    {:?}", self.mismatches)?;
        writeln!(f, "from rolled-back work:   {}", self.rolled_back_captured)?;
        writeln!(f, "changes without tx row:  {}", self.orphan_changes)?;
        writeln!(f, "tx rows without change:  {}", self.empty_transactions)?;
        writeln!(f, "misattributed changes:   {}", self.misattributed)?;
        writeln!(f, "live-data mismatches:    {:?}", self.live_mismatches)?;
        writeln!(f, "deadlocks:               {}", self.deadlocks.len())?;
        for d in self.deadlocks.iter().take(3) {
            writeln!(f, "  {d}")?;
        }
        write!(
            f,
            "result:                  {}",
            if self.is_clean() { "CLEAN" } else { "FAILED" }
        )
    }
}

/// SplitMix64: small, seedable, good enough to vary a workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Update,
    NoopUpdate,
    Insert,
    Delete,
}

/// One planned statement over ids `lo..=hi` of table `table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Stmt {
    table: usize,
    lo: i32,
    hi: i32,
    kind: Kind,
    savepoint: Savepoint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Savepoint {
    None,
    Released,
    RolledBack,
}

/// Committed counts of one writer: (table, op) -> rows changed; table -> sum of increments.
#[derive(Debug, Default)]
struct Tally {
    changes: BTreeMap<(usize, &'static str), u64>,
    increments: BTreeMap<usize, i64>,
    committed: u64,
    rolled_back: u64,
    savepoints_rolled_back: u64,
    statements: u64,
    deadlocks: Vec<String>,
}

/// Creates the tables, attaches capture, runs the writers and checks the trail.
pub async fn run(config: &StressConfig) -> StressReport {
    let db = TestDb::installed().await;
    for t in 0..config.tables {
        db.exec(&format!(
            "CREATE TABLE stress_{t} (id int PRIMARY KEY, v bigint NOT NULL, note text NOT NULL);
             INSERT INTO stress_{t} SELECT g, 0, 'seed' FROM generate_series(0, {}) g;",
            config.shared_rows - 1
        ))
        .await;
        threadline_sqlx::audit_table(
            &db.pool,
            &InstallOptions::default(),
            &format!("stress_{t}").parse().expect("table name"),
            &TableCapture::default(),
        )
        .await
        .expect("attach capture");
    }
    // Seeding happened before capture; the trail starts empty.
    let started = Instant::now();
    let deadline = started + config.duration;
    let mut handles = Vec::new();
    for w in 0..config.writers {
        let conn = db.connect().await;
        let cfg = config.clone();
        handles.push(tokio::spawn(async move {
            writer(conn, w, &cfg, deadline).await
        }));
    }
    let mut tallies = Vec::new();
    for h in handles {
        tallies.push(h.await.expect("writer task panicked"));
    }
    let elapsed = started.elapsed();
    let report = check(&db, config, &tallies, elapsed).await;
    drop(db);
    report
}

async fn writer(mut conn: PgConnection, w: usize, cfg: &StressConfig, deadline: Instant) -> Tally {
    let mut rng = Rng(cfg.seed ^ (w as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let actor = ActorRef::user(format!("writer-{w}")).expect("actor");
    let mut tally = Tally::default();
    // Committed inserted ranges of this writer, per table: only this writer deletes them.
    let mut own: Vec<(usize, i32, i32)> = Vec::new();
    let own_base = cfg.shared_rows + 1_000_000 * (w as i32 + 1);
    let mut next_own = own_base;
    let mut tx_no: u64 = 0;
    while Instant::now() < deadline {
        tx_no += 1;
        let rollback = rng.chance(10);
        let mut plan = Vec::new();
        let mut deleting = Vec::new();
        for _ in 0..=rng.below(12) {
            let table = rng.below(cfg.tables as u64) as usize;
            let savepoint = match rng.below(100) {
                0..=9 => Savepoint::RolledBack,
                10..=19 => Savepoint::Released,
                _ => Savepoint::None,
            };
            let (lo, hi, kind) = match rng.below(100) {
                0..=49 => {
                    let id = rng.below(cfg.shared_rows as u64) as i32;
                    (id, id, Kind::Update)
                }
                50..=59 => {
                    let lo = rng.below((cfg.shared_rows - cfg.bulk_rows + 1) as u64) as i32;
                    (lo, lo + cfg.bulk_rows - 1, Kind::Update)
                }
                60..=64 => {
                    let id = rng.below(cfg.shared_rows as u64) as i32;
                    (id, id, Kind::NoopUpdate)
                }
                65..=89 => {
                    let n = 1 + rng.below(50) as i32;
                    let lo = next_own;
                    next_own += n;
                    (lo, lo + n - 1, Kind::Insert)
                }
                _ if !own.is_empty() => {
                    let i = rng.below(own.len() as u64) as usize;
                    let (t, lo, hi) = own.swap_remove(i);
                    deleting.push((t, lo, hi));
                    plan.push(Stmt {
                        table: t,
                        lo,
                        hi,
                        kind: Kind::Delete,
                        savepoint,
                    });
                    continue;
                }
                _ => continue,
            };
            plan.push(Stmt {
                table,
                lo,
                hi,
                kind,
                savepoint,
            });
        }
        // One global lock order: by table, then by first id. Within a statement rows are
        // locked in id order, so every transaction takes new row locks in increasing order.
        plan.sort();
        let note = |s: &Stmt| {
            let state = if rollback || s.savepoint == Savepoint::RolledBack {
                "rb"
            } else {
                "ok"
            };
            format!("{state}:{w}:{tx_no}")
        };
        match run_transaction(&mut conn, &actor, &plan, rollback, &note, &mut tally).await {
            Ok(Some(done)) => {
                tally.committed += 1;
                for (s, rows) in plan.iter().zip(done) {
                    let Some(rows) = rows else {
                        // A delete whose savepoint rolled back left its rows in place.
                        if s.kind == Kind::Delete {
                            own.push((s.table, s.lo, s.hi));
                        }
                        continue;
                    };
                    let op = match s.kind {
                        Kind::Update => "update",
                        Kind::NoopUpdate => continue,
                        Kind::Insert => "insert",
                        Kind::Delete => "delete",
                    };
                    *tally.changes.entry((s.table, op)).or_default() += rows;
                    match s.kind {
                        Kind::Update => {
                            *tally.increments.entry(s.table).or_default() += rows as i64
                        }
                        Kind::Insert => own.push((s.table, s.lo, s.hi)),
                        _ => {}
                    }
                }
            }
            Ok(None) => {
                tally.rolled_back += 1;
                own.extend(deleting);
            }
            Err(e) if is_deadlock(&e) => {
                tally.deadlocks.push(e.to_string());
                own.extend(deleting);
            }
            Err(e) => panic!("writer {w}: unexpected error: {e}"),
        }
    }
    tally
}

fn is_deadlock(e: &threadline_sqlx::Error) -> bool {
    matches!(e, threadline_sqlx::Error::Database(sqlx::Error::Database(d)) if d.code().as_deref() == Some("40P01"))
}

/// Runs one planned transaction. `Ok(None)` when it was rolled back on purpose; otherwise the
/// rows each statement changed, `None` for statements whose savepoint was rolled back.
async fn run_transaction(
    conn: &mut PgConnection,
    actor: &ActorRef,
    plan: &[Stmt],
    rollback: bool,
    note: &(dyn Fn(&Stmt) -> String + Sync),
    tally: &mut Tally,
) -> Result<Option<Vec<Option<u64>>>, threadline_sqlx::Error> {
    let mut tx = conn.begin().await?;
    tx.with_actor(actor).await?;
    let mut done = Vec::with_capacity(plan.len());
    for s in plan {
        tally.statements += 1;
        let table = format!("stress_{}", s.table);
        let sql = match s.kind {
            Kind::Update => format!(
                "UPDATE {table} SET v = v + 1, note = $3 WHERE id IN
                 (SELECT id FROM {table} WHERE id BETWEEN $1 AND $2 ORDER BY id FOR UPDATE)"
            ),
            Kind::NoopUpdate => format!(
                "UPDATE {table} SET v = v WHERE id IN
                 (SELECT id FROM {table} WHERE id BETWEEN $1 AND $2 AND $3 <> '' ORDER BY id FOR UPDATE)"
            ),
            Kind::Insert => format!(
                "INSERT INTO {table} (id, v, note) SELECT g, 0, $3 FROM generate_series($1::int, $2::int) g"
            ),
            Kind::Delete => format!(
                "DELETE FROM {table} WHERE id IN
                 (SELECT id FROM {table} WHERE id BETWEEN $1 AND $2 AND $3 <> '' ORDER BY id FOR UPDATE)"
            ),
        };
        let query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(s.lo)
            .bind(s.hi)
            .bind(note(s));
        if s.savepoint == Savepoint::None {
            done.push(Some(query.execute(&mut *tx).await?.rows_affected()));
            continue;
        }
        let mut sp = tx.begin().await?;
        let rows = query.execute(&mut *sp).await?.rows_affected();
        if s.savepoint == Savepoint::RolledBack {
            sp.rollback().await?;
            tally.savepoints_rolled_back += 1;
            done.push(None);
        } else {
            sp.commit().await?;
            done.push(Some(rows));
        }
    }
    if rollback {
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(done))
}

async fn count(db: &TestDb, sql: &'static str) -> u64 {
    let n: i64 = sqlx::query_scalar(sql)
        .fetch_one(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
    n as u64
}

async fn check(
    db: &TestDb,
    config: &StressConfig,
    tallies: &[Tally],
    elapsed: Duration,
) -> StressReport {
    let mut report = StressReport {
        elapsed,
        ..StressReport::default()
    };
    let mut expected: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut increments: BTreeMap<usize, i64> = BTreeMap::new();
    for (w, t) in tallies.iter().enumerate() {
        report.committed += t.committed;
        report.rolled_back += t.rolled_back;
        report.savepoints_rolled_back += t.savepoints_rolled_back;
        report.statements += t.statements;
        report.deadlocks.extend(t.deadlocks.iter().cloned());
        for ((table, op), n) in &t.changes {
            report.expected_changes += n;
            *expected
                .entry((
                    format!("writer-{w}"),
                    format!("stress_{table}"),
                    (*op).to_owned(),
                ))
                .or_default() += n;
        }
        for (table, n) in &t.increments {
            *increments.entry(*table).or_default() += n;
        }
    }
    report.captured_changes = count(db, "SELECT count(*) FROM audit_changes").await;
    let captured: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT t.actor_ref ->> 'id', c.table_name, c.op, count(*)
         FROM audit_changes c JOIN audit_transactions t ON t.id = c.transaction_id
         GROUP BY 1, 2, 3",
    )
    .fetch_all(&db.pool)
    .await
    .expect("captured groups");
    let mut captured: BTreeMap<(String, String, String), u64> = captured
        .into_iter()
        .map(|(a, t, o, n)| ((a, t, o), n as u64))
        .collect();
    for (key, n) in &expected {
        let got = captured.remove(key).unwrap_or(0);
        if got != *n {
            report
                .mismatches
                .push((key.0.clone(), key.1.clone(), key.2.clone(), *n, got));
        }
    }
    for (key, got) in captured {
        report.mismatches.push((key.0, key.1, key.2, 0, got));
    }
    report.rolled_back_captured = count(
        db,
        "SELECT count(*) FROM audit_changes WHERE data_after ->> 'note' LIKE 'rb:%'",
    )
    .await;
    report.orphan_changes = count(
        db,
        "SELECT count(*) FROM audit_changes c
         WHERE NOT EXISTS (SELECT 1 FROM audit_transactions t WHERE t.id = c.transaction_id)",
    )
    .await;
    report.empty_transactions = count(
        db,
        "SELECT count(*) FROM audit_transactions t
         WHERE NOT EXISTS (SELECT 1 FROM audit_changes c WHERE c.transaction_id = t.id)",
    )
    .await;
    report.misattributed = count(
        db,
        "SELECT count(*) FROM audit_changes c JOIN audit_transactions t ON t.id = c.transaction_id
         WHERE c.data_after IS NOT NULL
           AND 'writer-' || split_part(c.data_after ->> 'note', ':', 2) IS DISTINCT FROM t.actor_ref ->> 'id'",
    )
    .await;
    for table in 0..config.tables {
        let live: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COALESCE(sum(v), 0)::bigint FROM stress_{table}"
        )))
        .fetch_one(&db.pool)
        .await
        .expect("live sum");
        let want = increments.get(&table).copied().unwrap_or(0);
        if live != want {
            report.live_mismatches.push(format!(
                "stress_{table}: live sum {live}, committed increments {want}"
            ));
        }
    }
    report
}
