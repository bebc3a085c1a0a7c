//! The long-lived context every operation runs in (kube-runtime's `Arc<Ctx>`, cargo's
//! `GlobalContext`): the state directory, where secrets come from, the clock, the harness of
//! embedded emulators, and how progress is shown. One is made per process (the command line)
//! or per daemon, and shared by every cycle; what varies per call (where the fleet is, a saved
//! plan, the mass-retire share) is an option struct of that operation.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::clock::SharedClock;
use crate::harness::Harness;
use crate::model::{Fleet, Platform as FleetPlatform, Secrets};
use crate::platform::{self, ClientEnv, PlatformError};
use crate::state::{Actor, StateDir};

/// What every operation shares.
pub struct Context {
    state: StateDir,
    secrets: Secrets,
    clock: SharedClock,
    harness: Harness,
    progress: Option<Arc<dyn crate::content::Progress>>,
    retry: platform::retry::RetryPolicy,
    requests: Arc<platform::retry::RequestStats>,
    /// Write budgets per platform: they outlive each command's or cycle's clients.
    budgets: platform::budget::Budgets,
    memo: Option<Arc<crate::memo::Memo>>,
    commits: crate::source::signature::CommitPolicy,
    actor: Option<Actor>,
    recorded: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("state", &self.state.path()).finish_non_exhaustive()
    }
}

impl Context {
    /// A context on `state`, reading secrets through `secrets`, on the system clock.
    pub fn new(state: StateDir, secrets: Secrets) -> Context {
        let clock = state.clock().clone();
        Context {
            state,
            secrets,
            clock,
            harness: Harness::new(),
            progress: None,
            retry: Default::default(),
            requests: Default::default(),
            budgets: Default::default(),
            memo: None,
            commits: Default::default(),
            actor: None,
            recorded: None,
        }
    }

    /// Observes every Platform from the recording `patchops inventory record` wrote to `dir`
    /// (`<dir>/<platform>.json`) instead of its endpoint: planning without credentials or
    /// network, as a pull request from a fork needs. Changes are refused.
    #[must_use]
    pub fn with_recorded_inventory(mut self, dir: std::path::PathBuf) -> Context {
        self.recorded = Some(dir);
        self
    }

    /// The recording this context observes from, if any ([`Context::with_recorded_inventory`]).
    pub fn recorded_inventory(&self) -> Option<&std::path::Path> {
        self.recorded.as_deref()
    }

    /// Starts embedded platforms with `harness` (`plan --emulate`: emulators seeded from a
    /// recording).
    #[must_use]
    pub fn with_harness(mut self, harness: Harness) -> Context {
        self.harness = harness;
        self
    }

    /// Audits every action as done by `actor` (the command line sets it from the account and
    /// host it runs as; the library never asks the system).
    #[must_use]
    pub fn with_actor(mut self, actor: Actor) -> Context {
        self.actor = Some(actor);
        self
    }

    /// Who this process runs as, when known.
    pub fn actor(&self) -> Option<&Actor> {
        self.actor.as_ref()
    }

    /// Admits only commits `policy` admits (commit signature verification). The command line
    /// always sets it, from `--verify-commits` and the trust roots of the state directory or
    /// `--commit-signers`; a context made without it reads commits unverified.
    #[must_use]
    pub fn with_commit_policy(mut self, policy: crate::source::signature::CommitPolicy) -> Context {
        self.commits = policy;
        self
    }

    /// Which commits this context admits.
    pub fn commit_policy(&self) -> &crate::source::signature::CommitPolicy {
        &self.commits
    }

    /// Runs on `clock` (the state directory's records are time-stamped with it too).
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Context {
        self.state = self.state.with_clock(clock.clone());
        self.clock = clock;
        self
    }

    /// Retries transient platform failures with `policy` (the one retry layer,
    /// [`platform::retry`]).
    #[must_use]
    pub fn with_retry(mut self, policy: platform::retry::RetryPolicy) -> Context {
        self.retry = policy;
        self
    }

    /// Shows downloads through `progress`.
    #[must_use]
    pub fn with_progress(mut self, progress: Arc<dyn crate::content::Progress>) -> Context {
        self.progress = Some(progress);
        self
    }

    /// Keeps what cycles can reuse (the parsed fleet, verified catalogs, the plan of unchanged
    /// inputs) in a memo: for a long-running process (`patchops run`), whose every cycle would
    /// otherwise redo it. See [`crate::memo`].
    pub fn with_memo(mut self) -> Context {
        self.memo = Some(Arc::new(crate::memo::Memo::new()));
        self
    }

    /// The memo, when this context keeps one.
    pub fn memo(&self) -> Option<&Arc<crate::memo::Memo>> {
        self.memo.as_ref()
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// Where referenced secrets are read from.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// Every platform request's outcome so far, per platform.
    pub fn requests(&self) -> &platform::retry::RequestStats {
        &self.requests
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The current time, from the clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The embedded emulators.
    pub fn harness(&self) -> &Harness {
        &self.harness
    }

    /// How downloads are shown, if at all.
    pub fn progress(&self) -> Option<&Arc<dyn crate::content::Progress>> {
        self.progress.as_ref()
    }

    /// The content cache under the state directory, showing progress where asked to.
    pub fn content(&self) -> crate::content::ContentCache {
        match &self.progress {
            Some(p) => self.state.content().with_progress(p.clone()),
            None => self.state.content(),
        }
    }

    /// What clients are built with.
    pub fn client_env(&self) -> ClientEnv<'_> {
        ClientEnv {
            secrets: &self.secrets,
            clock: &self.clock,
            state: &self.state,
            retry: self.retry,
            requests: &self.requests,
            budgets: &self.budgets,
        }
    }

    /// The client of a fleet Platform; an embedded one is reached through the harness.
    pub async fn connect(
        &self,
        fleet: &Fleet,
        platform: &FleetPlatform,
    ) -> Result<Box<dyn platform::PlatformClient>, PlatformError> {
        if let Some(dir) = &self.recorded {
            let (name, ty) = (platform.metadata.name.clone(), platform.spec.platform_type);
            return Ok(Box::new(platform::inventory::InventoryPlatform::recorded(name, ty, dir)));
        }
        let embedded = self.embedded_endpoint(fleet, platform).await?;
        platform::connect(platform, self.client_env(), embedded.as_ref())
    }

    /// Where an embedded Platform answers (started by the harness), `None` for real ones.
    pub async fn embedded_endpoint(
        &self,
        fleet: &Fleet,
        platform: &FleetPlatform,
    ) -> Result<Option<platform::EmbeddedEndpoint>, PlatformError> {
        if crate::harness::is_embedded(platform) {
            Ok(Some(self.harness.endpoint(fleet, platform, &self.state, &self.secrets, &self.clock).await?))
        } else {
            Ok(None)
        }
    }
}
