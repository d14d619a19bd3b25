//! Source: what a FHIR server actually does, learnt by trying it (`fastkontakt probe`), not
//! from its CapabilityStatement alone. Sync chooses its write strategy from these facts.
//!
//! Without permission to write, only the CapabilityStatement and searches are tried. With it,
//! probe CareTeams (status `entered-in-error`, tagged `probe`, no patient) are written and
//! deleted again at the end; a server that refuses the delete keeps them, and the report names
//! them.

use super::client::{ClientError, FhirClient, Response};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Entries in the transaction `probe` tries (what a sync falls back to when a server refuses a
/// larger one).
pub(crate) const PROBED_TRANSACTION: usize = 100;

/// System of the probe resources' identifiers.
const PROBE_SYSTEM: &str = "https://fhir.fastkontakt.example/NamingSystem/probe";

/// What the server did, each fact `None` when it was not tried.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerFacts {
    /// The base URL probed.
    pub base: String,
    /// When.
    pub probed_at: String,
    /// Whether write probes ran (`--yes-write`).
    pub wrote: bool,
    /// The software the CapabilityStatement names.
    pub software: Option<String>,
    /// `fhirVersion` of the CapabilityStatement.
    pub fhir_version: Option<String>,
    /// The CapabilityStatement lists `transaction`.
    pub declares_transaction: bool,
    /// The CapabilityStatement lists `batch`.
    pub declares_batch: bool,
    /// PUT to a new, client-chosen id (a UUID, as the product makes) creates the resource.
    pub update_create: Option<bool>,
    /// POST creates, with the server choosing the id.
    pub create: Option<bool>,
    /// A transaction Bundle is carried out.
    pub transaction: Option<bool>,
    /// A transaction with one failing entry changes nothing.
    pub transaction_atomic: Option<bool>,
    /// A 100-entry transaction (the product's chunk) is accepted.
    pub transaction_100: Option<bool>,
    /// A batch Bundle is carried out.
    pub batch: Option<bool>,
    /// A PUT with a stale `If-Match` is refused (409/412).
    pub if_match: Option<bool>,
    /// A conditional PUT (`CareTeam?identifier=`) with a stale `If-Match` is refused.
    pub if_match_conditional: Option<bool>,
    /// A transaction entry with a stale `ifMatch` is refused.
    pub if_match_in_transaction: Option<bool>,
    /// A second POST with the same `If-None-Exist` creates nothing.
    pub conditional_create: Option<bool>,
    /// Extra resources left by 10 concurrent identical conditional creates (0: atomic).
    pub conditional_create_duplicates: Option<u32>,
    /// Search by `identifier` finds a resource.
    pub search_identifier: Option<bool>,
    /// Search by `_tag` finds a resource.
    pub search_tag: Option<bool>,
    /// The most entries a page holds when 100 or more are asked for (None: not capped below
    /// what was asked, or not measured).
    pub count_cap: Option<u32>,
    /// Paging a search while resources are written returns each one once.
    pub paging_stable: Option<bool>,
    /// A write with `Prefer: return=minimal` answers without a body.
    pub return_minimal: Option<bool>,
    /// A write with `Prefer: return=representation` answers with the resource.
    pub return_representation: Option<bool>,
    /// `Type/id/_history` lists the versions.
    pub history: Option<bool>,
    /// 429 answers met during the probe (each waited out, `Retry-After` honoured).
    pub throttled: u64,
    /// An unknown element is refused.
    pub rejects_unknown_element: Option<bool>,
    /// A code outside its required value set is refused.
    pub rejects_wrong_code: Option<bool>,
    /// A reference to a resource that does not exist is refused.
    pub rejects_broken_reference: Option<bool>,
    /// Probe resources left on the server (the delete was refused).
    pub left_behind: Vec<String>,
    /// What went wrong while probing, per step.
    pub notes: Vec<String>,
}

