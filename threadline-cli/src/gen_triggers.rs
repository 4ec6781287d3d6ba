//! `threadline gen-triggers`.

use std::process::ExitCode;

use anyhow::Context;
use threadline_core::{CapturePlan, Ident, ResolvedPolicy, TableCapture, TableName};

use crate::cli::GenTriggersArgs;
use crate::output;

pub async fn run(args: GenTriggersArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::load(&args.config)?;
    let install = crate::config::install_options(&config, args.schema.as_deref(), &args.hardening)?;
    let configured = config.tables()?;
    let flags = TableCapture::default()
        .store_changed_from(args.store_changed_from)
        .except_columns(
            args.except_columns
                .iter()
                .filter(|c| !c.trim().is_empty())
                .cloned(),
        );

    let mut tables = Vec::new();
    for raw in args.tables.iter().filter(|t| !t.trim().is_empty()) {
        let table: TableName = raw
            .parse()
            .with_context(|| format!("invalid table name {raw:?} in --tables"))?;
        let policy = configured
            .get(&table)
            .cloned()
            .unwrap_or_default()
            .merge(&flags);
        tables.push((table, policy));
    }
    anyhow::ensure!(
        !tables.is_empty(),
        "--tables is empty; name at least one table, e.g. --tables posts"
    );

    let mut conn = match &args.db.database_url {
        Some(_) => Some(crate::connect::connection(&args.db).await?),
        None => None,
    };

    let mut plans = Vec::new();
    for (table, policy) in tables {
        let plan = match conn.as_mut() {
            Some(conn) => threadline_sqlx::plan_capture(&mut *conn, &install, &table, &policy)
                .await
                .with_context(|| format!("cannot generate capture for {}", table.display_name()))?,
            None => {
                if policy.key_columns.is_none() {
                    eprintln!(
                        "note: no database given; assuming {} has primary key (id). The SQL checks this when applied; pass --database-url to read the key.",
                        table.display_name()
                    );
                }
                let id = Ident::new("id").map_err(anyhow::Error::from)?;
                CapturePlan::new(&install, table.clone(), Some(vec![id]), None, &policy)
                    .with_context(|| {
                        format!("cannot generate capture for {}", table.display_name())
                    })?
            }
        };
        plans.push(plan);
    }

    if args.dry_run {
        for plan in &plans {
            println!("{}", describe(plan));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let sql: String = plans.iter().map(|p| p.sql() + "\n").collect();
    if args.stdout {
        print!("{sql}");
        return Ok(ExitCode::SUCCESS);
    }
    let names: Vec<String> = plans
        .iter()
        .map(|p| sanitize(p.table().name().as_str()))
        .collect();
    let mut stem = names.join("_");
    stem.truncate(80);
    let path = args.migrations_dir.join(format!(
        "{}_threadline_capture_{stem}.sql",
        output::next_migration_version(&args.migrations_dir)?
    ));
    output::write_atomic(&path, &sql)?;
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}

fn describe(plan: &CapturePlan) -> String {
    let list = |set: &mut dyn Iterator<Item = &Ident>| {
        set.map(|i| i.as_str()).collect::<Vec<_>>().join(",")
    };
    let ResolvedPolicy {
        exclude,
        mask,
        except,
        store_changed_from,
        placeholder,
        ..
    } = plan.policy();
    format!(
        "{}: key=({}) exclude=[{}] mask=[{}] except=[{}] store_changed_from={} mask_placeholder={:?}",
        plan.table().display_name(),
        list(&mut plan.key().iter()),
        list(&mut exclude.iter()),
        list(&mut mask.iter()),
        list(&mut except.iter()),
        store_changed_from,
        placeholder
    )
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}
