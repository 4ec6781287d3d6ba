//! The `threadline` command-line tool as a library: parse a [`Cli`] and call [`run`].
//!
//! ```
//! use clap::Parser;
//! use threadline_cli::{Cli, Command};
//! let cli = Cli::parse_from(["threadline", "install", "--stdout"]);
//! assert!(matches!(cli.command, Command::Install(_)));
//! ```

mod archive;
mod cli;
mod config;
mod connect;
mod continuity;
mod doctor;
mod erase;
mod export;
mod gen_triggers;
mod install;
mod output;
mod partitions;
mod progress;
mod replication;
mod retention;
mod revert;
mod seal;
mod verify_coverage;

use std::process::ExitCode;

pub use cli::{
    ArchiveArgs, ArchiveFormatArg, ConvertArgs, EnsureArgs, IntervalArg, ListPartitionsArgs,
    PartitionsArgs, PartitionsCommand, ReplicationArgs, ReplicationCommand, ReplicationSqlArgs,
};
pub use cli::{
    Cli, Command, ContinuityArgs, DatabaseArgs, DoctorArgs, ExportArgs, ExportFormatArg,
    GenTriggersArgs, HardeningArgs, InstallArgs, OpsArgs, PurgeArgs, ReportFormat, RetentionArgs,
    RetentionCommand, SnapshotArgs, VerifyCoverageArgs,
};
pub use cli::{EraseArgs, SealArgs, VerifySealsArgs};

/// Runs one command. Errors carry a message that says what was wrong and how to fix it.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Install(args) => install::run(args),
        Command::GenTriggers(args) => gen_triggers::run(args).await,
        Command::Retention(args) => match args.command {
            RetentionCommand::Purge(args) => retention::purge(args).await,
        },
        Command::VerifyCoverage(args) => verify_coverage::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Continuity(args) => continuity::run(args).await,
        Command::Snapshot(args) => continuity::snapshot(args).await,
        Command::Export(args) => export::run(args).await,
        Command::Partitions(args) => match args.command {
            PartitionsCommand::Ensure(args) => partitions::ensure(args).await,
            PartitionsCommand::List(args) => partitions::list(args).await,
            PartitionsCommand::Convert(args) => partitions::convert(args).await,
        },
        Command::Revert(args) => revert::run(args).await,
        Command::Archive(args) => archive::run(args).await,
        Command::Replication(args) => match args.command {
            ReplicationCommand::Sql(args) => replication::sql(args),
        },
        Command::Seal(args) => seal::seal(args).await,
        Command::VerifySeals(args) => seal::verify(args).await,
        Command::Erase(args) => erase::run(args).await,
    }
}
