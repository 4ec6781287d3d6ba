//! Writing migration files atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// sqlx's migration version prefix: the current UTC time as `YYYYMMDDHHMMSS`.
pub fn migration_version() -> String {
    chrono::Utc::now().format("%Y%m%d%H%M%S").to_string()
}

/// Existing migration files in `dir` whose name ends with `suffix`.
pub fn existing(dir: &Path, suffix: &str) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read migrations directory {}", dir.display()));
        }
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(suffix))
        {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// Writes `contents` to `path` through a temporary file in the same directory and a rename,
/// so a failure never leaves a partial file. Creates the directory when missing.
pub fn write_atomic(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.file()
        .write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.commit()
}

/// A file written through a temporary file next to it: [`commit`](Self::commit) renames it
/// into place; dropping it uncommitted removes it, so a failure never leaves a partial file.
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl AtomicFile {
    /// Starts writing `path`, creating its directory when missing.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
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
    pub fn file(&mut self) -> &mut std::fs::File {
        self.tmp.as_file_mut()
    }

    /// Syncs the data and renames the file into place.
    pub fn commit(self) -> anyhow::Result<()> {
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
