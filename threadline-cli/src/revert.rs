//! `threadline revert`: plan a revert and print it, or apply it with `--execute`.

use std::process::ExitCode;

use threadline_sqlx::{
    ActorRef, Error, RevertError, RevertPlan, RevertTarget, Threadline, TransactionExt,
};

use crate::cli::RevertArgs;

/// Exit code for bad input (an unknown target, a malformed actor).
const BAD_INPUT: u8 = 2;

pub(crate) async fn run(args: RevertArgs) -> anyhow::Result<ExitCode> {
    let target = match (
        args.change,
        args.transaction,
        args.correlation_id,
        args.request_id,
    ) {
        (Some(id), ..) => RevertTarget::Change(id),
        (_, Some(id), ..) => RevertTarget::Transaction(id),
        (_, _, Some(id), _) => RevertTarget::CorrelationId(id),
        (_, _, _, Some(id)) => RevertTarget::RequestId(id),
        _ => {
            return Ok(bad_input(
                "give one of --change, --transaction, --correlation-id or --request-id",
            ));
        }
    };
    if let Err(e) = target.validate() {
        return Ok(bad_input(&e.to_string()));
    }
    let actor = match ActorRef::parse_short(&args.actor) {
        Ok(actor) => actor,
        Err(e) => return Ok(bad_input(&format!("invalid --actor {:?}: {e}", args.actor))),
    };
    let (_, install) = crate::config::ops(&args.ops)?;
    let pool = crate::connect::pool(&args.ops.db).await?;
    let threadline = Threadline::new(pool.clone()).with_schema(install.schema.clone());
    let planned = match threadline
        .revert(target)
        .skip_conflicts(args.skip_conflicts)
        .plan()
        .await
    {
        Ok(plan) => plan,
        Err(Error::Core(threadline_core::Error::Revert(
            e @ (RevertError::NothingToRevert(_) | RevertError::InvalidTarget(_)),
        ))) => return Ok(bad_input(&e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let shown = planned.render();
    print!("{shown}");
    let blocked = !planned.is_clean();
    if !args.execute {
        if blocked && !args.skip_conflicts {
            eprintln!("{}", refusal(&planned));
            return Ok(ExitCode::FAILURE);
        }
        println!("\nplan only: nothing was changed; add --execute to apply it");
        return Ok(if blocked {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let mut tx = pool.begin().await?;
    tx.with_actor(&actor).await?;
    match planned.execute(&mut tx).await {
        Ok(done) => {
            tx.commit().await?;
            let skipped: Vec<String> = done
                .skipped()
                .map(|s| format!("{} (change {})", s.table, s.change_id))
                .collect();
            println!(
                "\napplied: reverted {} change(s) in transaction {} (action {} threadline.revert)",
                done.applied().len(),
                done.transaction_id
                    .map_or_else(|| "?".to_owned(), |id| id.to_string()),
                done.action.id
            );
            if !skipped.is_empty() {
                println!("skipped: {}", skipped.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(Error::RevertRefused(plan)) => {
            tx.rollback().await?;
            if plan.render() != shown {
                print!(
                    "\nunder the revert's lock the plan changed:\n{}",
                    plan.render()
                );
            }
            eprintln!("{}", refusal(&plan));
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e.into())
        }
    }
}

fn refusal(plan: &RevertPlan) -> String {
    plan.refusal()
        .map(|e| format!("error: {e}"))
        .unwrap_or_default()
}

fn bad_input(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(BAD_INPUT)
}
