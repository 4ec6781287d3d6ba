//! `threadline replication sql`.

use std::process::ExitCode;

use anyhow::Context;
use threadline_core::Ident;
use threadline_core::sql::replication_sql;

use crate::cli::{HardeningArgs, ReplicationSqlArgs};

pub(crate) fn sql(args: ReplicationSqlArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::load(&args.config)?;
    let install =
        crate::config::install_options(&config, args.schema.as_deref(), &HardeningArgs::default())?;
    let name = |flag: &str, value: &str| {
        Ident::new(value).with_context(|| {
            format!("invalid {flag} {value:?}: use a plain name such as threadline_audit")
        })
    };
    let publication = name("--publication", &args.publication)?;
    let subscription = name("--subscription", &args.subscription)?;
    if args.primary_conninfo.trim().is_empty() {
        anyhow::bail!(
            "--primary-conninfo is empty: pass how the reporting node reaches the primary, e.g. \"host=db1 dbname=app user=replicator\""
        );
    }
    let sql = replication_sql(
        &install,
        &publication,
        &subscription,
        &args.primary_conninfo,
    );
    println!("{}\n", sql.publication.trim_end());
    println!("{}\n", sql.reporting_schema.trim_end());
    println!("{}", sql.subscription.trim_end());
    Ok(ExitCode::SUCCESS)
}
