//! The product's own state, one SQLite file: runs, plan items and their outcomes, the last-applied
//! owned state of every relation (the third side of the diff), the id cross-reference, and an
//! append-only ledger of every applied change. Patients are stored as HMACs keyed by the
//! operator's secret (`StateKey`), never as numbers, in the ledger's columns and its JSON alike.

use super::engine::Action;
use super::key::PlanKey;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

#[allow(missing_docs)] // each variant's #[error] text says what it is
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {path}: {source}")]
    Db {
        path: String,
        source: rusqlite::Error,
    },
    #[error("state key: {0}")]
    Key(String),
    #[error("the lock beside the state file, {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
}

/// One writing run per state file at a time: an exclusive lock on `STATE.lock`, released when
/// the run ends however it ends (the system drops it with the process, kill -9 included).
pub(crate) struct WriteLock {
    _file: std::fs::File,
}

/// The operator's secret that keys every patient hash in the state file (HMAC-SHA256), so
/// that the file cannot be turned back into personnummer by trying every birth date.
#[derive(Clone)]
pub struct StateKey(Vec<u8>);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(***)")
    }
}

/// The id namespace shipped in `mappings/target/default.toml`: public, so never a key.
const SHIPPED_NAMESPACE: &str = "3b1f6c1e-52a4-4c38-9a7e-6b0d2f1c9a11";

impl StateKey {
    /// At least 16 bytes, and not the public namespace the product ships.
    pub fn new(secret: &[u8]) -> Result<Self, StateError> {
        let trimmed = secret.trim_ascii();
        if trimmed.len() < 16 {
            return Err(StateError::Key(
                "the state key must be at least 16 bytes (make one: head -c 32 /dev/urandom | base64 > state.key; chmod 600 state.key)".into(),
            ));
        }
        if trimmed == SHIPPED_NAMESPACE.as_bytes() {
            return Err(StateError::Key(
                "the state key is the id namespace the product ships, which anyone can read; make a secret one (head -c 32 /dev/urandom | base64)".into(),
            ));
        }
        Ok(StateKey(trimmed.to_vec()))
    }

    /// A key for a state that lives in memory only (a plan made from files).
    pub(crate) fn ephemeral() -> Self {
        use rand::RngCore;
        let mut k = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        StateKey(k)
    }

    /// HMAC-SHA256 of the text under the key, hex.
    pub(crate) fn hash(&self, text: &str) -> String {
        use hmac::{KeyInit, Mac};
        // Any key length is valid for HMAC, so this cannot fail.
        let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes a key of any length");
        m.update(text.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// The hash a state file keeps to know it is opened with the key it was made with.
    fn fingerprint(&self) -> String {
        self.hash("fastkontakt state key fingerprint v1")
    }

    /// A copy of the JSON with every identity number (an identifier whose value is a
    /// personnummer, samordningsnummer or reservnummer) replaced by its keyed hash.
    pub(crate) fn redact(&self, v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        let mut v = v.clone();
        fn walk(k: &StateKey, v: &mut Value) {
            match v {
                Value::Object(m) => {
                    let is_id = m.contains_key("system")
                        && m.get("value")
                            .and_then(Value::as_str)
                            .is_some_and(|s| crate::domain::PatientId::parse(s).is_ok());
                    if is_id {
                        if let Some(Value::String(s)) = m.get_mut("value") {
                            *s = format!("hmac:{}", k.hash(s));
                        }
                    }
                    m.values_mut().for_each(|x| walk(k, x));
                }
                Value::Array(a) => a.iter_mut().for_each(|x| walk(k, x)),
                _ => {}
            }
        }
        walk(self, &mut v);
        v
    }
}

/// What became of a plan item that was not simply applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemOutcome {
    /// The EHR already held what the item would write (another run, or a lost answer).
    AlreadyApplied,
    /// A person or another writer changed it: kept, reported.
    Conflict,
    /// The server refused the write.
    Error,
}

impl ItemOutcome {
    /// As the state file's `plan_items.outcome` column spells it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ItemOutcome::AlreadyApplied => "already-applied",
            ItemOutcome::Conflict => "conflict",
            ItemOutcome::Error => "error",
        }
    }
}

