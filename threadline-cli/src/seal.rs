//! `threadline seal` and `threadline verify-seals`.

use std::process::ExitCode;

use threadline_sqlx::{Error, SealOutcome, Threadline};

use crate::cli::{SealArgs, VerifySealsArgs};

/// Exit code for bad input (a seal number that does not exist).
const BAD_INPUT: u8 = 2;

/// Problems printed before the summary line; the rest are counted.
const SHOWN_PROBLEMS: usize = 50;

pub(crate) async fn seal(args: SealArgs) -> anyhow::Result<ExitCode> {
    let threadline = handle(&args.ops).await?;
    match threadline.seal().await.map_err(explain)? {
        SealOutcome::Sealed(s) => println!(
            "sealed seal {}: txids [{}, {}), {} transactions, {} changes, {} actions\nhash {}",
            s.id,
            s.from_txid,
            s.to_txid,
            s.transaction_count,
            s.change_count,
            s.action_count,
            s.hash
        ),
        SealOutcome::NothingNew { from_txid } => println!(
            "nothing to seal: no transaction finished since the last seal (the next seal starts at txid {from_txid})"
        ),
        SealOutcome::Busy => {
            println!("another seal is being taken right now; this run did nothing");
        }
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn verify(args: VerifySealsArgs) -> anyhow::Result<ExitCode> {
    let threadline = handle(&args.ops).await?;
    let v = match threadline.verify_seals(args.from_seal).await {
        Ok(v) => v,
        Err(e @ Error::InvalidInput { .. }) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(BAD_INPUT));
        }
        Err(e) => return Err(explain(e)),
    };
    let Some(head) = &v.head else {
        eprintln!("no seal has been taken yet: run `threadline seal` first");
        return Ok(if args.head {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    };
    if !v.is_ok() {
        for problem in v.problems.iter().take(SHOWN_PROBLEMS) {
            eprintln!("{problem}");
        }
        if v.problems.len() > SHOWN_PROBLEMS {
            eprintln!("... and {} more", v.problems.len() - SHOWN_PROBLEMS);
        }
        eprintln!(
            "verification FAILED: {} difference(s); the first: {}",
            v.problems.len(),
            v.problems[0]
        );
        return Ok(ExitCode::FAILURE);
    }
    if args.head {
        println!("{}", head.hash);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(purged) = v.purged_through {
        println!(
            "seals 1 to {purged} cover rows deleted by retention: their content is not verified; verification starts from the oldest retained seal, {}",
            purged + 1
        );
    }
    match v.first_verified {
        Some(first) => println!(
            "verified seals {first} to {}: {} transactions, {} changes, {} actions",
            head.id, v.transactions, v.changes, v.actions
        ),
        None => println!("no retained seal to verify; the chain links verify"),
    }
    if !v.erased.is_empty() {
        let listed: Vec<String> = v
            .erased
            .iter()
            .take(SHOWN_PROBLEMS)
            .map(|e| format!("change {} (action {})", e.change_id, e.action_id))
            .collect();
        println!(
            "{} erased change(s) verified against the digests kept at seal time: {}{}",
            v.erased.len(),
            listed.join(", "),
            if v.erased.len() > SHOWN_PROBLEMS {
                ", ..."
            } else {
                ""
            }
        );
    }
    if v.unlinked_actions > 0 {
        println!(
            "{} action(s) lost the link to a purged transaction and verified against their sealed link",
            v.unlinked_actions
        );
    }
    println!("head: seal {} {}", head.id, head.hash);
    Ok(ExitCode::SUCCESS)
}

async fn handle(ops: &crate::cli::OpsArgs) -> anyhow::Result<Threadline> {
    let (_, install) = crate::config::ops(ops)?;
    let pool = crate::connect::pool(&ops.db).await?;
    Ok(Threadline::with_options(pool, &install))
}

/// A database error with the usual fix: an install without the seal tables, or a role
/// without the owner's privileges.
pub(crate) fn explain(e: Error) -> anyhow::Error {
    let code = match &e {
        Error::Database(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    match code.as_deref() {
        Some("42P01" | "42703") => anyhow::Error::new(e).context(
            "the seal tables are missing or out of date: run `threadline install` again (it only adds what is missing) and apply the migration",
        ),
        Some("42501") => anyhow::Error::new(e).context(
            "permission denied: in a hardened install only the owner role writes seals and erasures; run this as a role that is a member of it (see guides/compliance.md)",
        ),
        _ => e.into(),
    }
}
