//! What `proxy` and `call` share: the deployment, the wallet, the gateway's discovery
//! document checked against both, and the spender over the note journal.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use zkcredits_chain::Deployment;
use zkcredits_client::Spender;
use zkcredits_client::gateway_client::{
    Discovery, GatewayClient, GatewayClientConfig, GatewayError,
};
use zkcredits_client::home::ClientHome;
use zkcredits_client::payer::{Payer, PayerConfig};
use zkcredits_client::wallet::{self, Wallet};

/// How to reach the gateway and which pool to pay from.
#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// The gateway's base URL.
    #[arg(long, env = "ZKCREDITS_GATEWAY")]
    pub(crate) gateway: String,
    /// A SOCKS5 proxy for all gateway traffic (`socks5h://127.0.0.1:9050` for Tor).
    #[arg(long, env = "ZKCREDITS_SOCKS5")]
    pub(crate) socks5: Option<String>,
    /// Accept a plain http:// gateway that is not on this machine. Anyone on the path
    /// then reads your answers and can spend a credential before the gateway sees it:
    /// use https:// or a .onion address through --socks5 instead.
    #[arg(long)]
    pub(crate) allow_plain_http: bool,
    /// The deployment JSON [default: $ZKCREDITS_HOME/deployment.json, which `zkcredits
    /// join` writes, else $ZKCREDITS_HOME/devnet.json].
    #[arg(long)]
    pub(crate) deployment: Option<PathBuf>,
}

/// An open session: a payer and what the gateway published.
pub(crate) struct Session {
    pub(crate) payer: Payer,
    pub(crate) discovery: Discovery,
}

/// Runs the position check of every free note ([`Payer::locate`]) and says what it
/// found: notes moved forward past tickets an older journal never recorded, and notes
/// retired because a spent ticket's receipt cannot be used.
pub(crate) async fn check_positions(payer: &Payer) -> anyhow::Result<()> {
    let report = payer
        .locate()
        .await
        .context("asking the gateway whether the notes' next tickets are spent")?;
    for (note, tickets) in &report.fast_forwarded {
        eprintln!(
            "note {note}: the gateway holds receipts for {tickets} ticket(s) this journal never recorded (an old copy of the journal?); the note moved past them"
        );
    }
    for (note, why) in &report.needs_close {
        eprintln!(
            "note {note}: {why}; it makes no further request: close it with `zkcredits close`"
        );
    }
    if report.unreachable > 0 {
        eprintln!(
            "{} note(s) could not be checked (gateway unreachable); they are checked before their first request",
            report.unreachable
        );
    }
    Ok(())
}

/// The deployment named by `path`, else the one `zkcredits join` saved, else the
/// devnet's.
pub(crate) fn load_deployment(
    home: &ClientHome,
    path: Option<PathBuf>,
) -> anyhow::Result<Deployment> {
    let path = path.unwrap_or_else(|| {
        Some(home.joined_deployment())
            .filter(|p| p.exists())
            .unwrap_or_else(|| home.devnet_deployment())
    });
    Deployment::load(&path).with_context(|| format!("reading the deployment {}", path.display()))
}

/// The gateway client for `args`.
pub(crate) fn gateway_client(args: &GatewayArgs) -> anyhow::Result<GatewayClient> {
    let mut config = GatewayClientConfig::new(args.gateway.clone());
    config.socks5.clone_from(&args.socks5);
    config.allow_plain_http = args.allow_plain_http;
    Ok(GatewayClient::new(&config)?)
}

/// Opens the wallet, fetches and checks the discovery document (keeping a copy for the
/// exit without the gateway), opens the spender (syncing the note tree).
pub(crate) async fn open(args: &GatewayArgs, payer: PayerConfig) -> anyhow::Result<Session> {
    let home = ClientHome::from_env();
    crate::dev::check_keys(&home.keys(), "the client")?;
    let deployment = load_deployment(&home, args.deployment.clone())?;
    let passphrase = wallet::passphrase(false)?;
    let wallet = Wallet::load(&home.wallet(), &passphrase)?;
    let gateway = gateway_client(args)?;
    let saved = home.discovery(&deployment);
    let discovery = match gateway.discover_and_save(&saved).await {
        Ok(d) => d,
        // A gateway that is down (or restarting) does not keep the user's applications
        // from starting: the copy saved last time says what it takes, and requests
        // simply fail with `gateway_unreachable` until it is back.
        Err(e @ (GatewayError::Connect { .. } | GatewayError::AnswerLost(_))) if saved.exists() => {
            let d = Discovery::load(&saved)
                .with_context(|| format!("the gateway {} is unreachable ({e})", args.gateway))?;
            eprintln!(
                "the gateway {} is unreachable ({e}); using its discovery document saved at {}",
                args.gateway,
                saved.display()
            );
            d
        }
        Err(e) => {
            return Err(anyhow::Error::new(e))
                .with_context(|| format!("reading the discovery document of {}", args.gateway));
        }
    };
    let spender = Spender::open(
        &home,
        &wallet,
        deployment.clone(),
        discovery.constants.clone(),
    )
    .await
    .with_context(|| {
        format!(
            "checking the gateway {} and opening the notes",
            args.gateway
        )
    })?;
    let payer = Payer::new(Arc::new(spender), gateway, payer).with_rules(discovery.rules.clone());
    Ok(Session { payer, discovery })
}
