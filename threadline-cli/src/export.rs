//! `threadline export`.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use futures_util::TryStreamExt;
use threadline_core::query::TimelineFilter;
use threadline_core::{ActorRef, ChangeOp, ExportFormat, ExportWriter};
use threadline_sqlx::{DEFAULT_EXPORT_MAX_ROWS, Threadline};

use crate::cli::{ExportArgs, ExportFormatArg};
use crate::output::AtomicFile;

pub(crate) async fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let (_, install) = crate::config::ops(&args.ops)?;
    let filter = filter(&args)?;
    filter.validate().context("invalid filters")?;
    let pool = crate::connect::pool(&args.ops.db).await?;
    let threadline = Threadline::with_options(pool, &install);
    if args.dry_run {
        let n = threadline.count(&filter).await?;
        println!("{n} changes match");
        return Ok(ExitCode::SUCCESS);
    }
    let format = match args.format {
        Some(ExportFormatArg::Csv) => ExportFormat::Csv,
        Some(ExportFormatArg::Json) => ExportFormat::Json,
        Some(ExportFormatArg::Ndjson) | None => ExportFormat::Ndjson,
    };
    let limit = (!args.all).then(|| args.max_rows.unwrap_or(DEFAULT_EXPORT_MAX_ROWS));
    let mut file = args.output.as_deref().map(AtomicFile::create).transpose()?;
    let bar = if crate::progress::shown() {
        let matching = threadline.count(&filter).await?;
        Some(crate::progress::bar(
            Some(limit.map_or(matching, |l| l.min(matching))),
            "changes",
        ))
    } else {
        None
    };
    let out: Box<dyn Write + '_> = match file.as_mut() {
        Some(f) => Box::new(BufWriter::with_capacity(1 << 16, f.file())),
        None => Box::new(BufWriter::with_capacity(1 << 16, std::io::stdout())),
    };
    let written = |e: std::io::Error| anyhow::Error::new(e).context("cannot write the export");
    let mut writer = ExportWriter::new(out, format, Utc::now()).map_err(written)?;
    let mut changes = threadline.export_stream(&filter);
    let mut truncated = false;
    while let Some(record) = changes.try_next().await? {
        if limit.is_some_and(|l| writer.written() >= l) {
            truncated = true;
            break;
        }
        writer.write(&record).map_err(written)?;
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    drop(changes);
    let count = writer.written();
    writer.finish().map_err(written)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let target = match (file, &args.output) {
        (Some(file), Some(path)) => {
            file.commit()?;
            path.display().to_string()
        }
        _ => "stdout".to_owned(),
    };
    eprintln!("wrote {count} changes to {target}");
    if let (true, Some(limit)) = (truncated, limit) {
        eprintln!(
            "truncated at --max-rows {limit}: more changes match (the newest were written); pass --all or narrow the filters"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn filter(args: &ExportArgs) -> anyhow::Result<TimelineFilter> {
    let mut filter = TimelineFilter::new();
    if let Some(table) = &args.table {
        filter = filter.table(
            table
                .parse()
                .with_context(|| format!("invalid table name {table:?} in --table"))?,
        );
    }
    if let Some(from) = &args.from {
        filter = filter.from(parse_time("--from", from, false)?);
    }
    if let Some(to) = &args.to {
        filter = filter.to(parse_time("--to", to, true)?);
    }
    if let Some(actor) = &args.actor {
        filter = filter.actor(ActorRef::parse_short(actor).with_context(|| {
            format!("invalid --actor {actor:?}: use TYPE:ID such as user:42 (types: user, admin, service_account, job, system), or anonymous")
        })?);
    }
    if let Some(id) = &args.correlation_id {
        filter = filter.correlation_id(id.clone());
    }
    if let Some(id) = &args.request_id {
        filter = filter.request_id(id.clone());
    }
    if let Some(id) = &args.trace_id {
        filter = filter.trace_id(
            id.parse()
                .with_context(|| format!("invalid --trace-id {id:?}"))?,
        );
    }
    if let Some(op) = &args.op {
        filter = filter.op(op
            .parse::<ChangeOp>()
            .with_context(|| format!("invalid --op {op:?}"))?);
    }
    Ok(filter)
}

/// An ISO 8601 time with an offset, or a date (its start, or with `end_of_day` its last
/// microsecond, in UTC).
pub(crate) fn parse_time(
    flag: &str,
    value: &str,
    end_of_day: bool,
) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let time = if end_of_day {
            NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999)
        } else {
            Some(NaiveTime::MIN)
        };
        if let Some(time) = time {
            return Ok(date.and_time(time).and_utc());
        }
    }
    let hint = if value.contains('T')
        && !value.ends_with('Z')
        && !value[10.min(value.len())..].contains(['+', '-'])
    {
        "; add a UTC offset such as Z or +02:00"
    } else {
        ""
    };
    anyhow::bail!(
        "invalid {flag} {value:?}: use ISO 8601 with an offset, e.g. 2026-01-31T12:00:00Z or 2026-01-31T14:00:00+02:00, or a date such as 2026-01-31{hint}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_with_offsets_and_dates() {
        let t = parse_time("--from", "2026-01-31T14:00:00+02:00", false).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-31T12:00:00+00:00");
        let t = parse_time("--from", "2026-01-31T12:00:00.5Z", false).unwrap();
        assert_eq!(t.timestamp_subsec_millis(), 500);
        assert_eq!(
            parse_time("--from", "2026-01-31", false)
                .unwrap()
                .to_rfc3339(),
            "2026-01-31T00:00:00+00:00"
        );
        assert_eq!(
            parse_time("--to", "2026-01-31", true).unwrap().to_rfc3339(),
            "2026-01-31T23:59:59.999999+00:00"
        );
        let e = parse_time("--from", "2026-01-31T12:00:00", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("add a UTC offset"), "{e}");
        for bad in ["yesterday", "2026-13-01", "31/01/2026", ""] {
            let e = parse_time("--to", bad, true).unwrap_err().to_string();
            assert!(e.starts_with("invalid --to"), "{e}");
        }
    }
}