/// How sync writes to a server, derived from its facts (or set in config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteStrategy {
    /// How a resource the EHR lacks is created.
    pub create: CreateBy,
    /// How writes are grouped.
    pub grouping: Grouping,
    /// The server refuses a stale `If-Match`; when not, every write is re-checked before and
    /// after.
    pub if_match: bool,
    /// Paging moves under writes: the product's relations are read by Rad-id in chunks, not
    /// by paging its tag.
    #[serde(default)]
    pub read_by_identifier: bool,
}

/// How a resource is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CreateBy {
    /// PUT to the product's deterministic id (update-as-create).
    Put,
    /// POST with `If-None-Exist` on the business identifier; the server's id is kept.
    ConditionalPost,
}

/// How writes are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Grouping {
    /// Transaction Bundles with a Provenance in each.
    Transaction,
    /// Batch Bundles (each entry on its own, If-Match per entry), then a batch of the
    /// changes' Provenances.
    Batch,
    /// One request per change, and one for its Provenance.
    Single,
}

impl Default for WriteStrategy {
    /// What the product did before it probed: PUT to its ids, in transactions, If-Match.
    fn default() -> Self {
        WriteStrategy {
            create: CreateBy::Put,
            grouping: Grouping::Transaction,
            if_match: true,
            read_by_identifier: false,
        }
    }
}

impl ServerFacts {
    /// The strategy these facts allow: the safest way the server supports.
    pub fn strategy(&self) -> WriteStrategy {
        let transactions =
            self.transaction != Some(false) && self.transaction_atomic != Some(false);
        WriteStrategy {
            create: if self.update_create == Some(false) {
                CreateBy::ConditionalPost
            } else {
                CreateBy::Put
            },
            // A transaction whose ifMatch is not honoured gives no guard: write one at a time
            // and check each.
            grouping: if transactions && self.if_match_in_transaction != Some(false) {
                Grouping::Transaction
            } else if self.batch == Some(true) && self.if_match != Some(false) {
                Grouping::Batch
            } else {
                Grouping::Single
            },
            if_match: self.if_match != Some(false),
            read_by_identifier: self.paging_stable == Some(false)
                && self.search_identifier != Some(false),
        }
    }

    /// Why a safe sync is impossible against this server (empty: it is possible).
    pub fn blockers(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.search_tag == Some(false) {
            out.push("search by _tag does not work: the product could not find the relations it wrote, and would write them again".into());
        }
        if self.search_identifier == Some(false) {
            out.push("search by identifier does not work: the product could not find the patients, staff and units the EHR already has, nor its relations by Rad-id".into());
        }
        if self.update_create == Some(false) && self.create == Some(false) {
            out.push("neither PUT to a new id nor POST creates a resource".into());
        }
        if self.update_create == Some(false) && self.conditional_create == Some(false) {
            out.push("client-chosen ids are refused and If-None-Exist is not honoured: a create that is resent after a lost answer would make a duplicate".into());
        }
        if self.paging_stable == Some(false) && self.search_identifier != Some(true) {
            out.push("paging is not stable under writes and search by identifier was not shown to work: a read could miss relations".into());
        }
        out
    }

