//! `threadline partitions ensure|list|convert`.

use std::process::ExitCode;
use std::time::Duration;

use threadline_sqlx::{ConvertOptions, EnsureOptions};

use crate::cli::{ConvertArgs, EnsureArgs, ListPartitionsArgs, ReportFormat};

pub(crate) async fn ensure(args: EnsureArgs) -> anyhow::Result<ExitCode> {
    let (config, install) = crate::config::ops(&args.ops)?;
    let storage = config.storage_settings()?;
    let options = EnsureOptions::default()
        .premake(args.premake.unwrap_or(storage.premake))
        .interval(storage.interval)
        .lock_timeout(Duration::from_secs(args.lock_timeout));
    let pool = crate::connect::pool(&args.ops.db).await?;
    let report = threadline_sqlx::ensure_partitions(&pool, &install, &options).await?;
    match args.format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ReportFormat::Text => {
            for p in &report.created {
                let moved = if p.moved_rows > 0 {
                    format!(
                        ", moved {} rows out of DEFAULT (DEFAULT locked against writes for {} ms)",
                        p.moved_rows,
                        p.locked_for.as_millis()
                    )
                } else {
                    format!(" in {} ms", p.locked_for.as_millis())
                };
                println!(
                    "created {} [{} .. {}){moved}",
                    p.name,
                    p.from.to_rfc3339(),
                    p.to.to_rfc3339()
                );
            }
            println!(
                "partitions ensured ({} interval, {} future): {} created",
                report.interval,
                options.premake,
                report.created.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn convert(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let (config, install) = crate::config::ops(&args.ops)?;
    let storage = config.storage_settings()?;
    let options = ConvertOptions::default()
        .interval(args.interval.map_or(storage.interval, Into::into))
        .premake(args.premake.unwrap_or(storage.premake))
        .lock_timeout(Duration::from_secs(args.lock_timeout))
        .execute(args.execute);
    let pool = crate::connect::pool(&args.ops.db).await?;
    let report = threadline_sqlx::convert_to_partitioned(&pool, &install, &options).await?;
    if args.format == ReportFormat::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    for p in &report.partitions {
        println!(
            "{} becomes partition {} [{} .. {})",
            p.table,
            p.name,
            p.from.to_rfc3339(),
            p.to.to_rfc3339()
        );
    }
    if !report.executed {
        for (n, step) in report.steps.iter().enumerate() {
            println!(
                "\n-- step {}: {}\n-- lock: {}\n{}",
                n + 1,
                step.title,
                step.lock,
                step.sql
            );
        }
        println!(
            "dry run: nothing was changed; run again with --execute to convert ({} interval)",
            report.interval
        );
        return Ok(ExitCode::SUCCESS);
    }
    for p in &report.created {
        println!(
            "created {} [{} .. {})",
            p.name,
            p.from.to_rfc3339(),
            p.to.to_rfc3339()
        );
    }
    println!(
        "converted to the partitioned layout ({} interval): prepared in {} ms while capture went on, then capture waited {} ms for the switch",
        report.interval,
        report.prepared_in.as_millis(),
        report.locked_for.as_millis()
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn list(args: ListPartitionsArgs) -> anyhow::Result<ExitCode> {
    let (_, install) = crate::config::ops(&args.ops)?;
    let pool = crate::connect::pool(&args.ops.db).await?;
    let parts = threadline_sqlx::list_partitions(&pool, &install).await?;
    if args.format == ReportFormat::Json {
        println!("{}", serde_json::to_string_pretty(&parts)?);
        return Ok(ExitCode::SUCCESS);
    }
    let width = parts.iter().map(|p| p.name.len()).max().unwrap_or(0);
    println!(
        "{:<width$}  {:<25}  {:<25}  {:>12}  {:>12}",
        "partition", "from", "to", "rows", "bytes"
    );
    for p in &parts {
        let bound = |b: Option<chrono::DateTime<chrono::Utc>>| {
            b.map_or_else(|| "DEFAULT".to_owned(), |t| t.to_rfc3339())
        };
        let rows = if p.rows_exact {
            p.rows.to_string()
        } else {
            format!("~{}", p.rows)
        };
        println!(
            "{:<width$}  {:<25}  {:<25}  {rows:>12}  {:>12}",
            p.name,
            bound(p.from),
            bound(p.to),
            p.bytes
        );
    }
    println!("rows: exact for DEFAULT, the planner's estimate (~) for the others");
    Ok(ExitCode::SUCCESS)
}

/// `retention purge` on the partitioned layout: the partitions that go whole, then the
/// boundary rows.
pub(crate) async fn purge(
    pool: &sqlx::PgPool,
    install: &threadline_sqlx::InstallOptions,
    policy: &threadline_sqlx::RetentionPolicy,
    options: &threadline_sqlx::PurgeOptions,
) -> anyhow::Result<ExitCode> {
    let report = threadline_sqlx::purge_partitions(pool, install, policy, options, |_| {}).await?;
    let verb = if options.dry_run { "would " } else { "" };
    for p in &report.partitions {
        let what = match p.action {
            "keep" => format!(
                "{verb}keep: {} of its transactions still have changes; {verb}delete its other rows",
                p.straddling_transactions
            ),
            action => format!("{verb}{action}"),
        };
        println!(
            "{}  [{} .. {})  {} rows  {what}",
            p.name,
            p.from.to_rfc3339(),
            p.to.to_rfc3339(),
            p.rows
        );
    }
    let cutoff = report.purge.cutoff.to_rfc3339();
    if options.dry_run {
        println!(
            "dry run: would delete {} changes ({} of them row by row at the boundary) and {} transactions captured before {cutoff} (window {} s); nothing was deleted",
            report.purge.deleted_changes,
            report.boundary_changes,
            report.purge.deleted_transactions,
            policy.window_seconds()
        );
    } else {
        println!(
            "{} partitions retired; {} changes deleted row by row at the boundary",
            report
                .partitions
                .iter()
                .filter(|p| p.action != "keep")
                .count(),
            report.boundary_changes
        );
        return Ok(crate::retention::print_report(&report.purge));
    }
    Ok(ExitCode::SUCCESS)
}
