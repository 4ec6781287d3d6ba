//! `threadline gen-triggers`.

use std::process::ExitCode;

use anyhow::Context;
use sqlx::PgConnection;
use threadline_core::{
    CapturePlan, Ident, InstallOptions, ResolvedPolicy, TableCapture, TableName,
};

use crate::cli::GenTriggersArgs;
use crate::output;

pub(crate) async fn run(args: GenTriggersArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::load(&args.config)?;
    let mut install =
        crate::config::install_options(&config, args.schema.as_deref(), &args.hardening)?;
    let configured = config.tables()?;
    let flags = TableCapture::default()
        .store_changed_from(args.store_changed_from)
        .except_columns(
            args.except_columns
                .iter()
                .filter(|c| !c.trim().is_empty())
                .cloned(),
        );

    let mut conn = match &args.db.database_url {
        Some(_) => Some(crate::connect::connection(&args.db).await?),
        None => None,
    };

    let names = match conn.as_mut() {
        Some(conn) if args.all => {
            whole_schema(conn, &install, &args, |t| configured.get(t).cloned()).await?
        }
        None if args.all => anyhow::bail!(
            "--all reads the schema's tables from the database; pass --database-url (or set DATABASE_URL)"
        ),
        _ => {
            let mut names = Vec::new();
            for raw in args.tables.iter().filter(|t| !t.trim().is_empty()) {
                let table: TableName = raw
                    .parse()
                    .with_context(|| format!("invalid table name {raw:?} in --tables"))?;
                names.push(table);
            }
            names
        }
    };
    let mut tables = Vec::new();
    for table in names {
        let policy = configured
            .get(&table)
            .cloned()
            .unwrap_or_default()
            .merge(&flags);
        tables.push((table, policy));
    }
    anyhow::ensure!(
        !tables.is_empty(),
        "{}",
        if args.all {
            "no table to audit: the schema has no tables (left out by --except or not created yet)"
        } else {
            "--tables is empty; name at least one table, e.g. --tables posts"
        }
    );
    if let Some(conn) = conn.as_mut() {
        let installed = Installed::read(conn, &install.schema).await?;
        let given_by = if args.hardening.owner_role.is_some() {
            "--owner-role".to_owned()
        } else {
            format!("owner_role in {}", args.config.display())
        };
        install = match_install(install, &installed, &given_by)?;
    }

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
            println!("{}", describe(plan, &install));
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

/// `--all`: every table of `--in-schema` (default public) but the `--except` ones. Fails,
/// naming them all, on an unknown `--except` table and on tables without a primary key whose
/// policy (`policy_of`, from threadline.toml) sets no `key_columns`.
async fn whole_schema(
    conn: &mut PgConnection,
    install: &InstallOptions,
    args: &GenTriggersArgs,
    policy_of: impl Fn(&TableName) -> Option<TableCapture>,
) -> anyhow::Result<Vec<TableName>> {
    let schema = in_schema(args.in_schema.as_deref())?;
    let found = threadline_sqlx::schema_tables(conn, install, &schema)
        .await
        .context("cannot list the tables of --in-schema")?;
    let mut except = Vec::new();
    for raw in args.except.iter().filter(|t| !t.trim().is_empty()) {
        let table = TableName::parse_with_default(raw.trim(), &schema)
            .with_context(|| format!("invalid table name {raw:?} in --except"))?;
        except.push(table);
    }
    let unknown: Vec<String> = except
        .iter()
        .filter(|e| !found.iter().any(|f| &f.table == *e))
        .map(TableName::display_name)
        .collect();
    anyhow::ensure!(
        unknown.is_empty(),
        "--except names {}, which is not a table of schema {} (its tables: {})",
        unknown.join(", "),
        schema.quoted(),
        found
            .iter()
            .map(|t| t.table.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let chosen: Vec<&threadline_sqlx::SchemaTable> = found
        .iter()
        .filter(|t| !except.contains(&t.table))
        .collect();
    let keyless: Vec<String> = chosen
        .iter()
        .filter(|t| {
            !t.has_primary_key && policy_of(&t.table).is_none_or(|p| p.key_columns.is_none())
        })
        .map(|t| t.table.display_name())
        .collect();
    if !keyless.is_empty() {
        let fixes: Vec<String> = keyless
            .iter()
            .map(|name| {
                format!(
                    "  {name}: add a primary key, or set key_columns under [capture.tables.\"{name}\"] in {}",
                    args.config.display()
                )
            })
            .collect();
        anyhow::bail!(
            "{} table(s) of schema {} have no primary key, so their changes cannot be keyed:\n{}\nor leave them out with --except {}",
            keyless.len(),
            schema.quoted(),
            fixes.join("\n"),
            keyless.join(",")
        );
    }
    Ok(chosen.into_iter().map(|t| t.table.clone()).collect())
}

/// The `--in-schema` value (default public) as an identifier.
pub(crate) fn in_schema(raw: Option<&str>) -> anyhow::Result<Ident> {
    match raw {
        None => Ok(Ident::new(threadline_core::DEFAULT_SCHEMA).map_err(anyhow::Error::from)?),
        Some(raw) => Ident::parse(raw.trim())
            .with_context(|| format!("invalid schema name {raw:?} in --in-schema")),
    }
}

/// The Threadline install in the audit schema, as the catalog shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Installed {
    /// No `audit_changes` table in the schema (the install migration is not applied yet).
    Missing,
    /// Installed without an owner role.
    Plain,
    /// Installed with `--owner-role`: the shared functions run as their owner
    /// (`SECURITY DEFINER`) and `owner` owns the audit tables.
    Hardened { owner: String },
}

impl Installed {
    async fn read(conn: &mut PgConnection, schema: &Ident) -> anyhow::Result<Self> {
        let row: Option<(String, bool)> = sqlx::query_as(
            "SELECT pg_catalog.pg_get_userbyid(c.relowner)::text,
                    EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                            WHERE p.pronamespace = c.relnamespace
                              AND p.proname = 'threadline_transaction_id' AND p.prosecdef)
             FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = 'audit_changes' AND c.relkind IN ('r', 'p')",
        )
        .bind(schema.as_str())
        .fetch_optional(conn)
        .await
        .context("cannot read the Threadline install from the catalog")?;
        Ok(match row {
            None => Self::Missing,
            Some((_, false)) => Self::Plain,
            Some((owner, true)) => Self::Hardened { owner },
        })
    }
}

/// The install options to generate with, so that capture matches the install: a hardened
/// install's owner is used when no owner role was given (with a note), and a given owner role
/// that disagrees with the catalog is refused, naming where it came from (`given_by`).
fn match_install(
    install: InstallOptions,
    installed: &Installed,
    given_by: &str,
) -> anyhow::Result<InstallOptions> {
    let schema = install.schema.quoted();
    match (installed, &install.owner_role) {
        (Installed::Missing, _) | (Installed::Plain, None) => Ok(install),
        (Installed::Hardened { owner }, None) => {
            let role = Ident::new(owner.as_str()).with_context(|| {
                format!("the install's owner role {owner:?} is not a valid name")
            })?;
            eprintln!(
                "note: schema {schema} holds a hardened install owned by role {}; the capture runs as that role, as with --owner-role {}",
                role.quoted(),
                flag_value(owner)
            );
            Ok(install.with_owner_role(role))
        }
        (Installed::Hardened { owner }, Some(given)) if given.as_str() == owner => Ok(install),
        (Installed::Hardened { owner }, Some(given)) => anyhow::bail!(
            "{given_by} names role {}, but the install in schema {schema} is hardened with owner role {}, and capture must run as that role to write the audit tables; pass --owner-role {} (or leave it out: gen-triggers then uses the install's owner)",
            given.quoted(),
            quote_role(owner),
            flag_value(owner)
        ),
        (Installed::Plain, Some(given)) => anyhow::bail!(
            "{given_by} names role {}, but the install in schema {schema} is not hardened, so capture running as that role may not write the audit tables; leave out --owner-role (and owner_role in the config file), or harden the install first (threadline install --owner-role {}, applied; it also hardens the capture already installed) and run gen-triggers again",
            given.quoted(),
            flag_value(given.as_str())
        ),
    }
}

fn quote_role(name: &str) -> String {
    threadline_core::quote_ident(name)
}

/// A role name as a `--owner-role` value: bare when lower case, else double-quoted.
fn flag_value(name: &str) -> String {
    let plain = name
        .chars()
        .enumerate()
        .all(|(i, c)| c == '_' || c.is_ascii_lowercase() || (i > 0 && c.is_ascii_digit()));
    if plain {
        name.to_owned()
    } else {
        format!("'{}'", quote_role(name))
    }
}

fn describe(plan: &CapturePlan, install: &InstallOptions) -> String {
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
    let owner = install
        .owner_role
        .as_ref()
        .map(|o| format!(" owner_role={}", o.quoted()))
        .unwrap_or_default();
    format!(
        "{}: key=({}) exclude=[{}] mask=[{}] except=[{}] store_changed_from={} mask_placeholder={:?}{owner}",
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
