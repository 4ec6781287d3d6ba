//! `threadline doctor`.

use std::process::ExitCode;

use threadline_core::{Finding, Severity};
use threadline_sqlx::DoctorOptions;

use crate::cli::{DoctorArgs, ReportFormat};

pub(crate) async fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let (config, install) = crate::config::ops(&args.ops)?;
    let pool = crate::connect::pool(&args.ops.db).await?;
    let mut options = DoctorOptions::default();
    if let Some(role) = args.app_role {
        options = options.app_role(role);
    }
    let findings = threadline_sqlx::doctor(&pool, &install, &config, &options).await?;
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    match args.format {
        ReportFormat::Json => {
            let doc =
                serde_json::json!({"errors": errors, "warnings": warnings, "findings": findings});
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        ReportFormat::Text => {
            print!("{}", render(&findings));
            println!("summary: {errors} errors, {warnings} warnings");
        }
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `severity  check  message`, with `fix:` on the next line, aligned.
fn render(findings: &[Finding]) -> String {
    let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{:<7}  {:<width$}  {}\n",
            f.severity.as_str(),
            f.check,
            f.message
        ));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("{:<7}  {:<width$}  fix: {fix}\n", "", ""));
        }
    }
    out
}