/// The facts of a relation, kept in the ledger for `history`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Facts {
    pub(crate) patient_hash: String,
    pub(crate) kind: String,
    pub(crate) staff: Option<String>,
    pub(crate) unit: String,
    pub(crate) status: String,
    pub(crate) valid_from: String,
    pub(crate) valid_to: Option<String>,
}

/// An intent, recorded before its write is sent (a killed run is recognised by it).
pub(crate) struct Pending {
    pub(crate) seq: i64,
    pub(crate) key: PlanKey,
    pub(crate) action: Action,
    pub(crate) resource: String,
    pub(crate) expected_version: Option<String>,
    pub(crate) desired_hash: String,
}
/// A write that landed: the new last-applied state and its ledger line.
pub(crate) struct Done {
    pub(crate) seq: i64,
    pub(crate) key: PlanKey,
    pub(crate) applied: Applied,
    pub(crate) ledger: LedgerEntry,
    pub(crate) patient_hash: String,
    /// Another key's last-applied state the same write sets (a created Patient's listing
    /// baseline), recorded in the same transaction.
    pub(crate) also: Option<(PlanKey, Applied)>,
}

pub(crate) struct State {
    conn: Connection,
    path: String,
    key: StateKey,
}

/// What was last applied for one relation.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    pub(crate) resource: String,
    pub(crate) version: Option<String>,
    pub(crate) owned_hash: String,
}

/// One ledger line: a change the product made, with the relation's facts for `history`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LedgerEntry {
    pub(crate) at: String,
    /// The run that wrote it.
    pub run: i64,
    pub(crate) key: String,
    /// `Type/id` written.
    pub resource: String,
    /// The version the server gave.
    pub version: Option<String>,
    /// What was done (`create`, `update`, `end`, `adopted` …).
    pub action: String,
    /// The register row (`FILE:LINE Rad-id`).
    pub register_row: Option<String>,
    /// The relation's kind.
    pub kind: String,
    /// The staff member's HSA-id.
    pub staff: Option<String>,
    /// The unit's HSA-id.
    pub unit: String,
    /// The relation's status.
    pub status: String,
    /// Its first day.
    pub valid_from: String,
    /// Its last day, if ended.
    pub valid_to: Option<String>,
    pub(crate) before: Option<String>,
    pub(crate) after: Option<String>,
}

const SCHEMA: &str = "
PRAGMA busy_timeout = 10000;
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, started TEXT NOT NULL, finished TEXT, register TEXT,
  register_sha256 TEXT, ehr TEXT, dry_run INTEGER NOT NULL, status TEXT NOT NULL, summary TEXT);
CREATE TABLE IF NOT EXISTS plan_items (
  run INTEGER NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL, action TEXT NOT NULL,
  resource TEXT NOT NULL, expected_version TEXT, desired_hash TEXT, outcome TEXT NOT NULL,
  detail TEXT, PRIMARY KEY (run, seq));
