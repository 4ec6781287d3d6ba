//! `threadline retention purge`.

use std::process::ExitCode;

use anyhow::Context;
use threadline_sqlx::{PurgeOptions, PurgeReport};

use crate::cli::PurgeArgs;

pub(crate) async fn purge(args: PurgeArgs) -> anyhow::Result<ExitCode> {
    let (config, install) = crate::config::ops(&args.ops)?;
    let path = args.ops.config.display();
    let policy = config.retention_policy()?.with_context(|| {
        format!("{path} has no [retention] section; add one, e.g.\n[retention]\nenabled = true\nkeep_days = 90")
    })?;
    if !args.dry_run {
        let missing = match (policy.enabled, args.execute) {
            (true, true) => None,
            (false, true) => Some(format!(
                "retention is disabled: set `enabled = true` under [retention] in {path}"
            )),
            (true, false) => Some(
                "--execute was not given: add --execute to delete (or use --dry-run to count)"
                    .to_owned(),
            ),
            (false, false) => Some(format!(
                "retention is disabled (set `enabled = true` under [retention] in {path}) and --execute was not given (add --execute)"
            )),
        };
        if let Some(missing) = missing {
            anyhow::bail!("refusing to purge: {missing}");
        }
    }
    let pool = crate::connect::pool(&args.ops.db).await?;
    let options = PurgeOptions {
        batch_size: args.batch_size,
        max_batches: args.max_batches,
        dry_run: args.dry_run,
        cutoff: None,
        retired_partitions: config.storage_settings()?.retired_partitions,
    };
    if let threadline_sqlx::StorageLayout::Partitioned { .. } =
        threadline_sqlx::storage_layout(&pool, &install).await?
    {
        return crate::partitions::purge(&pool, &install, &policy, &options).await;
    }
    let window = policy.window_seconds();
    if args.dry_run {
        let report = threadline_sqlx::purge(&pool, &install, &policy, &options).await?;
        println!(
            "dry run: would delete {} changes and {} transactions captured before {} (window {window} s); nothing was deleted",
            report.deleted_changes,
            report.deleted_transactions,
            report.cutoff.to_rfc3339()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let bar = if crate::progress::shown() {
        let count = PurgeOptions {
            dry_run: true,
            ..options
        };
        let total = threadline_sqlx::purge(&pool, &install, &policy, &count).await?;
        Some(crate::progress::bar(Some(total.deleted_changes), "changes"))
    } else {
        None
    };
    let report = threadline_sqlx::purge_with_progress(&pool, &install, &policy, &options, |p| {
        if let Some(bar) = &bar {
            bar.inc(p.changes);
        }
    })
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(print_report(&report?))
}

/// The exit status of a purge that stopped at `--max-batches` with older changes left, so
/// that a cron job sees it (0 means nothing eligible is left).
pub(crate) const EXIT_INCOMPLETE: u8 = 3;

/// Prints what a live purge did; its exit status is [`EXIT_INCOMPLETE`] when work remains.
pub(crate) fn print_report(report: &PurgeReport) -> ExitCode {
    println!(
        "deleted {} changes and {} transactions captured before {} in {} batches",
        report.deleted_changes,
        report.deleted_transactions,
        report.cutoff.to_rfc3339(),
        report.batches
    );
    if report.purged_seals > 0 {
        println!(
            "{} seal(s) covered purged rows and are now marked purged: verify-seals starts from the oldest retained seal",
            report.purged_seals
        );
    }
    if report.complete {
        ExitCode::SUCCESS
    } else {
        println!(
            "stopped at --max-batches; older changes remain: run the command again to continue (exit {EXIT_INCOMPLETE})"
        );
        ExitCode::from(EXIT_INCOMPLETE)
    }
}