    /// Each fact as a row: name, result, what it means for sync.
    pub fn table(&self) -> Vec<(String, String, String)> {
        let yn = |v: Option<bool>, yes: &str, no: &str| match v {
            Some(true) => yes.to_owned(),
            Some(false) => no.to_owned(),
            None => "not probed".to_owned(),
        };
        let s = self.strategy();
        let mut rows = vec![
            (
                "software".into(),
                format!(
                    "{} (FHIR {})",
                    self.software.as_deref().unwrap_or("unnamed"),
                    self.fhir_version.as_deref().unwrap_or("?")
                ),
                "R4 (4.0.x) is what the product speaks".into(),
            ),
            (
                "update-as-create (PUT to a new UUID id)".into(),
                yn(self.update_create, "yes", "refused"),
                match s.create {
                    CreateBy::Put => "creates are PUTs to deterministic ids: a resent create cannot duplicate".into(),
                    CreateBy::ConditionalPost => "creates are POSTs with If-None-Exist on the Rad-id or business identifier, under the state file's single-writer lock; the server's ids are kept in the state file".into(),
                },
            ),
            (
                "create by POST".into(),
                yn(self.create, "yes", "refused"),
                "the fallback when client ids are refused".into(),
            ),
            (
                "transactions".into(),
                format!(
                    "{} (declared: {})",
                    yn(self.transaction, "carried out", "refused"),
                    if self.declares_transaction { "yes" } else { "no" }
                ),
                match s.grouping {
                    Grouping::Transaction => "writes go in transaction Bundles with their Provenance".into(),
                    Grouping::Batch => "writes go in batch Bundles (each entry on its own, If-Match each), then a batch of a Provenance per change".into(),
                    Grouping::Single => "writes go one request at a time, each followed by its own Provenance".into(),
                },
            ),
            (
                "transactions atomic".into(),
                yn(self.transaction_atomic, "yes: a failing entry rolls all back", "no: entries before a failing one stay"),
                "a chunk either lands whole or not at all".into(),
            ),
            (
                "transaction of 100 entries".into(),
                yn(self.transaction_100, "accepted", "refused"),
                format!(
                    "the default --chunk-size is {}; lower it if refused (a refused transaction is applied entry by entry)",
                    crate::sync::DEFAULT_CHUNK_SIZE
                ),
            ),
            (
                "batch".into(),
                format!(
                    "{} (declared: {})",
                    yn(self.batch, "carried out", "refused"),
                    if self.declares_batch { "yes" } else { "no" }
                ),
                "used where transactions are not: a change per entry, each with its Provenance".into(),
            ),
            (
                "If-Match on PUT (stale version)".into(),
                yn(self.if_match, "refused (409/412)", "IGNORED: the write went through"),
                if s.if_match {
                    "every update carries If-Match: a person's edit is never overwritten silently".into()
                } else {
                    "each write is re-checked just before and after; the server cannot guarantee against lost updates".into()
                },
            ),
            (
                "If-Match on conditional PUT".into(),
                yn(self.if_match_conditional, "refused (409/412)", "ignored"),
                "not used by sync".into(),
            ),
            (
                "If-Match inside a transaction".into(),
                yn(self.if_match_in_transaction, "refused", "ignored"),
                "when ignored, sync writes one request at a time".into(),
            ),
            (
                "conditional create (If-None-Exist)".into(),
                yn(self.conditional_create, "honoured", "not honoured"),
                "needed when client ids are refused".into(),
            ),
            (
                "10 concurrent identical conditional creates".into(),
                match self.conditional_create_duplicates {
                    Some(0) => "one resource: atomic".into(),
                    Some(n) => format!("{n} duplicate(s): not atomic"),
                    None => "not probed".into(),
                },
                "sync never races itself (single-writer lock); another writer could".into(),
            ),
            (
                "search by identifier".into(),
                yn(self.search_identifier, "works", "FAILS"),
                "patients, staff, units and relations are found by identifier".into(),
            ),
            (
                "search by _tag".into(),
                yn(self.search_tag, "works", "FAILS"),
                "the product finds its own relations by its tag".into(),
            ),
            (
                "_count cap".into(),
                match (self.count_cap, self.wrote) {
                    (Some(n), _) => format!("pages hold at most {n}"),
                    (None, true) => "not capped below 100".into(),
                    (None, false) => "not measured".into(),
                },
                "more pages, same result: `next` links are followed".into(),
            ),
            (
                "paging stable under writes".into(),
                yn(self.paging_stable, "yes", "NO: entries moved between pages"),
                if s.read_by_identifier {
                    "the product's relations are read by Rad-id in chunks, not by paging".into()
                } else {
                    "the product's relations are read by paging its tag".into()
                },
            ),
            (
                "Prefer: return=minimal".into(),
                yn(self.return_minimal, "answers without a body", "answers with a body"),
                "either works: versions come from ETag or Location, everything is read back".into(),
            ),
            (
                "Prefer: return=representation".into(),
                yn(self.return_representation, "answers with the resource", "answers without one"),
                "either works: everything written is read back".into(),
            ),
            (
                "_history".into(),
                yn(self.history, "lists versions", "not available"),
                "`history` needs only the state file; _history helps a person audit".into(),
            ),
            (
                "429 met".into(),
                self.throttled.to_string(),
                "retried with backoff, Retry-After honoured".into(),
            ),
            (
                "unknown element".into(),
                yn(self.rejects_unknown_element, "refused", "accepted"),
                "the product writes only R4 elements; a lenient server stores what others send too".into(),
            ),
            (
                "code outside its value set".into(),
                yn(self.rejects_wrong_code, "refused", "accepted"),
                "the product checks its codes against mappings/fhir before writing".into(),
            ),
            (
                "reference to a missing resource".into(),
                yn(self.rejects_broken_reference, "refused", "accepted"),
                "the product creates what it references first and checks its own references".into(),
            ),
        ];
        if !self.left_behind.is_empty() {
            rows.push((
                "probe resources left".into(),
                self.left_behind.join(", "),
                "the delete was refused: they are entered-in-error and tagged probe".into(),
            ));
        }
        rows
    }
}