CREATE INDEX IF NOT EXISTS plan_items_pending ON plan_items (outcome, desired_hash);
CREATE TABLE IF NOT EXISTS applied (
  key TEXT PRIMARY KEY, resource TEXT NOT NULL, version TEXT, owned_hash TEXT NOT NULL, run INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS xref (identifier TEXT PRIMARY KEY, resource TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, run INTEGER NOT NULL, key TEXT NOT NULL,
  resource TEXT NOT NULL, version TEXT, action TEXT NOT NULL, register_row TEXT, patient TEXT NOT NULL,
  kind TEXT NOT NULL, staff TEXT, unit TEXT NOT NULL, status TEXT NOT NULL, valid_from TEXT NOT NULL,
  valid_to TEXT, before TEXT, after TEXT);
CREATE INDEX IF NOT EXISTS ledger_patient ON ledger (patient, seq);
CREATE TRIGGER IF NOT EXISTS ledger_append_only_u BEFORE UPDATE ON ledger BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_append_only_d BEFORE DELETE ON ledger BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
";

impl State {
    /// Opens (or creates, readable by its owner only) the state file. A file made with
    /// another key, or before states were keyed, is refused: its hashes would not match.
    pub(crate) fn open(path: &Path, key: StateKey) -> Result<Self, StateError> {
        let p = path.display().to_string();
        let db = |source| StateError::Db {
            path: p.clone(),
            source,
        };
        let in_memory = path.as_os_str() == ":memory:";
        if !in_memory {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = crate::sinks::private::create_dir(dir);
            }
            if !path.exists() {
                // Created 0600 before SQLite writes a byte to it.
                crate::sinks::private::create_file(path).map_err(|e| StateError::Db {
                    path: p.clone(),
                    source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
                })?;
            }
        }
        let conn = Connection::open(path).map_err(db)?;
        // Before the first statement: two runs opening a new file at once wait for each other
        // (switching it to WAL) instead of failing "database is locked".
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        // Switching a new file to WAL needs it to itself and does not wait on the busy
        // handler: a second run opening it at the same moment tries again shortly.
        let mut tries = 0;
        loop {
            match conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())) {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && tries < 200 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(db(e)),
            }
        }
        conn.execute_batch(SCHEMA).map_err(db)?;
        let stored: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE name = 'key'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)?;
        match stored {
            Some(f) if f == key.fingerprint() => {}
            Some(_) => {
                return Err(StateError::Key(format!(
                "{p} was made with another state key; give the key it was made with (--state-key)"
            )))
            }
            None => {
                let ledger: i64 = conn
                    .query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))
                    .map_err(db)?;
                if ledger > 0 {
                    return Err(StateError::Key(format!(
                        "{p} holds a ledger hashed with the public namespace (made before state keys); start a new state file with --state-key, and keep the old one for its history"
                    )));
                }
                // Two runs may open a new state file at once: the first to write the key's
                // fingerprint wins, and the other is held to it like any later run.
                conn.execute(
                    "INSERT INTO meta (name, value) VALUES ('key', ?1) ON CONFLICT(name) DO NOTHING",
                    [key.fingerprint()],
                )
                .map_err(db)?;
                let now: Option<String> = conn
                    .query_row("SELECT value FROM meta WHERE name = 'key'", [], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(db)?;
                if now.as_deref() != Some(key.fingerprint().as_str()) {
                    return Err(StateError::Key(format!(
                        "{p} was made with another state key at the same moment; give the key it was made with (--state-key)"
                    )));
                }
            }
        }
        Ok(State { conn, path: p, key })
    }

    pub(crate) fn key(&self) -> &StateKey {
        &self.key
    }

    /// Takes the state file's writer lock, waiting (and saying who holds it) while another
    /// run has it. Two syncs through one state file never write at once.
    pub(crate) fn lock_for_writing(&self) -> Result<Option<WriteLock>, StateError> {
        use std::io::{Read, Seek, Write};
        if self.path == ":memory:" {
            return Ok(None);
        }
        let path = format!("{}.lock", self.path);
        let err = |source| StateError::Lock {
            path: path.clone(),
            source,
        };
        let mut f = crate::sinks::private::open_rw(std::path::Path::new(&path)).map_err(err)?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = f.read_to_string(&mut holder);
                tracing::warn!(lock = %path, holder = %holder.trim(), "another run is writing through this state file; waiting for it to end");
                eprintln!(
                    "waiting: another run holds {path} ({}); it writes through the same state file",
                    holder.trim()
                );
                f.lock().map_err(err)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
        }
        f.set_len(0).map_err(err)?;
        f.rewind().map_err(err)?;
        writeln!(
            f,
            "pid {} since {}",
            std::process::id(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
        .map_err(err)?;
        Ok(Some(WriteLock { _file: f }))
    }

    /// What a probe learnt of the server at `base`, if it was probed.
    pub(crate) fn server_facts(
        &self,
        base: &str,
    ) -> Result<Option<crate::fhir::probe::ServerFacts>, StateError> {
        let v: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE name = ?1",
                [format!("server-facts {}", base.trim_end_matches('/'))],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?;
        Ok(v.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Keeps a probe's facts for the server they are about (sync reads them, `--reprobe`
    /// replaces them).
    pub(crate) fn save_server_facts(
        &self,
        f: &crate::fhir::probe::ServerFacts,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                [
                    format!("server-facts {}", f.base.trim_end_matches('/')),
                    serde_json::to_string(f).unwrap_or_default(),
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StateError + '_ {
        move |source| StateError::Db {
            path: self.path.clone(),
            source,
        }
    }

    pub(crate) fn start_run(
        &self,
        register: &str,
        sha: &str,
        ehr: &str,
        dry_run: bool,
    ) -> Result<i64, StateError> {
        self.conn
            .execute(
                "INSERT INTO runs (started, register, register_sha256, ehr, dry_run, status) VALUES (?1, ?2, ?3, ?4, ?5, 'running')",
                params![chrono::Utc::now().to_rfc3339(), register, sha, ehr, dry_run],
            )
            .map_err(self.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    pub(crate) fn finish_run(
        &self,
        run: i64,
        status: &str,
        summary: &str,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE runs SET finished = ?1, status = ?2, summary = ?3 WHERE id = ?4",
                params![
                    chrono::Utc::now().to_rfc3339(),
                    status,
                    crate::sources::register::mask_identity_numbers(summary),
                    run
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The register rows the product has written a relation for (their keys).
    pub(crate) fn written_relations(&self) -> Result<Vec<super::key::RelationKey>, StateError> {
        let mut q = self
            .conn
            .prepare("SELECT key FROM applied")
            .map_err(self.err())?;
        let keys: Vec<String> = q
            .query_map([], |r| r.get(0))
            .map_err(self.err())?
            .collect::<Result<_, _>>()
            .map_err(self.err())?;
        Ok(keys
            .into_iter()
            .filter_map(|k| match PlanKey::try_from(k) {
                Ok(PlanKey::Relation(r)) => Some(r),
                _ => None,
            })
            .collect())
    }

    /// Whether no relation has been written yet (a region's first plan): its plan then asks
    /// nothing of the state per relation.
    pub(crate) fn nothing_applied(&self) -> Result<bool, StateError> {
        self.conn
            .query_row("SELECT NOT EXISTS (SELECT 1 FROM applied)", [], |r| {
                r.get(0)
            })
            .map_err(self.err())
    }

    pub(crate) fn applied(&self, key: &PlanKey) -> Result<Option<Applied>, StateError> {
        // Cached: a region's plan asks once per relation.
        self.conn
            .prepare_cached("SELECT resource, version, owned_hash FROM applied WHERE key = ?1")
            .map_err(self.err())?
            .query_row([key.to_string()], |r| {
                Ok(Applied {
                    resource: r.get(0)?,
                    version: r.get(1)?,
                    owned_hash: r.get(2)?,
                })
            })
            .optional()
            .map_err(self.err())
    }

    /// Was this owned state the intent of a write that may not have been recorded (a killed run)?
    pub(crate) fn was_pending(&self, key: &PlanKey, owned_hash: &str) -> Result<bool, StateError> {
        self.conn
            .query_row(
                "SELECT 1 FROM plan_items WHERE key = ?1 AND desired_hash = ?2 AND outcome IN ('pending', 'applied') LIMIT 1",
                params![key.to_string(), owned_hash],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(self.err())
    }

    /// Records intents before they are sent, in one transaction.
    pub(crate) fn record_pending(&mut self, run: i64, items: &[Pending]) -> Result<(), StateError> {
        let path = self.path.clone();
        let db = |source| StateError::Db {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(db)?;
        {
            // Cached: a chunk of 500 prepared once, not 500 times.
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO plan_items (run, seq, key, action, resource, expected_version, desired_hash, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending')",
            ).map_err(db)?;
            for p in items {
                insert
                    .execute(params![
                        run,
                        p.seq,
                        p.key.to_string(),
                        p.action.as_str(),
                        p.resource,
                        p.expected_version,
                        p.desired_hash
                    ])
                    .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Records outcomes, the new last-applied state and the ledger, in one transaction.
    pub(crate) fn record_applied(&mut self, run: i64, done: &[Done]) -> Result<(), StateError> {
        let path = self.path.clone();
        let db = |source| StateError::Db {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(db)?;
        {
            let mut outcome = tx
                .prepare_cached(
                    "UPDATE plan_items SET outcome = 'applied' WHERE run = ?1 AND seq = ?2",
                )
                .map_err(db)?;
            let mut applied_as = tx.prepare_cached(
                "INSERT OR REPLACE INTO applied (key, resource, version, owned_hash, run) VALUES (?1, ?2, ?3, ?4, ?5)",
            ).map_err(db)?;
            let mut ledger = tx.prepare_cached(
                "INSERT INTO ledger (at, run, key, resource, version, action, register_row, patient, kind, staff, unit, status, valid_from, valid_to, before, after)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            ).map_err(db)?;
            for Done {
                seq,
                key,
                applied,
                ledger: l,
                patient_hash,
                also,
            } in done
            {
                outcome.execute(params![run, seq]).map_err(db)?;
                applied_as
                    .execute(params![
                        key.to_string(),
                        applied.resource,
                        applied.version,
                        applied.owned_hash,
                        run
                    ])
                    .map_err(db)?;
                if let Some((k, a)) = also {
                    applied_as
                        .execute(params![
                            k.to_string(),
                            a.resource,
                            a.version,
                            a.owned_hash,
                            run
                        ])
                        .map_err(db)?;
                }
                ledger
                    .execute(params![
                        l.at,
                        run,
                        key.to_string(),
                        l.resource,
                        l.version,
                        l.action,
                        l.register_row,
                        patient_hash,
                        l.kind,
                        l.staff,
                        l.unit,
                        l.status,
                        l.valid_from,
                        l.valid_to,
                        l.before,
                        l.after
                    ])
                    .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Adopts a state found on the server (equal to what the register wants) without a write.
    pub(crate) fn adopt(
        &self,
        key: &PlanKey,
        applied: &Applied,
        run: i64,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO applied (key, resource, version, owned_hash, run) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![key.to_string(), applied.resource, applied.version, applied.owned_hash, run],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub(crate) fn mark(
        &self,
        run: i64,
        seq: i64,
        outcome: ItemOutcome,
        detail: &str,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE plan_items SET outcome = ?1, detail = ?2 WHERE run = ?3 AND seq = ?4",
                params![
                    outcome.as_str(),
                    crate::sources::register::mask_identity_numbers(detail),
                    run,
                    seq
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The newest ledger line of a relation carries its facts.
    pub(crate) fn last_facts(&self, key: &PlanKey) -> Result<Option<Facts>, StateError> {
        self.conn
            .query_row(
                "SELECT patient, kind, staff, unit, status, valid_from, valid_to FROM ledger WHERE key = ?1 ORDER BY seq DESC LIMIT 1",
                [key.to_string()],
                |r| {
                    Ok(Facts {
                        patient_hash: r.get(0)?,
                        kind: r.get(1)?,
                        staff: r.get(2)?,
                        unit: r.get(3)?,
                        status: r.get(4)?,
                        valid_from: r.get(5)?,
                        valid_to: r.get(6)?,
                    })
                },
            )
            .optional()
            .map_err(self.err())
    }

    /// The ledger lines of one patient (by keyed hash), oldest first.
    pub(crate) fn history(&self, patient_hash: &str) -> Result<Vec<LedgerEntry>, StateError> {
        let mut st = self
            .conn
            .prepare("SELECT at, run, key, resource, version, action, register_row, kind, staff, unit, status, valid_from, valid_to, before, after FROM ledger WHERE patient = ?1 ORDER BY seq")
            .map_err(self.err())?;
        let rows = st
            .query_map([patient_hash], |r| {
                Ok(LedgerEntry {
                    at: r.get(0)?,
                    run: r.get(1)?,
                    key: r.get(2)?,
                    resource: r.get(3)?,
                    version: r.get(4)?,
                    action: r.get(5)?,
                    register_row: r.get(6)?,
                    kind: r.get(7)?,
                    staff: r.get(8)?,
                    unit: r.get(9)?,
                    status: r.get(10)?,
                    valid_from: r.get(11)?,
                    valid_to: r.get(12)?,
                    before: r.get(13)?,
                    after: r.get(14)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }
}

#[cfg(test)]
mod tests {
    use super::{State, StateKey};

    #[test]
    fn two_runs_opening_a_new_state_file_at_once_both_get_it() {
        // Both find no key recorded and both record it: the second must not fail on the first's
        // row (it did, as a UNIQUE constraint error, one time in a few hundred).
        for round in 0..40 {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("state.sqlite");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
            let runs: Vec<_> = (0..2)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        let key = StateKey::new(b"a key of sixteen bytes or more").expect("key");
                        barrier.wait();
                        State::open(&path, key).map(|_| ())
                    })
                })
                .collect();
            for r in runs {
                let opened = r.join().expect("thread");
                assert!(opened.is_ok(), "round {round}: {opened:?}");
            }
            // Another key is still refused.
            let other = StateKey::new(b"another key of sixteen bytes").expect("key");
            assert!(State::open(&path, other).is_err());
        }
    }
}
