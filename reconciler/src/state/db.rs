//! The state database (`<state>/state.db`, SQLite): the journal of in-flight actions, the audit
//! log, when each ring reached each version (for soak times), and the content cache index.
//!
//! Every write is its own transaction, and SQLite's write-ahead log makes each one atomic and
//! durable: a crash loses at most the step that was being written, never the file.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::StateError;

/// The schema's migrations, in order: migration `i` takes `PRAGMA user_version` from `i` to
/// `i + 1`. Append to this list, never edit an entry: a state directory written by an older
/// patchops is brought up to date on open, one transaction per migration. Version 1 is the
/// schema of the first releases, which set no version (so it is written idempotently).
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

const V1: &str = "
CREATE TABLE IF NOT EXISTS journal (
    id          INTEGER PRIMARY KEY,
    run         TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    product     TEXT NOT NULL,
    platform    TEXT NOT NULL,
    ring        TEXT,
    action      TEXT NOT NULL,
    step        TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    finished_at TEXT,
    outcome     TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    id              INTEGER PRIMARY KEY,
    at              TEXT NOT NULL,
    run             TEXT NOT NULL,
    source          TEXT NOT NULL,
    catalog         TEXT,
    catalog_serial  INTEGER,
    content_sha256  TEXT,
    product         TEXT NOT NULL,
    catalog_product TEXT NOT NULL,
    platform        TEXT NOT NULL,
    ring            TEXT,
    grp             TEXT,
    action          TEXT NOT NULL,
    version         TEXT,
    object_id       TEXT,
    policy          TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    message         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_product ON audit (product, platform);
CREATE TABLE IF NOT EXISTS ring_reached (
    product    TEXT NOT NULL,
    platform   TEXT NOT NULL,
    ring       TEXT NOT NULL,
    version    TEXT NOT NULL,
    reached_at TEXT NOT NULL,
    PRIMARY KEY (product, platform, ring)
);
CREATE TABLE IF NOT EXISTS catalogs (
    source      TEXT PRIMARY KEY,
    serial      INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    accepted_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS content (
    sha256      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    origin      TEXT NOT NULL,
    verified_at TEXT NOT NULL
);
";

/// Version 2: suspensions (`patchops suspend`).
const V2: &str = "
CREATE TABLE suspended (
    scope  TEXT NOT NULL,
    name   TEXT NOT NULL,
    since  TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (scope, name)
);
";

/// Version 3: the daemon's drift baseline (one row).
const V3: &str = "
CREATE TABLE drift_baseline (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    baseline TEXT NOT NULL,
    saved_at TEXT NOT NULL
);
";

/// Version 4: the last commit an apply acted on (strict commit verification starts after it).
const V4: &str = "
CREATE TABLE applied_commit (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    repo       TEXT NOT NULL,
    commit_id  TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
";

/// Version 5: who or what approved each audited action, from which user and host, and who
/// signed the commit.
const V5: &str = "
ALTER TABLE audit ADD COLUMN approval TEXT;
ALTER TABLE audit ADD COLUMN user_name TEXT;
ALTER TABLE audit ADD COLUMN host TEXT;
ALTER TABLE audit ADD COLUMN commit_signer TEXT;
";

/// Records that a ring runs a version from a time (kept if it already ran that version).
const RING_REACHED: &str =
    "INSERT INTO ring_reached (product, platform, ring, version, reached_at) VALUES (?1, ?2, ?3, ?4, ?5)
    ON CONFLICT (product, platform, ring) DO UPDATE SET version = excluded.version, reached_at = excluded.reached_at
    WHERE ring_reached.version != excluded.version";

/// The open state database.
#[derive(Debug)]
pub struct StateDb {
    conn: Connection,
    path: PathBuf,
    clock: crate::clock::SharedClock,
}

/// One audit record: what an action did and the chain that admitted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// The apply run.
    pub run: String,
    /// The fleet commit (or directory) it came from.
    pub source: String,
    /// The CatalogSource.
    pub catalog: Option<String>,
    /// Its serial.
    pub catalog_serial: Option<u64>,
    /// SHA-256 of the content handed to the platform.
    pub content_sha256: Option<String>,
    /// The fleet Product.
    pub product: String,
    /// The catalog product id.
    pub catalog_product: String,
    /// The Platform.
    pub platform: String,
    /// The ring.
    pub ring: Option<String>,
    /// The ring's group.
    pub group: Option<String>,
    /// publish, update, reconfigure or retire.
    pub action: String,
    /// The version published.
    pub version: Option<String>,
    /// The platform object the action produced or changed.
    pub object_id: Option<String>,
    /// The policy decision, such as `permitted by 5 policies`.
    pub policy: String,
    /// `succeeded`, `failed` or `denied`.
    pub outcome: String,
    /// What happened.
    pub message: String,
    /// Who or what approved it: `prompt`, `--auto-approve`, a plan file and its digest, or the
    /// daemon and its trigger (absent in records older than this field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// The user the apply ran as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The host it ran on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Who signed the commit, when commit signatures are required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_signer: Option<String>,
}

/// A journal entry left unfinished by an earlier run (it crashed or was killed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    /// The run.
    pub run: String,
    /// `action product on platform (ring)`.
    pub subject: String,
    /// The last step recorded.
    pub step: String,
    /// Its detail, such as the object created.
    pub detail: String,
}

fn now_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
}

