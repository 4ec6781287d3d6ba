//! `threadline verify-coverage`.

use std::process::ExitCode;

use anyhow::Context;
use threadline_core::{CoverageStatus, TableCoverage};

use crate::cli::{ReportFormat, VerifyCoverageArgs};

pub(crate) async fn run(args: VerifyCoverageArgs) -> anyhow::Result<ExitCode> {
    let (config, install) = crate::config::ops(&args.ops)?;
    let mut expected = config.expected_tables()?;
    anyhow::ensure!(
        args.all || !expected.is_empty(),
        "no tables to check: list the tables that must be audited in {} under [coverage], e.g. expected_tables = [\"users\", \"posts\"], or pass --all to check every table of a schema",
        args.ops.config.display()
    );
    let pool = crate::connect::pool(&args.ops.db).await?;
    if args.all {
        let schema = crate::gen_triggers::in_schema(args.in_schema.as_deref())?;
        let mut conn = pool.acquire().await.context("cannot connect")?;
        let tables = threadline_sqlx::schema_tables(&mut conn, &install, &schema)
            .await
            .context("cannot list the tables of --in-schema")?;
        drop(conn);
        anyhow::ensure!(
            !tables.is_empty(),
            "schema {} has no tables to check",
            schema.quoted()
        );
        for t in tables {
            if !expected.contains(&t.table) {
                expected.push(t.table);
            }
        }
    }
    let check = threadline_sqlx::verify_coverage(&pool, &install, &config, &expected)
        .await
        .context("cannot read the catalog")?;
    let covered = check
        .iter()
        .filter(|t| t.status == CoverageStatus::Covered)
        .count();
    let violated = check.len() - covered;
    let drift = policy_warnings(&pool, &install, &config).await?;
    match args.format {
        ReportFormat::Json => {
            let doc = serde_json::json!({
                "expected": check.len(),
                "covered": covered,
                "violated": violated,
                "tables": check,
                "policy_warnings": drift,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        ReportFormat::Text => {
            for warning in &drift {
                eprintln!("warning: {warning}");
            }
            print!("{}", table(&check));
            println!(
                "summary: {covered}/{} expected tables covered ({violated} violated)",
                check.len()
            );
        }
    }
    Ok(if violated == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One line per table whose `[capture.tables]` section disagrees with the policy stored with
/// its capture (a warning: capture does what the stored policy says).
async fn policy_warnings(
    pool: &sqlx::PgPool,
    install: &threadline_core::InstallOptions,
    config: &threadline_core::Config,
) -> anyhow::Result<Vec<String>> {
    let drift = threadline_sqlx::policy_drift(pool, install, config)
        .await
        .context("cannot read the stored capture policies")?;
    Ok(drift
        .iter()
        .map(|d| {
            let name = d.table.display_name();
            let differences: Vec<String> = d.differences.iter().map(ToString::to_string).collect();
            format!(
                "threadline.toml's policy for {name} differs from the one its capture was generated with: {}; capture does what the stored policy says (run `threadline gen-triggers --tables {name}` and apply the SQL if the file is right)",
                differences.join("; ")
            )
        })
        .collect())
}

/// The aligned TABLE / STATUS table, then one line per violation with its fix.
fn table(rows: &[TableCoverage]) -> String {
    let names: Vec<String> = rows.iter().map(|r| r.table.display_name()).collect();
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max("TABLE".len());
    let mut out = format!(
        "{:<width$}  STATUS\n{}  {}\n",
        "TABLE",
        "-".repeat(width),
        "-".repeat(9)
    );
    for (name, row) in names.iter().zip(rows) {
        out.push_str(&format!("{name:<width$}  {}\n", row.status));
    }
    for (name, row) in names.iter().zip(rows) {
        if row.status != CoverageStatus::Covered {
            out.push_str(&format!("{name}: {}\n", row.explain()));
        }
    }
    out
}
