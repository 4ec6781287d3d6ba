//! `threadline erase`: plan an erasure and print it, or apply it with `--execute`.

use std::process::ExitCode;

use serde_json::Value;
use threadline_sqlx::{ActorRef, EraseOptions, Error, Threadline};

use crate::cli::EraseArgs;

/// Exit code for bad input (a malformed key or actor, a key column).
const BAD_INPUT: u8 = 2;

pub(crate) async fn run(args: EraseArgs) -> anyhow::Result<ExitCode> {
    let pk = match parse_pk(&args.pk) {
        Ok(pk) => pk,
        Err(message) => return Ok(bad_input(&message)),
    };
    let actor = match ActorRef::parse_short(&args.actor) {
        Ok(actor) => actor,
        Err(e) => return Ok(bad_input(&format!("invalid --actor {:?}: {e}", args.actor))),
    };
    let (config, install) = crate::config::ops(&args.ops)?;
    let table: threadline_sqlx::TableName = match args.table.parse() {
        Ok(t) => t,
        Err(e) => return Ok(bad_input(&format!("invalid --table {:?}: {e}", args.table))),
    };
    let mut options = EraseOptions::new(args.reason.clone())
        .placeholder(config.table_policy(&table).placeholder());
    if !args.columns.is_empty() {
        options = options.columns(args.columns.iter().map(|c| c.trim().to_owned()));
    }
    let pool = crate::connect::pool(&args.ops.db).await?;
    let threadline = Threadline::with_options(pool, &install);
    let result = if args.execute {
        threadline
            .erase(&table, pk, &options, &actor)
            .await
            .map(|done| (done.plan, done.action))
    } else {
        threadline
            .plan_erase(&table, pk, &options)
            .await
            .map(|plan| (plan, None))
    };
    let (plan, action) = match result {
        Ok(done) => done,
        Err(
            e @ (Error::EraseKeyColumn { .. }
            | Error::InvalidInput { .. }
            | Error::TableNotFound(_)
            | Error::Core(_)),
        ) => return Ok(bad_input(&e.to_string())),
        Err(e) => return Err(crate::seal::explain(e)),
    };
    print!("{}", plan.render());
    if plan.is_noop() {
        return Ok(ExitCode::SUCCESS);
    }
    match action {
        None => println!("\nplan only: nothing was changed; add --execute to erase"),
        Some(action) => println!(
            "\nerased: {} change(s) masked; recorded as action {} threadline.erase (transaction {})",
            plan.steps.len(),
            action.id,
            action
                .transaction_id
                .map_or_else(|| "?".to_owned(), |t| t.to_string())
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `--pk`: a JSON object for a composite key, else one value (a number when it is one).
fn parse_pk(text: &str) -> Result<Value, String> {
    let text = text.trim();
    if text.starts_with('{') {
        return match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(format!(
                "invalid --pk {text:?}: not a JSON object; write e.g. --pk '{{\"tenant\":1,\"id\":42}}'"
            )),
        };
    }
    if text.is_empty() {
        return Err("--pk is empty; give the row's key, e.g. --pk 42".to_owned());
    }
    Ok(text
        .parse::<i64>()
        .map_or_else(|_| Value::String(text.to_owned()), Value::from))
}

fn bad_input(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(BAD_INPUT)
}
