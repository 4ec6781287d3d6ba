//! `threadline install`.

use std::process::ExitCode;

use threadline_core::install_sql;

use crate::cli::InstallArgs;
use crate::output;

const SUFFIX: &str = "_threadline_install.sql";

pub(crate) fn run(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::load(&args.config)?;
    let mut options =
        crate::config::install_options(&config, args.schema.as_deref(), &args.hardening)?;
    if args.partitioned {
        let interval = match args.interval {
            Some(i) => i.into(),
            None => config.storage_settings()?.interval,
        };
        options = options.with_partitioning(interval);
    }
    let sql = install_sql(&options);
    if args.stdout {
        print!("{sql}");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(existing) = output::existing(&args.migrations_dir, SUFFIX)?.first() {
        eprintln!(
            "skipped: {} already exists (delete it to regenerate, or use --stdout)",
            existing.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let version = output::next_migration_version(&args.migrations_dir)?;
    let path = args.migrations_dir.join(format!("{version}{SUFFIX}"));
    output::write_atomic(&path, &sql)?;
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}