/// Probes a server. `write`: create, change and delete probe CareTeams.
pub async fn probe(
    client: &FhirClient,
    tag_system: &str,
    write: bool,
) -> Result<ServerFacts, ClientError> {
    let caps = client.send(Method::GET, "metadata", None, None).await?.body;
    let rest = &caps["rest"][0];
    let declares = |name: &str| {
        rest["interaction"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["code"] == name))
    };
    let mut f = ServerFacts {
        base: client.base().to_owned(),
        probed_at: chrono::Utc::now().to_rfc3339(),
        wrote: write,
        software: caps["software"]["name"].as_str().map(|n| {
            format!("{n} {}", caps["software"]["version"].as_str().unwrap_or(""))
                .trim()
                .to_owned()
        }),
        fhir_version: caps["fhirVersion"].as_str().map(str::to_owned),
        declares_transaction: declares("transaction"),
        declares_batch: declares("batch"),
        ..Default::default()
    };
    let run = uuid::Uuid::new_v4().simple().to_string();
    let p = Probe {
        c: client,
        tag: tag_system.to_owned(),
        run: run.clone(),
    };
    // Read-only: the search parameters the product depends on are accepted.
    let tag_q = format!(
        "CareTeam?_tag={}&_count=1",
        enc(&format!("{tag_system}|probe-{run}"))
    );
    f.search_tag = Some(client.search_all(&tag_q).await.is_ok());
    let id_q = format!(
        "CareTeam?identifier={}&_count=1",
        enc(&format!("{PROBE_SYSTEM}|none-{run}"))
    );
    f.search_identifier = Some(client.search_all(&id_q).await.is_ok());
    if write {
        // A probe killed before its clean-up left its resources: remove them first.
        let old = client
            .search_all(&format!(
                "CareTeam?_tag={}&_count=200",
                enc(&format!("{tag_system}|probe"))
            ))
            .await
            .unwrap_or_default();
        for r in old.iter().filter(|r| {
            r["status"] == "entered-in-error" && r["identifier"][0]["system"] == PROBE_SYSTEM
        }) {
            if let Some(id) = r["id"].as_str() {
                let _ = client
                    .send(Method::DELETE, &format!("CareTeam/{id}"), None, None)
                    .await;
            }
        }
        let mut made = Vec::new();
        let r = p.write_probes(&mut f, &mut made).await;
        if let Err(e) = r {
            f.notes.push(format!("probing stopped: {e}"));
        }
        for id in made {
            if client
                .send(Method::DELETE, &format!("CareTeam/{id}"), None, None)
                .await
                .is_err()
            {
                f.left_behind.push(format!("CareTeam/{id}"));
            }
        }
    }
    f.throttled = client.throttled.load(std::sync::atomic::Ordering::Relaxed);
    Ok(f)
}

fn enc(s: &str) -> String {
    url_escape(s)
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Probe<'c> {
    c: &'c FhirClient,
    tag: String,
    run: String,
}

/// A refusal (4xx) as `Ok(None)`, the answer as `Ok(Some)`; other failures stay errors.
fn refused(r: Result<Response, ClientError>) -> Result<Option<Response>, ClientError> {
    match r {
        Ok(x) => Ok(Some(x)),
        Err(ClientError::Http { status, .. }) if (400..500).contains(&status) => Ok(None),
        Err(e) => Err(e),
    }
}