/// Every ring's recorded version: (product, platform, ring) → (version, when it reached it).
#[derive(Debug, Clone, Default)]
pub struct RingRecords {
    /// By product: its rings' (platform, ring, version, time). A product has a few rings, so
    /// a lookup borrows the product name and scans those few; nothing is allocated.
    reached: std::collections::HashMap<String, Vec<RingRecord>>,
    count: u64,
}

#[derive(Debug, Clone)]
struct RingRecord {
    platform: String,
    ring: String,
    version: String,
    at: DateTime<Utc>,
}

impl RingRecords {
    /// When the ring reached `version`, if that is the version recorded for it.
    pub fn reached_at(&self, product: &str, platform: &str, ring: &str, version: &str) -> Option<DateTime<Utc>> {
        self.reached
            .get(product)?
            .iter()
            .find(|r| r.platform == platform && r.ring == ring)
            .filter(|r| r.version == version)
            .map(|r| r.at)
    }

    /// How many rings have a record.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Notes what [`StateDb::rings_reached`] just wrote, as the database now holds it (a ring
    /// reaching another version replaces its record).
    pub fn note(&mut self, product: &str, platform: &str, ring: &str, version: &str, at: DateTime<Utc>) {
        let rings = self.reached.entry(product.to_string()).or_default();
        match rings.iter_mut().find(|r| r.platform == platform && r.ring == ring) {
            Some(r) if r.version != version => {
                r.version = version.to_string();
                r.at = at;
            }
            Some(_) => {}
            None => {
                rings.push(RingRecord { platform: platform.into(), ring: ring.into(), version: version.into(), at });
                self.count += 1;
            }
        }
    }
}

impl StateDb {
    /// Opens (creating) `<dir>/state.db`, time-stamping with the system clock.
    pub fn open(dir: &Path) -> Result<StateDb, StateError> {
        StateDb::open_with_clock(dir, crate::clock::system())
    }

