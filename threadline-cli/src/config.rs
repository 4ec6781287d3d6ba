//! Loading `threadline.toml`.

use std::path::Path;

use anyhow::Context;
use threadline_core::{Config, Ident, InstallOptions};

use crate::cli::HardeningArgs;

/// Loads the config file. A missing file is fine when it is the default path.
pub(crate) fn load(path: &Path) -> anyhow::Result<Config> {
    match std::fs::read_to_string(path) {
        Ok(text) => Config::from_toml(&text)
            .with_context(|| format!("in {}: fix the file and run again", path.display())),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound && path == Path::new("threadline.toml") =>
        {
            Ok(Config::default())
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot read config file {}; check the --config path",
                path.display()
            )
        }),
    }
}

/// The install options: `--schema` and `--owner-role` win over the config file;
/// `--reader-role` adds to it.
pub(crate) fn install_options(
    config: &Config,
    schema: Option<&str>,
    hardening: &HardeningArgs,
) -> anyhow::Result<InstallOptions> {
    let mut options = config.install_options()?;
    if let Some(s) = schema {
        options.schema = Ident::parse(s).with_context(|| format!("invalid --schema {s:?}"))?;
    }
    if let Some(owner) = &hardening.owner_role {
        let owner =
            Ident::parse(owner).with_context(|| format!("invalid --owner-role {owner:?}"))?;
        options = options.with_owner_role(owner);
    }
    for reader in hardening
        .reader_role
        .iter()
        .filter(|r| !r.trim().is_empty())
    {
        let reader =
            Ident::parse(reader).with_context(|| format!("invalid --reader-role {reader:?}"))?;
        options = options.with_reader_role(reader);
    }
    anyhow::ensure!(
        options.owner_role.is_some() || options.reader_roles.is_empty(),
        "reader roles only apply in hardened mode; also give --owner-role (or owner_role in the config file)"
    );
    Ok(options)
}

/// The loaded config file with the install options (schema) it and the flags give.
pub(crate) fn ops(args: &crate::cli::OpsArgs) -> anyhow::Result<(Config, InstallOptions)> {
    let config = load(&args.config)?;
    let install = install_options(&config, args.schema.as_deref(), &HardeningArgs::default())?;
    Ok((config, install))
}
