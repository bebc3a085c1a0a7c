//! `patchops run`: the daemon.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use reconciler::daemon::{webhook::WebhookSecrets, Daemon, DaemonOptions};
use reconciler::model::SecretRef;

use super::{print_error, SourceArgs, EXIT_ERROR, EXIT_OK};

#[derive(Debug, Args)]
#[command(after_long_help = "\
run reconciles the fleet until stopped: each cycle is exactly `apply --auto-approve` (the
merged commit is the approval) for the newest commit of the branch. Cycles never overlap and
take the state directory's apply lock.

What starts a cycle:
  - the poll interval (--interval, ±7.5 %): the branch is fetched again;
  - for a local repository, its refs moving (a commit or a push into it), seen at once;
  - a webhook: POST /hooks/github (X-Hub-Signature-256), /hooks/gitlab (X-Gitlab-Token),
    /hooks/azure (basic auth), /hooks/generic (X-Patchops-Signature-256); a webhook only wakes
    the loop, which fetches and verifies the fleet itself;
  - POST /reconcile with `Authorization: Bearer <token>`;
  - the time a waiting change opens (a ring's soak ends, a window opens), no sooner;
  - a retry after a failure, with exponential backoff (10 s doubling to 10 min).

The endpoint (--listen, loopback by default) also serves /healthz, /readyz, /status (JSON
conditions per product, platform and ring), /history (the last cycles) and /metrics
(Prometheus text format).

Secrets are references: env:NAME or file:PATH, never the value on the command line.
SIGTERM or SIGINT: no new cycle starts; the one in flight may finish (30 s); then it exits 0.

Example:
  patchops run --path examples/fleet --listen 127.0.0.1:9474 --github-secret env:GH_HOOK_SECRET")]
pub struct RunArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Report what would change, never apply.
    #[arg(long)]
    pub plan_only: bool,
    /// How often the branch is fetched (a duration such as 30s, 1m, 5m) [default: the fleet's
    /// Reconciler `interval`, else 1m].
    #[arg(long, value_parser = duration, env = "PATCHOPS_INTERVAL")]
    pub interval: Option<Duration>,
    /// Do not watch a local repository's refs (rely on polling and webhooks).
    #[arg(long)]
    pub no_watch: bool,
    /// Where the HTTP endpoint listens, or `off`.
    #[arg(long, default_value = "127.0.0.1:9474", env = "PATCHOPS_LISTEN")]
    pub listen: String,
    /// GitHub webhook secret (env:NAME or file:PATH).
    #[arg(long, value_name = "REF", value_parser = secret_ref)]
    pub github_secret: Option<SecretRef>,
    /// GitLab webhook secret token (env:NAME or file:PATH).
    #[arg(long, value_name = "REF", value_parser = secret_ref)]
    pub gitlab_token: Option<SecretRef>,
    /// Azure DevOps service hook basic authentication, `user:password` (env:NAME or file:PATH).
    #[arg(long, value_name = "REF", value_parser = secret_ref)]
    pub azure_credentials: Option<SecretRef>,
    /// HMAC-SHA256 key of generic webhook senders (env:NAME or file:PATH).
    #[arg(long, value_name = "REF", value_parser = secret_ref)]
    pub webhook_secret: Option<SecretRef>,
    /// Bearer token that POST /reconcile needs (env:NAME or file:PATH); disabled without one.
    #[arg(long, value_name = "REF", value_parser = secret_ref)]
    pub token: Option<SecretRef>,
    /// The first retry's wait after a failure; it doubles with each further failure, to at most
    /// 10 minutes (for the fleet, and for each failing product on a platform).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub backoff: Duration,
    /// Stop after this many cycles (for scripts and benchmarks).
    #[arg(long, value_name = "N")]
    pub max_cycles: Option<u64>,
    /// How many of the last cycles /history keeps (and /status's conditions come from).
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=10000))]
    pub history: u16,
}

