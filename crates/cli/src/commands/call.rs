//! `zkcredits call`: one paid request from the command line.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use zkcredits_client::payer::{PaidBody, PaidRequest, PayerConfig, TicketOutcome};
use zkcredits_client::reqwest::Method;
use zkcredits_client::reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use super::proxy::recovery_waits;
use super::session::{self, GatewayArgs};

/// Arguments of `zkcredits call`.
#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Send a JSON-RPC call: METHOD_OR_PATH is the method, BODY its params.
    #[arg(long)]
    rpc: bool,
    /// The gateway's JSON-RPC route.
    #[arg(long, default_value = "/rpc")]
    rpc_path: String,
    /// A path on the gateway (`/v1/chat/completions`), or with `--rpc` a JSON-RPC method
    /// (`eth_blockNumber`).
    method_or_path: String,
    /// The JSON body (with `--rpc`: the params, default `[]`); `@FILE` reads a file.
    body: Option<String>,
    /// Misbehave on purpose (the demo's cheater): skip the check that a note's next
    /// ticket is unspent, so a journal put back from an old copy spends a ticket a
    /// second time and the provider slashes the note.
    #[arg(long, hide = true)]
    i_want_to_double_spend: bool,
}

pub(crate) fn run(args: CallArgs) -> anyhow::Result<()> {
    let body = match args.body.as_deref() {
        Some(b) if b.starts_with('@') => {
            std::fs::read_to_string(&b[1..]).with_context(|| format!("reading {}", &b[1..]))?
        }
        Some(b) => b.to_owned(),
        None if args.rpc => "[]".to_owned(),
        None => anyhow::bail!("BODY is required (a JSON body, or @FILE)"),
    };
    let (path, body) = if args.rpc {
        let params: serde_json::Value =
            serde_json::from_str(&body).context("the params are not JSON")?;
        let call = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": args.method_or_path, "params": params});
        (args.rpc_path.clone(), call.to_string())
    } else {
        anyhow::ensure!(
            args.method_or_path.starts_with('/'),
            "without --rpc the first argument is a path such as /v1/chat/completions"
        );
        serde_json::from_str::<serde_json::Value>(&body).context("the body is not JSON")?;
        (args.method_or_path.clone(), body)
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let payer = PayerConfig {
            check_note_positions: !args.i_want_to_double_spend,
            ..PayerConfig::default()
        };
        let session = session::open(&args.gateway, payer).await?;
        let report = session.payer.recover(&recovery_waits(3)).await?;
        if !report.completed.is_empty() || !report.needs_close.is_empty() {
            eprintln!(
                "recovery: {} ticket(s) completed, notes {:?} need a close",
                report.completed.len(),
                report.needs_close
            );
        }
        if !args.i_want_to_double_spend {
            session::check_positions(&session.payer).await?;
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let reply = session
            .payer
            .send(PaidRequest {
                method: Method::POST,
                path_and_query: path,
                headers,
                body: body.into_bytes().into(),
            })
            .await
            .map_err(|e| {
                let code = e.code().to_owned();
                crate::report::coded(e, &code)
            })?;
        eprintln!("HTTP {}", reply.status);
        let mut out = std::io::stdout().lock();
        match reply.body {
            PaidBody::Complete(bytes) => {
                out.write_all(&bytes)?;
                out.write_all(b"\n")?;
            }
            PaidBody::Stream(mut stream) => {
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(chunk) => {
                            out.write_all(&chunk)?;
                            out.flush()?;
                        }
                        Err(cut) => {
                            eprintln!("{cut}");
                            break;
                        }
                    }
                }
            }
        }
        drop(out);
        match reply.outcome.resolve().await {
            TicketOutcome::Settled(s) => eprintln!(
                "note {}: next ticket {}, refunds {}, penalties {}, remaining {} credit units",
                s.note, s.next_index, s.refunds, s.penalties, s.remaining
            ),
            TicketOutcome::NeedsClose { note, code } => eprintln!(
                "the gateway refused the request before admission ({code}): nothing was charged, but note {note} has shown this ticket and must not use it for another request; close it with `zkcredits close`"
            ),
            TicketOutcome::Pending { note, reason } => eprintln!(
                "note {note}: no receipt yet ({reason}); the next `zkcredits call` or `zkcredits proxy` fetches it"
            ),
        }
        anyhow::ensure!(
            reply.status.is_success(),
            "the gateway answered {}",
            reply.status
        );
        Ok(())
    })
}
