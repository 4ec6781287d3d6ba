//! `threadline archive --before DATE --out DIR [--format parquet|ndjson] [--drop]`: writes the
//! ranges of the trail wholly before the cutoff to files, verifies each by reading it back,
//! records them in `manifest.json`, and with `--drop` drops the partitions that verified.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use threadline_sqlx::{ArchiveBatch, ArchiveSession, ArchiveUnit};

use crate::cli::{ArchiveArgs, ArchiveFormatArg};
use crate::output::AtomicFile;

mod ndjson;
#[cfg(feature = "parquet")]
mod parquet;

/// Rows per fetch, and per Parquet row group.
const BATCH_ROWS: u32 = 20_000;

/// Count, bounds and sum of the ids of a file or a unit, to compare the two.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct IdStats {
    rows: u64,
    min: Option<i64>,
    max: Option<i64>,
    sum: i128,
}

impl IdStats {
    pub(crate) fn add(&mut self, id: i64) {
        self.rows += 1;
        self.min = Some(self.min.map_or(id, |m| m.min(id)));
        self.max = Some(self.max.map_or(id, |m| m.max(id)));
        self.sum += i128::from(id);
    }
}

/// One file of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ManifestFile {
    file: String,
    table: String,
    partition: Option<String>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    rows: u64,
    min_id: Option<i64>,
    max_id: Option<i64>,
    sha256: String,
    format: String,
    archived_at: DateTime<Utc>,
}

/// `manifest.json`: every file of the archive folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    schema: String,
    files: Vec<ManifestFile>,
    /// The seals covering the archived transactions (as `threadline verify-seals` knows
    /// them), so that the files can be checked against the chain offline.
    #[serde(default)]
    seals: Vec<serde_json::Value>,
}

impl Manifest {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("manifest.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not a Threadline archive manifest; archive into another folder or move it away",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn save(&mut self, dir: &Path) -> anyhow::Result<()> {
        self.version = 1;
        self.files.sort_by(|a, b| a.file.cmp(&b.file));
        let mut file = AtomicFile::create(&dir.join("manifest.json"))?;
        serde_json::to_writer_pretty(file.file(), self)?;
        file.commit()
    }

    fn entry(&self, name: &str) -> Option<&ManifestFile> {
        self.files.iter().find(|f| f.file == name)
    }

    fn put(&mut self, entry: ManifestFile) {
        self.files.retain(|f| f.file != entry.file);
        self.files.push(entry);
    }
}

fn sha256(path: &Path) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The format, checked against the build.
fn format_name(format: ArchiveFormatArg) -> anyhow::Result<&'static str> {
    match format {
        ArchiveFormatArg::Ndjson => Ok("ndjson"),
        ArchiveFormatArg::Parquet if cfg!(feature = "parquet") => Ok("parquet"),
        ArchiveFormatArg::Parquet => anyhow::bail!(
            "this threadline was built without the `parquet` feature; pass --format ndjson, or install it with the default features"
        ),
    }
}

/// Checks that `dir` exists (creating it) and takes files, before anything is read.
fn writable(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "--out {}: cannot create the folder; check the path and permissions",
            dir.display()
        )
    })?;
    tempfile::NamedTempFile::new_in(dir).with_context(|| {
        format!(
            "--out {} is not writable; pick a folder you can write to",
            dir.display()
        )
    })?;
    Ok(())
}

pub(crate) async fn run(args: ArchiveArgs) -> anyhow::Result<ExitCode> {
    let (_, install) = crate::config::ops(&args.ops)?;
    let before = crate::export::parse_time("--before", &args.before, false)?;
    if before > Utc::now() {
        anyhow::bail!(
            "--before {} is in the future; archive only what is already written: pass a past date such as the first day of last month",
            args.before
        );
    }
    let format = format_name(args.format)?;
    writable(&args.out)?;
    let pool = crate::connect::pool(&args.ops.db).await?;
    let mut session = ArchiveSession::open(&pool, &install).await?;
    let result = archive(&mut session, &args, before, format, install.schema.as_str()).await;
    session.close().await?;
    result
}

