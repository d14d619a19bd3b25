//! The service's run history: an append-only SQLite table of run events (started, finished,
//! failed), so a run the service did not finish is known at the next start and run again.

use anyhow::Context;
use rusqlite::{params, Connection};
use serde::Serialize;
use std::path::Path;
use std::sync::Mutex;

/// One run as the history tells it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunRecord {
    pub(crate) id: i64,
    pub(crate) job: String,
    pub(crate) trigger: String,
    pub(crate) started: String,
    pub(crate) finished: Option<String>,
    /// running, ok, findings (exit 1), failed; interrupted when the service stopped mid-run.
    pub(crate) outcome: String,
    pub(crate) summary: Option<serde_json::Value>,
    pub(crate) report: Option<String>,
}

pub(crate) struct History {
    db: Mutex<Connection>,
    /// `HISTORY.lock`, held for the service's life: one service per run history.
    _lock: std::fs::File,
}

impl History {
    pub(crate) fn open(path: &Path) -> anyhow::Result<Self> {
        use std::io::{Read, Seek, Write};
        // One service per run history (and so per set of jobs): a second is refused, naming
        // the one that runs.
        let lock_path = path.with_extension("sqlite.lock");
        let mut lock = fastkontakt::sinks::private::open_rw(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                anyhow::bail!(
                    "another fastkontakt serve runs these jobs ({}, {}): stop it first",
                    lock_path.display(),
                    holder.trim()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        lock.set_len(0)?;
        lock.rewind()?;
        writeln!(lock, "pid {} since {}", std::process::id(), now())?;
        let db = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS run_event (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 run INTEGER NOT NULL,
                 job TEXT NOT NULL,
                 at TEXT NOT NULL,
                 event TEXT NOT NULL,
                 trigger TEXT,
                 summary TEXT,
                 report TEXT
             );
             CREATE INDEX IF NOT EXISTS run_event_run ON run_event(run);",
        )?;
        Ok(History {
            db: Mutex::new(db),
            _lock: lock,
        })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new run of `job`: its number.
    pub(crate) fn start(&self, job: &str, trigger: &str) -> anyhow::Result<i64> {
        let db = self.db();
        let run: i64 =
            db.query_row("SELECT COALESCE(MAX(run), 0) + 1 FROM run_event", [], |r| {
                r.get(0)
            })?;
        db.execute(
            "INSERT INTO run_event (run, job, at, event, trigger) VALUES (?1, ?2, ?3, 'started', ?4)",
            params![run, job, now(), trigger],
        )?;
        Ok(run)
    }

    /// How a run ended: `ok`, `findings` or `failed`, with its summary and report folder.
    pub(crate) fn finish(
        &self,
        run: i64,
        job: &str,
        outcome: &str,
        summary: Option<&serde_json::Value>,
        report: Option<&str>,
    ) -> anyhow::Result<()> {
        self.db().execute(
            "INSERT INTO run_event (run, job, at, event, summary, report) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![run, job, now(), outcome, summary.map(|s| s.to_string()), report],
        )?;
        Ok(())
    }

    /// Runs started and never finished (the service stopped mid-run), oldest first.
    pub(crate) fn unfinished(&self) -> anyhow::Result<Vec<(i64, String)>> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT run, job FROM run_event s WHERE event = 'started'
               AND NOT EXISTS (SELECT 1 FROM run_event f WHERE f.run = s.run AND f.event != 'started')
             ORDER BY run",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The job's newest run, when it was interrupted (stopped or killed) and so is to be run
    /// again.
    pub(crate) fn interrupted_last(&self, job: &str) -> anyhow::Result<Option<i64>> {
        let last = self
            .runs(1_000)?
            .into_iter()
            .find(|r| r.job == job && r.outcome != "running");
        Ok(last.filter(|r| r.outcome == "interrupted").map(|r| r.id))
    }

    /// Marks a run the service did not finish.
    pub(crate) fn interrupted(&self, run: i64, job: &str) -> anyhow::Result<()> {
        self.finish(run, job, "interrupted", None, None)
    }

    /// The newest runs first, `limit` of them.
    pub(crate) fn runs(&self, limit: usize) -> anyhow::Result<Vec<RunRecord>> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT s.run, s.job, s.trigger, s.at, f.at, COALESCE(f.event, 'running'), f.summary, f.report
               FROM run_event s LEFT JOIN run_event f ON f.run = s.run AND f.event != 'started'
              WHERE s.event = 'started' ORDER BY s.run DESC LIMIT ?1",
        )?;
        let rows = st.query_map([limit as i64], |r| {
            let summary: Option<String> = r.get(6)?;
            Ok(RunRecord {
                id: r.get(0)?,
                job: r.get(1)?,
                trigger: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                started: r.get(3)?,
                finished: r.get(4)?,
                outcome: r.get(5)?,
                summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
                report: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One run.
    pub(crate) fn run(&self, id: i64) -> anyhow::Result<Option<RunRecord>> {
        Ok(self.runs(usize::MAX >> 1)?.into_iter().find(|r| r.id == id))
    }

    /// Forgets finished runs older than `days` (the history's retention).
    pub(crate) fn prune(&self, days: u32) -> anyhow::Result<usize> {
        let cutoff = (chrono::Utc::now() - chrono::Duration::days(i64::from(days))).to_rfc3339();
        let n = self.db().execute(
            "DELETE FROM run_event WHERE run IN (
                 SELECT run FROM run_event WHERE event != 'started' AND at < ?1)",
            params![cutoff],
        )?;
        Ok(n)
    }

    /// Whether the database takes a write (readiness).
    pub(crate) fn writable(&self) -> bool {
        self.db()
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .is_ok()
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}