fn conflict(r: &Result<Response, ClientError>) -> Option<bool> {
    match r {
        Ok(_) => Some(false),
        Err(ClientError::Http {
            status: 409 | 412, ..
        }) => Some(true),
        // A failed transaction may say 400 for a failed ifMatch (hfs does).
        Err(ClientError::Http { status: 400, .. }) => Some(true),
        Err(_) => None,
    }
}

impl Probe<'_> {
    fn body(&self, n: &str) -> Value {
        json!({
            "resourceType": "CareTeam",
            "meta": {"tag": [{"system": self.tag, "code": "probe"}, {"system": self.tag, "code": format!("probe-{}", self.run)}]},
            "identifier": [{"system": PROBE_SYSTEM, "value": format!("{}-{n}", self.run)}],
            "status": "entered-in-error",
            "name": "fastkontakt probe (safe to delete)"
        })
    }

    fn ident(&self, n: &str) -> String {
        format!(
            "identifier={}",
            enc(&format!("{PROBE_SYSTEM}|{}-{n}", self.run))
        )
    }

    /// The search for the probe written as `n`, by its identifier.
    fn by_identifier(&self, n: &str) -> String {
        format!("CareTeam?{}&_count=50", self.ident(n))
    }

    async fn found(&self, n: &str) -> Result<Vec<Value>, ClientError> {
        self.c.search_all(&self.by_identifier(n)).await
    }

    /// Searches until the answer holds something, waiting 0.1, 0.2, … 1.6 s between tries: a
    /// server whose search trails its writes (under load, or with an indexer apart from its
    /// store) finds a write only after a moment, and that is not "search does not work". Adds
    /// the time waited to `waited`.
    async fn found_soon(&self, query: &str, waited: &mut u64) -> Result<Vec<Value>, ClientError> {
        let mut pause = 100;
        loop {
            let got = self.c.search_all(query).await?;
            if !got.is_empty() || pause > 1600 {
                return Ok(got);
            }
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            *waited += pause;
            pause *= 2;
        }
    }

    /// Creates one probe (PUT to a new id where that works, else POST); its id.
    async fn create(
        &self,
        n: &str,
        put: bool,
        made: &mut Vec<String>,
    ) -> Result<Option<String>, ClientError> {
        self.write_new(self.body(n), put, made).await
    }

    /// Writes a new resource (PUT to a new UUID id, or POST); its id, or None when refused.
    async fn write_new(
        &self,
        mut b: Value,
        put: bool,
        made: &mut Vec<String>,
    ) -> Result<Option<String>, ClientError> {
        let r = if put {
            let id = uuid::Uuid::new_v4().to_string();
            b["id"] = json!(id);
            refused(
                self.c
                    .send(Method::PUT, &format!("CareTeam/{id}"), Some(&b), None)
                    .await,
            )?
            .map(|_| id)
        } else {
            refused(self.c.send(Method::POST, "CareTeam", Some(&b), None).await)?
                .and_then(|r| r.created_id())
        };
        if let Some(id) = &r {
            made.push(id.clone());
        }
        Ok(r)
    }

    async fn version(&self, id: &str) -> Result<Option<String>, ClientError> {
        Ok(self
            .c
            .read("CareTeam", id)
            .await?
            .and_then(|v| v["meta"]["versionId"].as_str().map(str::to_owned)))
    }

    async fn write_probes(
        &self,
        f: &mut ServerFacts,
        made: &mut Vec<String>,
    ) -> Result<(), ClientError> {
        let c = self.c;
        // Creating.
        let put_id = self.create("put", true, made).await?;
        f.update_create = Some(put_id.is_some());
        let post_id = self.create("post", false, made).await?;
        f.create = Some(post_id.is_some());
        let put = put_id.is_some();
        // The probe every later step edits, and the name its identifier carries.
        let xn = if put { "put" } else { "post" };
        let Some(x) = put_id.or(post_id) else {
            f.notes
                .push("no probe resource could be created: nothing more was tried".into());
            return Ok(());
        };
        // If-Match on PUT: current, then stale.
        let v1 = self.version(&x).await?.unwrap_or_else(|| "1".into());
        let mut b = self.body(xn);
        b["id"] = json!(x);
        b["name"] = json!("fastkontakt probe (safe to delete) v2");
        let path = format!("CareTeam/{x}");
        c.send(Method::PUT, &path, Some(&b), Some(&format!("W/\"{v1}\"")))
            .await?;
        b["name"] = json!("fastkontakt probe (safe to delete) stale");
        f.if_match = conflict(
            &c.send(Method::PUT, &path, Some(&b), Some(&format!("W/\"{v1}\"")))
                .await,
        );
        // Conditional PUT with a stale If-Match.
        let cond = format!("CareTeam?{}", self.ident(xn));
        let mut cb = b.clone();
        if let Some(o) = cb.as_object_mut() {
            o.remove("id");
        }
        f.if_match_conditional = match c
            .send(Method::PUT, &cond, Some(&cb), Some(&format!("W/\"{v1}\"")))
            .await
        {
            Err(ClientError::Http {
                status: 409 | 412, ..
            }) => Some(true),
            Ok(_) => Some(false),
            _ => None, // conditional update not offered: nothing to say about If-Match there
        };
        // Searches find what was written (given a moment: see `found_soon`).
        let mut waited = 0;
        let mut by_id = !self
            .found_soon(&self.by_identifier(xn), &mut waited)
            .await?
            .is_empty();
        if !by_id {
            // A second write, searched for in turn: the test server, with another client
            // writing at the same moment, sometimes never finds one write (waiting did not
            // help), and one lost write is not "search does not work".
            if self.create("again", put, made).await?.is_some() {
                by_id = !self
                    .found_soon(&self.by_identifier("again"), &mut waited)
                    .await?
                    .is_empty();
                if by_id {
                    f.notes.push("search by identifier never found one write, and found a second: the server lost one write from its search (another client writing at the same moment?)".into());
                }
            }
        }
        f.search_identifier = Some(by_id);
        let mine = format!(
            "CareTeam?_tag={}&_count=10",
            enc(&format!("{}|probe-{}", self.tag, self.run))
        );
        f.search_tag = Some(!self.found_soon(&mine, &mut waited).await?.is_empty());
        if waited > 0 {
            f.notes.push(format!(
                "search found the probe's writes only after waiting {waited} ms: the server's search trails its writes"
            ));
        }
        // Prefer.
        let cur = self.version(&x).await?.unwrap_or_default();
        b["name"] = json!("fastkontakt probe (safe to delete) v3");
        let r = c
            .send_with(
                Method::PUT,
                &path,
                Some(&b),
                &[
                    ("Prefer", "return=minimal".into()),
                    ("If-Match", format!("W/\"{cur}\"")),
                ],
            )
            .await?;
        f.return_minimal =
            Some(r.body.is_null() || r.body.as_object().is_some_and(|o| o.is_empty()));
        let cur = self.version(&x).await?.unwrap_or_default();
        b["name"] = json!("fastkontakt probe (safe to delete) v4");
        let r = c
            .send_with(
                Method::PUT,
                &path,
                Some(&b),
                &[
                    ("Prefer", "return=representation".into()),
                    ("If-Match", format!("W/\"{cur}\"")),
                ],
            )
            .await?;
        f.return_representation = Some(r.body["resourceType"] == "CareTeam");
        // _history.
        f.history = Some(
            match refused(
                c.send(Method::GET, &format!("{path}/_history"), None, None)
                    .await,
            )? {
                Some(r) => r.body["entry"].as_array().is_some_and(|e| e.len() >= 2),
                None => false,
            },
        );
        self.transactions(f, made, put, &x, xn).await?;
        self.conditional_creates(f, made).await?;
        self.paging(f, made, put).await?;
        self.validation(f, made, put).await?;
        Ok(())
    }

    fn entry(&self, n: &str, put: bool) -> Value {
        let mut b = self.body(n);
        if put {
            let id = uuid::Uuid::new_v4().to_string();
            b["id"] = json!(id);
            json!({"resource": b, "request": {"method": "PUT", "url": format!("CareTeam/{id}")}})
        } else {
            json!({"fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": b, "request": {"method": "POST", "url": "CareTeam"}})
        }
    }

    async fn bundle(
        &self,
        kind: &str,
        entries: Vec<Value>,
    ) -> Result<Result<Response, ClientError>, ClientError> {
        let b = json!({"resourceType": "Bundle", "type": kind, "entry": entries});
        Ok(self.c.send(Method::POST, "", Some(&b), None).await)
    }

    /// Ids a transaction or batch answer names (Location of each entry).
    fn answered_ids(r: &Response) -> Vec<String> {
        r.body["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["response"]["location"].as_str())
            .filter_map(|l| {
                let path = l.split("/_history/").next().unwrap_or(l);
                path.rsplit('/').next().map(str::to_owned)
            })
            .collect()
    }

    async fn transactions(
        &self,
        f: &mut ServerFacts,
        made: &mut Vec<String>,
        put: bool,
        x: &str,
        xn: &str,
    ) -> Result<(), ClientError> {
        let ok = self
            .bundle(
                "transaction",
                vec![self.entry("t1", put), self.entry("t2", put)],
            )
            .await?;
        f.transaction = Some(match &ok {
            Ok(r) => {
                made.extend(Self::answered_ids(r));
                r.body["type"] == "transaction-response"
            }
            Err(ClientError::Http { status, .. }) if (400..600).contains(status) => false,
            Err(_) => false,
        });
        if f.transaction == Some(true) {
            // One good create and one stale If-Match: nothing may land.
            let mut stale = self.body(xn);
            stale["id"] = json!(x);
            let entries = vec![
                self.entry("atomic", put),
                json!({"resource": stale, "request": {"method": "PUT", "url": format!("CareTeam/{x}"), "ifMatch": "W/\"1\""}}),
            ];
            let r = self.bundle("transaction", entries).await?;
            f.if_match_in_transaction = conflict(&r);
            if let Ok(resp) = &r {
                made.extend(Self::answered_ids(resp));
            }
            let landed = self.found("atomic").await?;
            made.extend(
                landed
                    .iter()
                    .filter_map(|v| v["id"].as_str().map(str::to_owned)),
            );
            f.transaction_atomic = Some(r.is_ok() || landed.is_empty());
            if r.is_ok() {
                // Nothing failed, so atomicity was not shown either way.
                f.transaction_atomic = None;
            }
            let hundred: Vec<Value> = (0..PROBED_TRANSACTION)
                .map(|i| self.entry(&format!("h{i}"), put))
                .collect();
            let r = self.bundle("transaction", hundred).await?;
            f.transaction_100 = Some(r.is_ok());
            if let Ok(resp) = &r {
                made.extend(Self::answered_ids(resp));
            }
        }
        let read = json!({"request": {"method": "GET", "url": format!("CareTeam/{x}")}});
        let r = self.bundle("batch", vec![read]).await?;
        f.batch = Some(r.is_ok_and(|r| r.body["type"] == "batch-response"));
        Ok(())
    }

    async fn conditional_creates(
        &self,
        f: &mut ServerFacts,
        made: &mut Vec<String>,
    ) -> Result<(), ClientError> {
        let c = self.c;
        let post = |n: &'static str| async move {
            let b = self.body(n);
            refused(
                c.send_with(
                    Method::POST,
                    "CareTeam",
                    Some(&b),
                    &[("If-None-Exist", self.ident(n))],
                )
                .await,
            )
        };
        post("cc").await?;
        post("cc").await?;
        let got = self.found("cc").await?;
        made.extend(
            got.iter()
                .filter_map(|v| v["id"].as_str().map(str::to_owned)),
        );
        f.conditional_create = Some(got.len() == 1);
        let tries: Vec<_> = (0..10).map(|_| post("cc10")).collect();
        for r in futures::future::join_all(tries).await {
            r?;
        }
        let got = self.found("cc10").await?;
        made.extend(
            got.iter()
                .filter_map(|v| v["id"].as_str().map(str::to_owned)),
        );
        f.conditional_create_duplicates = Some(got.len().saturating_sub(1) as u32);
        Ok(())
    }

    async fn paging(
        &self,
        f: &mut ServerFacts,
        made: &mut Vec<String>,
        put: bool,
    ) -> Result<(), ClientError> {
        let c = self.c;
        // At least 110 probes exist after a 100-entry transaction; make sure, else add singles.
        let mine = format!("{}|probe-{}", self.tag, self.run);
        let have = c
            .search_all(&format!("CareTeam?_tag={}&_count=100", enc(&mine)))
            .await?
            .len();
        for i in have..110 {
            self.create(&format!("p{i}"), put, made).await?;
        }
        let first = c
            .send(
                Method::GET,
                &format!("CareTeam?_tag={}&_count=100", enc(&mine)),
                None,
                None,
            )
            .await?
            .body;
        let n = first["entry"].as_array().map_or(0, Vec::len);
        f.count_cap = (n < 100).then_some(n as u32);
        // Page by 10 while 5 more are written after the first page.
        let before: std::collections::BTreeSet<String> = c
            .search_all(&format!("CareTeam?_tag={}&_count=100", enc(&mine)))
            .await?
            .iter()
            .filter_map(|v| v["id"].as_str().map(str::to_owned))
            .collect();
        let mut seen: Vec<String> = Vec::new();
        let mut wrote = false;
        let ids = |page: &Value| -> Vec<String> {
            page["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
                .collect()
        };
        let first = c
            .send(
                Method::GET,
                &format!("CareTeam?_tag={}&_count=10", enc(&mine)),
                None,
                None,
            )
            .await?
            .body;
        seen.extend(ids(&first));
        let mut next = next_link(&first);
        while let Some(url) = next {
            // A page on another origin is not this server's: never fetched (nor given a token).
            let absolute = reqwest::Url::parse(&url).is_ok();
            if absolute && !c.same_origin(&url) {
                f.notes.push(format!(
                    "a next link leaves the server's origin ({}): paging stopped",
                    super::client::display_url(&url)
                ));
                f.paging_stable = Some(false);
                return Ok(());
            }
            if !wrote {
                for i in 0..5 {
                    self.create(&format!("w{i}"), put, made).await?;
                }
                wrote = true;
            }
            let page = c.send(Method::GET, &url, None, None).await?.body;
            seen.extend(ids(&page));
            next = next_link(&page);
            if seen.len() > 10_000 {
                break;
            }
        }
        let unique: std::collections::BTreeSet<&String> = seen.iter().collect();
        let missing = before.iter().filter(|id| !unique.contains(id)).count();
        f.paging_stable = Some(unique.len() == seen.len() && missing == 0);
        if missing > 0 || unique.len() != seen.len() {
            f.notes.push(format!(
                "paging under writes: {} seen twice, {missing} of {} missed",
                seen.len() - unique.len(),
                before.len()
            ));
        }
        Ok(())
    }

    async fn validation(
        &self,
        f: &mut ServerFacts,
        made: &mut Vec<String>,
        put: bool,
    ) -> Result<(), ClientError> {
        let mut tries = Vec::new();
        let mut unknown = self.body("v-unknown");
        unknown["fastkontaktProbeUnknown"] = json!(true);
        tries.push(unknown);
        let mut code = self.body("v-code");
        code["status"] = json!("not-a-status");
        tries.push(code);
        let mut reference = self.body("v-ref");
        reference["subject"] = json!({"reference": format!("Patient/{}", uuid::Uuid::new_v4())});
        tries.push(reference);
        let mut out = Vec::new();
        for (i, b) in tries.into_iter().enumerate() {
            let r = self.write_new(b, put, made).await?;
            out.push((i, r.is_none()));
        }
        f.rejects_unknown_element = Some(out[0].1);
        f.rejects_wrong_code = Some(out[1].1);
        f.rejects_broken_reference = Some(out[2].1);
        Ok(())
    }
}

fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}