async fn archive(
    session: &mut ArchiveSession,
    args: &ArchiveArgs,
    before: DateTime<Utc>,
    format: &'static str,
    schema: &str,
) -> anyhow::Result<ExitCode> {
    if args.drop && !session.partitioned() {
        anyhow::bail!(
            "--drop needs the partitioned layout; on a plain trail archive without --drop, then run `threadline retention purge` for the same cutoff"
        );
    }
    let units = session.plan(before).await?;
    if units.iter().all(|u| u.rows == 0) {
        anyhow::bail!(
            "--before {} cuts nothing: no {} with rows lies wholly before it; pick a later date (see `threadline partitions list`)",
            args.before,
            if session.partitioned() {
                "partition"
            } else {
                "calendar month"
            }
        );
    }
    let mut manifest = Manifest::load(&args.out)?;
    manifest.schema = schema.to_owned();
    let mut verified: Vec<ArchiveUnit> = Vec::new();
    for unit in units.iter().filter(|u| u.rows > 0) {
        let name = format!("{}.{format}", unit.file_stem());
        let path = args.out.join(&name);
        if let Some(entry) = manifest.entry(&name)
            && entry.rows == unit.rows
            && entry.min_id == unit.min_id
            && entry.max_id == unit.max_id
            && path.exists()
            && sha256(&path)? == entry.sha256
        {
            println!(
                "{name}: already archived and verified ({} rows), skipped",
                unit.rows
            );
            verified.push(unit.clone());
            continue;
        }
        let entry = write_unit(session, unit, &path, format).await?;
        println!(
            "{name}: {} rows, ids {}..{}, verified",
            entry.rows,
            entry.min_id.unwrap_or_default(),
            entry.max_id.unwrap_or_default()
        );
        manifest.put(entry);
        manifest.save(&args.out)?;
        verified.push(unit.clone());
    }
    let seals = session.seals(&verified).await?;
    manifest.seals = seals
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    manifest.save(&args.out)?;
    println!(
        "archived {} files into {} (manifest.json lists them with their SHA-256)",
        verified.len(),
        args.out.display()
    );
    if args.drop {
        let dropped = session
            .drop_partitions(&verified, Duration::from_secs(args.lock_timeout))
            .await?;
        for d in &dropped {
            println!("{}: {}", d.partition, d.outcome);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes one unit to a temporary file next to `path`, reads it back and compares the rows
/// and ids with what the database sent and what the plan counted, then renames it into
/// place. On any failure the temporary file is removed and nothing is dropped.
async fn write_unit(
    session: &mut ArchiveSession,
    unit: &ArchiveUnit,
    path: &Path,
    format: &'static str,
) -> anyhow::Result<ManifestFile> {
    let mut file = AtomicFile::create(path)?;
    let handle = file
        .file()
        .try_clone()
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut sent = IdStats::default();
    let mut sink = Sink::new(handle, unit.table, format)?;
    let failed = |e: anyhow::Error| {
        e.context(format!(
            "writing {} failed (a full disk?); its partition was kept and nothing was dropped: free space and run again",
            path.display()
        ))
    };
    session
        .read(unit, BATCH_ROWS, |batch| {
            ids_of(&batch).for_each(|id| sent.add(id));
            sink.write(&batch)
        })
        .await?
        .map_err(failed)?;
    sink.finish().map_err(failed)?;
    file.file()
        .sync_all()
        .map_err(|e| failed(anyhow::Error::new(e)))?;
    let back = read_ids(file.path(), format)?;
    let planned = (unit.rows, unit.min_id, unit.max_id);
    if back != sent || (back.rows, back.min, back.max) != planned {
        anyhow::bail!(
            "{} did not verify: the database sent {} rows (ids {:?}..{:?}) and planned {} rows, the file holds {} rows (ids {:?}..{:?}); nothing was dropped",
            path.display(),
            sent.rows,
            sent.min,
            sent.max,
            unit.rows,
            back.rows,
            back.min,
            back.max
        );
    }
    let sha256 = sha256(file.path())?;
    file.commit()?;
    Ok(ManifestFile {
        file: file_name(path),
        table: unit.table.to_owned(),
        partition: unit.partition.clone(),
        from: unit.from,
        to: unit.to,
        rows: back.rows,
        min_id: back.min,
        max_id: back.max,
        sha256,
        format: format.to_owned(),
        archived_at: Utc::now(),
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn ids_of(batch: &ArchiveBatch) -> Box<dyn Iterator<Item = i64> + '_> {
    match batch {
        ArchiveBatch::Changes(rows) => Box::new(rows.iter().map(|r| r.id)),
        ArchiveBatch::Transactions(rows) => Box::new(rows.iter().map(|r| r.id)),
        _ => Box::new(std::iter::empty()),
    }
}

enum Sink {
    Ndjson(ndjson::NdjsonSink),
    #[cfg(feature = "parquet")]
    Parquet(Box<parquet::ParquetSink>),
}

impl Sink {
    fn new(file: std::fs::File, table: &str, format: &str) -> anyhow::Result<Self> {
        #[cfg(feature = "parquet")]
        if format == "parquet" {
            return Ok(Self::Parquet(Box::new(parquet::ParquetSink::new(
                file, table,
            )?)));
        }
        let _ = (table, format);
        Ok(Self::Ndjson(ndjson::NdjsonSink::new(file)))
    }

    fn write(&mut self, batch: &ArchiveBatch) -> anyhow::Result<()> {
        match self {
            Self::Ndjson(s) => s.write(batch),
            #[cfg(feature = "parquet")]
            Self::Parquet(s) => s.write(batch),
        }
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Self::Ndjson(s) => s.finish(),
            #[cfg(feature = "parquet")]
            Self::Parquet(s) => s.finish(),
        }
    }
}

fn read_ids(path: &Path, format: &str) -> anyhow::Result<IdStats> {
    #[cfg(feature = "parquet")]
    if format == "parquet" {
        return parquet::read_ids(path);
    }
    let _ = format;
    ndjson::read_ids(path)
}