fn duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration such as 30s or 5m ({e})"))?;
    if d < Duration::from_secs(1) {
        return Err(format!("`{s}` is shorter than a second"));
    }
    Ok(d)
}

fn secret_ref(s: &str) -> Result<SecretRef, String> {
    match s.split_once(':') {
        Some(("env", name)) if !name.is_empty() => Ok(SecretRef::Env(name.to_string())),
        // A path on the command line is the shell's: relative to the current directory (the
        // fleet's own `{ file: }` references are relative to the repository's root).
        Some(("file", path)) if !path.is_empty() => {
            let absolute = std::path::absolute(path).map_err(|e| format!("file:{path}: {e}"))?;
            Ok(SecretRef::File(absolute.display().to_string()))
        }
        _ => Err("a secret is given by reference: env:NAME or file:PATH (never the value itself)".to_string()),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}

pub async fn run(args: RunArgs) -> u8 {
    // Crash tests: abort or pause at a named point (see reconciler::failpoint).
    for (var, arm) in [
        ("PATCHOPS_FAILPOINT", reconciler::failpoint::arm as fn(&str) -> Result<(), reconciler::failpoint::BadSpec>),
        ("PATCHOPS_PAUSEPOINT", reconciler::failpoint::arm_pause),
    ] {
        if let Ok(spec) = std::env::var(var) {
            if let Err(e) = arm(&spec) {
                print_error(&format!("{var}: {e}"));
                return EXIT_ERROR;
            }
        }
    }
    // A long-running process: cycles reuse what did not change (the parsed fleet, verified
    // catalogs, the plan of unchanged inputs).
    let ctx = match args.source.context() {
        Ok(ctx) => ctx.with_memo(),
        Err(e) => {
            super::report(&e);
            return EXIT_ERROR;
        }
    };
    let read = |what: &str, r: &Option<SecretRef>| -> Result<Option<String>, String> {
        match r {
            None => Ok(None),
            Some(r) => ctx.secrets().read(r).map(Some).map_err(|e| format!("--{what} {r}: {e}")),
        }
    };
    let secrets = (|| -> Result<(WebhookSecrets, Option<String>), String> {
        Ok((
            WebhookSecrets {
                github: read("github-secret", &args.github_secret)?,
                gitlab: read("gitlab-token", &args.gitlab_token)?,
                azure: read("azure-credentials", &args.azure_credentials)?,
                generic: read("webhook-secret", &args.webhook_secret)?,
            },
            read("token", &args.token)?,
        ))
    })();
    let (webhooks, token) = match secrets {
        Ok(s) => s,
        Err(e) => {
            print_error(&e);
            return EXIT_ERROR;
        }
    };
    let listen = match args.listen.as_str() {
        "off" | "none" => None,
        addr => match addr.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(e) => {
                print_error(&format!("--listen {addr}: {e}; give an address such as 127.0.0.1:9474, or off"));
                return EXIT_ERROR;
            }
        },
    };
    let mut options = DaemonOptions::new(args.source.source());
    options.plan_only = args.plan_only;
    options.interval = args.interval;
    options.watch = !args.no_watch;
    options.listen = listen;
    options.webhooks = webhooks;
    options.token = token;
    options.max_cycles = args.max_cycles;
    options.history = usize::from(args.history);
    options.backoff.base = args.backoff;
    let daemon = match Daemon::start(Arc::new(ctx), options).await {
        Ok(d) => d,
        Err(e) => {
            print_error(&e.to_string());
            return EXIT_ERROR;
        }
    };
    let endpoint = daemon.addr().map(|a| format!("; listening on http://{a}")).unwrap_or_default();
    eprintln!(
        "patchops run: reconciling {} ({}) every {}{}{endpoint}",
        args.source.repo,
        args.source.path,
        args.interval
            .map_or("the fleet's interval (1m by default)".to_string(), |i| humantime::format_duration(i).to_string()),
        if args.plan_only { ", plan only" } else { "" }
    );
    daemon.run(shutdown_signal()).await;
    eprintln!("patchops run: stopped");
    EXIT_OK
}
