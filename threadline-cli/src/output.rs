//! Writing migration files atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The version of a new migration in `dir`: the current UTC time as `YYYYMMDDHHMMSS` (sqlx's
/// convention), raised to one past the greatest version already in `dir` when that is not
/// smaller. sqlx identifies a migration by its version alone, so two files with one version
/// (`install` and `gen-triggers` run in the same second, or a folder numbered ahead of the
/// clock) would make `sqlx migrate run` fail.
pub(crate) fn next_migration_version(dir: &Path) -> anyhow::Result<i64> {
    let now = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let now: i64 = now
        .parse()
        .with_context(|| format!("cannot number the migration: bad clock reading {now}"))?;
    next_version_after(now, dir)
}

/// [`next_migration_version`] with the clock reading `now` (a `YYYYMMDDHHMMSS` number).
pub(crate) fn next_version_after(now: i64, dir: &Path) -> anyhow::Result<i64> {
    let Some(max) = existing_versions(dir)?.into_iter().max() else {
        return Ok(now);
    };
    if max < now {
        return Ok(now);
    }
    max.checked_add(1).with_context(|| {
        format!(
            "cannot number the migration: {} already holds the largest possible version {max}; renumber its files",
            dir.display()
        )
    })
}

/// The versions of the sqlx migrations in `dir`, read the way sqlx reads them: every file
/// (or link to a file) named `<integer>_<description>.sql` (including `.up.sql` /
/// `.down.sql`). A missing directory has none.
fn existing_versions(dir: &Path) -> anyhow::Result<Vec<i64>> {
    let mut versions = Vec::new();
    for path in entries(dir)? {
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        if let Some((version, rest)) = file_name(&path).split_once('_')
            && rest.ends_with(".sql")
            && let Ok(version) = version.parse::<i64>()
        {
            versions.push(version);
        }
    }
    Ok(versions)
}

/// Existing migration files in `dir` whose name ends with `suffix`, sorted.
pub(crate) fn existing(dir: &Path, suffix: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = entries(dir)?
        .into_iter()
        .filter(|path| file_name(path).ends_with(suffix))
        .collect();
    found.sort();
    Ok(found)
}

/// The paths in the migrations directory `dir`; none when it does not exist.
fn entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let context = || format!("cannot read migrations directory {}", dir.display());
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(context),
    };
    entries
        .map(|entry| entry.map(|e| e.path()).with_context(context))
        .collect()
}

fn file_name(path: &Path) -> std::borrow::Cow<'_, str> {
    path.file_name().unwrap_or_default().to_string_lossy()
}

/// Writes `contents` to `path` through a temporary file in the same directory and a rename,
/// so a failure never leaves a partial file. Creates the directory when missing.
pub(crate) fn write_atomic(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.file()
        .write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.commit()
}

/// A file written through a temporary file next to it: [`commit`](Self::commit) renames it
/// into place; dropping it uncommitted removes it, so a failure never leaves a partial file.
pub(crate) struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl AtomicFile {
    /// Starts writing `path`, creating its directory when missing.
    pub(crate) fn create(path: &Path) -> anyhow::Result<Self> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create directory {}; check the path and permissions",
                dir.display()
            )
        })?;
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot write to {}; check permissions", dir.display()))?;
        Ok(Self {
            tmp,
            path: path.to_owned(),
        })
    }

    /// The temporary file, to write to.
    pub(crate) fn file(&mut self) -> &mut std::fs::File {
        self.tmp.as_file_mut()
    }

    /// The temporary file's path (to read it back before the commit).
    pub(crate) fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Syncs the data and renames the file into place.
    pub(crate) fn commit(self) -> anyhow::Result<()> {
        let path = self.path;
        self.tmp
            .as_file()
            .sync_all()
            .with_context(|| format!("cannot write {}", path.display()))?;
        self.tmp
            .persist(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) {
        std::fs::write(dir.join(name), "SELECT 1;").unwrap();
    }

    #[test]
    fn versions_follow_the_clock_and_never_repeat_or_go_back() {
        let dir = tempfile::tempdir().unwrap();
        let now = 20_261_203_075_353;
        // An empty (or missing) folder takes the clock.
        assert_eq!(
            next_version_after(now, &dir.path().join("none")).unwrap(),
            now
        );
        assert_eq!(next_version_after(now, dir.path()).unwrap(), now);
        // Older migrations leave the clock alone.
        touch(dir.path(), "20200101000000_create_posts.sql");
        assert_eq!(next_version_after(now, dir.path()).unwrap(), now);
        // A file written in the same second moves the next one up by one.
        touch(dir.path(), &format!("{now}_threadline_install.sql"));
        assert_eq!(next_version_after(now, dir.path()).unwrap(), now + 1);
        // So does a folder numbered ahead of the clock, reversible files included.
        touch(dir.path(), "20270101000000_later.up.sql");
        touch(dir.path(), "20270101000000_later.down.sql");
        assert_eq!(
            next_version_after(now, dir.path()).unwrap(),
            20_270_101_000_001
        );
        // Files sqlx ignores do not count.
        touch(dir.path(), "99999999999999_notes.txt");
        touch(dir.path(), "README.sql");
        std::fs::create_dir(dir.path().join("99999999999999_dir.sql")).unwrap();
        assert_eq!(
            next_version_after(now, dir.path()).unwrap(),
            20_270_101_000_001
        );
    }

    #[test]
    fn the_largest_version_is_an_error_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), &format!("{}_last.sql", i64::MAX));
        let err = next_version_after(1, dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("renumber its files"), "{err:#}");
    }
}
