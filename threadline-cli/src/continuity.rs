//! `threadline continuity` and `threadline snapshot`.

use std::process::ExitCode;

use anyhow::Context;
use threadline_core::{TableName, cutover_steps};
use threadline_sqlx::SnapshotOptions;

use crate::cli::{ContinuityArgs, SnapshotArgs};

pub(crate) async fn run(args: ContinuityArgs) -> anyhow::Result<ExitCode> {
    let (config, install) = crate::config::ops(&args.ops)?;
    let table = args.table.as_deref().map(parse_table).transpose()?;
    if args.dry_run || table.is_none() {
        let expected = config.expected_tables()?;
        print!("{}", cutover_steps(&expected));
        if args.dry_run {
            println!("\n(dry run: nothing was checked or written)");
        } else {
            println!("\ntip: threadline continuity --table <table> checks one table");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(table) = table else {
        return Ok(ExitCode::SUCCESS);
    };
    let pool = crate::connect::pool(&args.ops.db).await?;
    threadline_sqlx::assert_capture_ready(&pool, &install, &config, &table).await?;
    let name = table.display_name();
    println!(
        "{name} is capture-ready: its capture triggers are installed, enabled and current.\n\
         Its history starts with its first change after capture began; to record a baseline of its existing rows, run\n  threadline snapshot --table {name}"
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn snapshot(args: SnapshotArgs) -> anyhow::Result<ExitCode> {
    let (config, install) = crate::config::ops(&args.ops)?;
    let table = parse_table(&args.table)?;
    let pool = crate::connect::pool(&args.ops.db).await?;
    let bar = if crate::progress::shown() {
        // The planner's row estimate sizes the bar (-1 when the table was never analyzed).
        let estimate: Option<f32> =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)")
                .bind(table.to_string())
                .fetch_optional(&pool)
                .await?;
        let total = estimate.filter(|n| *n > 0.0).map(|n| n as u64);
        Some(crate::progress::bar(total, "rows"))
    } else {
        None
    };
    let options = SnapshotOptions {
        batch_size: args.batch_size,
        ..SnapshotOptions::default()
    };
    let report = threadline_sqlx::snapshot_table(&pool, &install, &config, &table, &options, |r| {
        if let Some(bar) = &bar {
            if bar.length().is_some_and(|len| r.scanned > len) {
                bar.set_length(r.scanned);
            }
            bar.set_position(r.scanned);
        }
    })
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = report?;
    println!(
        "recorded {} of {} rows of {} as snapshot changes in {} batches ({} already had their current image in the trail)",
        report.recorded,
        report.scanned,
        table.display_name(),
        report.batches,
        report.scanned - report.recorded
    );
    Ok(ExitCode::SUCCESS)
}

fn parse_table(raw: &str) -> anyhow::Result<TableName> {
    raw.parse()
        .with_context(|| format!("invalid table name {raw:?} in --table"))
}