    /// Opens (creating) `<dir>/state.db`, time-stamping records with `clock`.
    pub fn open_with_clock(dir: &Path, clock: crate::clock::SharedClock) -> Result<StateDb, StateError> {
        let path = dir.join("state.db");
        let err = |reason: String| StateError::new(&path, reason);
        std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create the directory: {e}")))?;
        let conn = Connection::open(&path).map_err(|e| err(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| err(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| err(e.to_string()))?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| err(e.to_string()))?;
        let mut db = StateDb { conn, path, clock };
        db.migrate()?;
        Ok(db)
    }

    /// Brings the schema up to [`MIGRATIONS`]`.len()`; refuses a file a newer patchops wrote.
    fn migrate(&mut self) -> Result<(), StateError> {
        let path = self.path.clone();
        let err = |reason: String| StateError::new(&path, reason);
        let version: usize = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
            .map_err(|e| err(e.to_string()))?
            .try_into()
            .unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(err(format!(
                "it has schema version {version}, written by a newer patchops; this one knows versions up to {}: run the newer patchops, or move the file away (the audit log is in it)",
                MIGRATIONS.len()
            )));
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = self.conn.transaction().map_err(|e| err(e.to_string()))?;
            tx.execute_batch(migration).map_err(|e| {
                err(format!(
                    "migrating the schema to version {}: {e}; if the file is damaged, move it away (the audit log is in it) and run again",
                    i + 1
                ))
            })?;
            tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(|e| err(e.to_string()))?;
            tx.commit().map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    }

    /// Writes a consistent copy of the whole database to `<dir>/state.db` (`VACUUM INTO`):
    /// `plan --emulate` works on a copy, so that nothing it does is recorded here.
    pub fn copy_into(&self, dir: &Path) -> Result<(), StateError> {
        let target = dir.join("state.db");
        let text = target.to_str().ok_or_else(|| StateError::new(&target, "the path is not UTF-8"))?;
        self.conn.execute("VACUUM INTO ?1", params![text]).map_err(|e| StateError::new(&target, e))?;
        Ok(())
    }

    fn err(&self, e: rusqlite::Error) -> StateError {
        StateError::new(&self.path, e)
    }

    /// Journal entries earlier runs left unfinished, marking them `interrupted`.
    pub fn recover(&self) -> Result<Vec<Interrupted>, StateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run, action, product, platform, ring, step, detail FROM journal WHERE finished_at IS NULL ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let ring: Option<String> = r.get(4)?;
                Ok(Interrupted {
                    run: r.get(0)?,
                    subject: format!(
                        "{} {} on {}{}",
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        ring.map(|x| format!(" (ring {x})")).unwrap_or_default()
                    ),
                    step: r.get(5)?,
                    detail: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "UPDATE journal SET finished_at = ?1, outcome = 'interrupted' WHERE finished_at IS NULL",
                params![now_text(self.clock.now())],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Records that an action starts; returns its journal id.
    pub fn begin(
        &self,
        run: &str,
        product: &str,
        platform: &str,
        ring: Option<&str>,
        action: &str,
    ) -> Result<i64, StateError> {
        self.conn
            .execute(
                "INSERT INTO journal (run, started_at, product, platform, ring, action, step) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'started')",
                params![run, now_text(self.clock.now()), product, platform, ring, action],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records a step of an action.
    pub fn step(&self, id: i64, step: &str, detail: &str) -> Result<(), StateError> {
        self.conn
            .execute("UPDATE journal SET step = ?2, detail = ?3 WHERE id = ?1", params![id, step, detail])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records how an action ended, with its audit record, in one transaction.
    pub fn finish(&mut self, id: Option<i64>, record: &AuditRecord) -> Result<(), StateError> {
        let tx = self.conn.transaction().map_err(|e| StateError::new(&self.path, e))?;
        if let Some(id) = id {
            tx.execute(
                "UPDATE journal SET finished_at = ?2, outcome = ?3 WHERE id = ?1",
                params![id, now_text(record.at), record.outcome],
            )
            .map_err(|e| StateError::new(&self.path, e))?;
        }
        tx.execute(
            "INSERT INTO audit (at, run, source, catalog, catalog_serial, content_sha256, product, catalog_product, platform, ring, grp, action, version, object_id, policy, outcome, message, approval, user_name, host, commit_signer)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
            params![
                now_text(record.at),
                record.run,
                record.source,
                record.catalog,
                record.catalog_serial.map(|s| s as i64),
                record.content_sha256,
                record.product,
                record.catalog_product,
                record.platform,
                record.ring,
                record.group,
                record.action,
                record.version,
                record.object_id,
                record.policy,
                record.outcome,
                record.message,
                record.approval,
                record.user,
                record.host,
                record.commit_signer,
            ],
        )
        .map_err(|e| StateError::new(&self.path, e))?;
        if let (true, Some(ring), Some(version)) = (
            record.outcome == "succeeded" && matches!(record.action.as_str(), "publish" | "update"),
            record.ring.as_deref(),
            record.version.as_deref(),
        ) {
            tx.execute(RING_REACHED, params![record.product, record.platform, ring, version, now_text(record.at)])
                .map_err(|e| StateError::new(&self.path, e))?;
        }
        tx.commit().map_err(|e| StateError::new(&self.path, e))
    }

    /// The audit log, newest first, optionally for one product; at most `limit` records.
    pub fn history(&self, product: Option<&str>, limit: usize) -> Result<Vec<AuditRecord>, StateError> {
        self.records(
            "SELECT at, run, source, catalog, catalog_serial, content_sha256, product, catalog_product, platform, ring, grp, action, version, object_id, policy, outcome, message, approval, user_name, host, commit_signer
             FROM audit WHERE (?1 IS NULL OR product = ?1 OR catalog_product = ?1) ORDER BY id DESC LIMIT ?2",
            params![product, limit as i64],
        )
    }

    /// Audit records a query selects (its columns in the order of [`AuditRecord`]).
    fn records(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<AuditRecord>, StateError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok(AuditRecord {
                    at: parse_time(&r.get::<_, String>(0)?),
                    run: r.get(1)?,
                    source: r.get(2)?,
                    catalog: r.get(3)?,
                    catalog_serial: r.get::<_, Option<i64>>(4)?.map(|s| s as u64),
                    content_sha256: r.get(5)?,
                    product: r.get(6)?,
                    catalog_product: r.get(7)?,
                    platform: r.get(8)?,
                    ring: r.get(9)?,
                    group: r.get(10)?,
                    action: r.get(11)?,
                    version: r.get(12)?,
                    object_id: r.get(13)?,
                    policy: r.get(14)?,
                    outcome: r.get(15)?,
                    message: r.get(16)?,
                    approval: r.get(17)?,
                    user: r.get(18)?,
                    host: r.get(19)?,
                    commit_signer: r.get(20)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// The latest audit record per (product, platform): what `status` shows.
    pub fn latest_per_target(&self) -> Result<Vec<AuditRecord>, StateError> {
        // In SQL, with the (product, platform) index: the audit log is not read whole.
        self.records(
            "SELECT at, run, source, catalog, catalog_serial, content_sha256, product, catalog_product, platform, ring, grp, action, version, object_id, policy, outcome, message, approval, user_name, host, commit_signer
             FROM audit WHERE id IN (SELECT MAX(id) FROM audit GROUP BY product, platform) ORDER BY id DESC",
            params![],
        )
    }

    /// Records that a ring runs a version from now (kept if it already did).
    pub fn ring_reached(
        &self,
        product: &str,
        platform: &str,
        ring: &str,
        version: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        self.conn
            .execute(RING_REACHED, params![product, platform, ring, version, now_text(at)])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// When a ring reached a version, if patchops recorded it.
    pub fn reached_at(
        &self,
        product: &str,
        platform: &str,
        ring: &str,
        version: &str,
    ) -> Result<Option<DateTime<Utc>>, StateError> {
        // Asked once per gated action of a plan: the statement is prepared once and cached.
        self.conn
            .prepare_cached(
                "SELECT reached_at FROM ring_reached WHERE product = ?1 AND platform = ?2 AND ring = ?3 AND version = ?4",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![product, platform, ring, version], |r| r.get::<_, String>(0)).optional()
            })
            .map(|o| o.map(|s| parse_time(&s)))
            .map_err(|e| self.err(e))
    }

    /// Every ring's recorded version and when it reached it, read at once: what a plan of
    /// tens of thousands of rings consults, without a query per ring.
    pub fn ring_history(&self) -> Result<RingRecords, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT product, platform, ring, version, reached_at FROM ring_reached")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut records = RingRecords::default();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let text = |i: usize| r.get_ref(i).ok().and_then(|v| v.as_str().ok()).unwrap_or_default();
            records.note(text(0), text(1), text(2), text(3), parse_time(text(4)));
        }
        Ok(records)
    }

    /// Records, in one transaction, each ring in `reached` as having reached its version at its
    /// time (as [`StateDb::ring_reached`], one by one).
    pub fn rings_reached(&self, reached: &[(&str, &str, &str, &str, DateTime<Utc>)]) -> Result<(), StateError> {
        if reached.is_empty() {
            return Ok(());
        }
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        {
            let mut stmt = tx.prepare_cached(RING_REACHED).map_err(|e| self.err(e))?;
            for (product, platform, ring, version, at) in reached {
                stmt.execute(params![product, platform, ring, version, now_text(*at)]).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// How many rings have a record (one cheap query: a daemon asks it every cycle to tell
    /// whether anyone else changed the ring history since it last read it).
    pub fn ring_count(&self) -> Result<u64, StateError> {
        self.conn
            .query_row("SELECT count(*) FROM ring_reached", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// The last commit an apply acted on, if any.
    pub fn last_applied_commit(&self) -> Result<Option<String>, StateError> {
        self.conn
            .query_row("SELECT commit_id FROM applied_commit WHERE id = 1", [], |r| r.get::<_, String>(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Records `commit` of `repo` as the last one an apply acted on.
    pub fn commit_applied(&self, repo: &str, commit: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO applied_commit (id, repo, commit_id, applied_at) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET repo = excluded.repo, commit_id = excluded.commit_id, applied_at = excluded.applied_at
                 WHERE applied_commit.commit_id != excluded.commit_id OR applied_commit.repo != excluded.repo",
                params![repo, commit, now_text(self.clock.now())],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every catalog source's high-water mark: (source, highest serial accepted, its digest).
    pub fn catalogs(&self) -> Result<Vec<(String, u64, String)>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT source, serial, sha256 FROM catalogs ORDER BY source")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64, r.get::<_, String>(2)?)))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Raises a source's high-water mark (never lowers it).
    pub fn catalog_accepted(&self, source: &str, serial: u64, sha256: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO catalogs (source, serial, sha256, accepted_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (source) DO UPDATE SET serial = excluded.serial, sha256 = excluded.sha256, accepted_at = excluded.accepted_at
                 WHERE excluded.serial > catalogs.serial",
                params![source, serial as i64, sha256, now_text(self.clock.now())],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Forgets a source's high-water mark; whether there was one.
    pub fn catalog_forget(&self, source: &str) -> Result<bool, StateError> {
        let n =
            self.conn.execute("DELETE FROM catalogs WHERE source = ?1", params![source]).map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// Records verified content in the cache index.
    /// Suspends `scope`: kept (with its first time) when it already is.
    pub fn suspend(&self, scope: &super::SuspendScope, reason: &str) -> Result<(), StateError> {
        let (kind, name) = scope.key();
        self.conn
            .execute(
                "INSERT INTO suspended (scope, name, since, reason) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (scope, name) DO UPDATE SET reason = excluded.reason",
                params![kind, name, now_text(self.clock.now()), reason],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Keeps `baseline` as the daemon's drift baseline (replacing the one before).
    pub fn save_baseline(&self, baseline: &super::DriftBaseline) -> Result<(), StateError> {
        let text = serde_json::to_string(baseline).map_err(|e| StateError::new(&self.path, e))?;
        self.conn
            .execute(
                "INSERT INTO drift_baseline (id, baseline, saved_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET baseline = excluded.baseline, saved_at = excluded.saved_at",
                params![text, now_text(self.clock.now())],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The daemon's drift baseline, if it saved one (one it cannot read is no baseline: no
    /// difference is then taken for drift).
    pub fn baseline(&self) -> Result<Option<super::DriftBaseline>, StateError> {
        let text: Option<String> = self
            .conn
            .query_row("SELECT baseline FROM drift_baseline WHERE id = 1", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Resumes `scope`; false when it was not suspended.
    pub fn resume(&self, scope: &super::SuspendScope) -> Result<bool, StateError> {
        let (kind, name) = scope.key();
        let n = self
            .conn
            .execute("DELETE FROM suspended WHERE scope = ?1 AND name = ?2", params![kind, name])
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// Every suspension, fleet first.
    pub fn suspensions(&self) -> Result<Vec<super::Suspension>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT scope, name, since, reason FROM suspended ORDER BY scope, name")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, name, since, reason) = row.map_err(|e| self.err(e))?;
            if let Some(scope) = super::SuspendScope::from_key(&kind, &name) {
                out.push(super::Suspension { scope, since: parse_time(&since), reason });
            }
        }
        Ok(out)
    }

    pub fn content_verified(&self, sha256: &str, size: u64, origin: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO content (sha256, size, origin, verified_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sha256) DO UPDATE SET verified_at = excluded.verified_at, origin = excluded.origin",
                params![sha256, size as i64, origin, now_text(self.clock.now())],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_state_database_gets_the_latest_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let v: i64 = db.conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        drop(db);
        // Opening again migrates nothing and keeps the data.
        StateDb::open(dir.path()).unwrap();
    }

    #[test]
    fn a_database_of_the_first_releases_is_migrated_and_keeps_its_records() {
        let dir = tempfile::tempdir().unwrap();
        {
            // As the first releases wrote it: the tables, no user_version.
            let conn = Connection::open(dir.path().join("state.db")).unwrap();
            conn.execute_batch(V1).unwrap();
            conn.execute(
                "INSERT INTO ring_reached (product, platform, ring, version, reached_at) VALUES ('p', 'x', 'pilot', '1.0', '2026-01-01T00:00:00.000Z')",
                [],
            )
            .unwrap();
        }
        let db = StateDb::open(dir.path()).unwrap();
        assert!(db.reached_at("p", "x", "pilot", "1.0").unwrap().is_some());
        let v: i64 = db.conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_database_written_by_a_newer_patchops_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join("state.db")).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        let err = StateDb::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("schema version 99, written by a newer patchops"), "{err}");
        assert!(err.contains("run the newer patchops"), "{err}");
    }

    #[test]
    fn the_latest_record_per_target_comes_from_sql() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = StateDb::open(dir.path()).unwrap();
        let record = |product: &str, platform: &str, outcome: &str| AuditRecord {
            at: crate::clock::Clock::now(&crate::clock::SystemClock),
            run: "r".into(),
            source: "s".into(),
            catalog: None,
            catalog_serial: None,
            content_sha256: None,
            product: product.into(),
            catalog_product: product.into(),
            platform: platform.into(),
            ring: None,
            group: None,
            action: "publish".into(),
            version: None,
            object_id: None,
            policy: "p".into(),
            outcome: outcome.into(),
            message: String::new(),
            approval: Some("--auto-approve".into()),
            user: None,
            host: None,
            commit_signer: None,
        };
        for (p, x, o) in [("a", "i", "failed"), ("a", "i", "succeeded"), ("a", "w", "failed"), ("b", "i", "succeeded")]
        {
            db.finish(None, &record(p, x, o)).unwrap();
        }
        let latest: Vec<(String, String, String)> =
            db.latest_per_target().unwrap().into_iter().map(|r| (r.product, r.platform, r.outcome)).collect();
        assert_eq!(
            latest,
            vec![
                ("b".into(), "i".into(), "succeeded".into()),
                ("a".into(), "w".into(), "failed".into()),
                ("a".into(), "i".into(), "succeeded".into()),
            ]
        );
    }
}
