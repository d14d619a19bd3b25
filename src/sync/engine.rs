//! Plan and apply. The plan is a three-way diff per register row: desired (the register), actual
//! (the EHR, only resources carrying the product's tag), last applied (the state file). Apply
//! writes transaction chunks with If-Match, a Provenance in each, reads back what it wrote, and
//! records every change in the ledger. Nothing is ever deleted: a vanished row is ended.

use super::ownership::{hash, Ownership};
use super::state::{Applied, Done, ItemOutcome, LedgerEntry, Pending, State, StateError};
use super::takeover::{
    Decision, HandContact, HandIndex, Match, TakeoverEntry, TakeoverPolicy, TakeoverReport,
};
use crate::domain::{ContactStatus, FixedContact, PatientId};
use crate::fhir::client::{ClientError, FhirClient};
use crate::fhir::model;
use crate::fhir::outbound::{relation_type, Outbound, ResourceSet};
use crate::fhir::probe::{CreateBy, Grouping, WriteStrategy, PROBED_TRANSACTION};
use crate::fhir::transaction;
use crate::mapping::Mappings;
use crate::sources::register::{RegisterError, RegisterItem, RegisterReader, RejectedRow};
use futures::StreamExt;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{0}")]
    Refused(String),
}

/// What a sync does when a person changed what the register owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OnConflict {
    /// Report the conflict and leave the EHR's version.
    Report,
    /// Overwrite the person's change with the register's (still reported).
    RegisterWins,
}

/// What a plan item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A relation the EHR lacks.
    Create,
    /// The register changed a relation.
    Update,
    /// The register no longer lists a relation: set it inactive with an end date.
    End,
    /// A Patient, Practitioner, PractitionerRole or Organization the EHR lacks.
    CreateReference,
    /// A contact typed by hand in the EHR taken over in place: the product's tag and the
    /// Rad-id added, register-owned elements set (`--takeover adopt`).
    Adopt,
    /// A contact typed by hand ended: replaced by the product's (`--takeover replace`), or
    /// standing for no register row (`--end-unmatched`).
    EndHandTyped,
    /// A duty toward the patient written once (Örebro §7.4): the inform-the-patient Task of an
    /// FVK ended or changed, or the patient's written information (Composition).
    Duty,
}

pub(crate) use super::key::{Carrier, PlanKey, RelationKey};
pub(crate) use super::state::Facts;

impl Action {
    /// As the plan, the state file and the ledger spell it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::End => "end",
            Action::CreateReference => "create-reference",
            Action::Adopt => "adopted",
            Action::EndHandTyped => "end-hand-typed",
            Action::Duty => "duty",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanItem {
    pub(crate) seq: i64,
    pub(crate) key: PlanKey,
    pub action: Action,
    pub resource_type: String,
    pub id: String,
    /// The version the item was planned against (`W/"n"` is sent as If-Match).
    pub(crate) expected_version: Option<String>,
    pub(crate) body: Value,
    pub(crate) owned_hash: String,
    pub register_row: Option<String>,
    pub reason: String,
    pub(crate) facts: Option<Facts>,
    /// The owned state before, for the ledger.
    pub(crate) before: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conflict {
    pub(crate) key: PlanKey,
    pub resource: String,
    pub reason: String,
    pub(crate) register: Option<Value>,
    pub(crate) ehr: Option<Value>,
}

/// What a sync will write, and why.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncPlan {
    pub(crate) base: String,
    pub(crate) register: String,
    pub(crate) register_sha256: String,
    pub(crate) created: String,
    /// The writes, in order.
    pub items: Vec<PlanItem>,
    /// Changes a person made that the register contradicts.
    pub conflicts: Vec<Conflict>,
    pub(crate) unchanged: u64,
    /// Relations found on the server as the register wants them, with no record of the write
    /// (a killed run, or another sync): recorded, not written.
    pub(crate) adopt: Vec<Adoption>,
    pub(crate) errors: Vec<String>,
    pub(crate) rejected_rows: u64,
    /// Made from files for review (`reconcile --ehr DIR`): creates carry no body, so it cannot
    /// be applied; `sync` or `reconcile --ehr URL` plan against the live server.
    #[serde(default)]
    pub(crate) review_only: bool,
    /// Relations the register no longer lists that were left as they are, because rows were
    /// rejected this run (their row, or their patient, or, when a row could not be read far
    /// enough to name its patient, every relation).
    #[serde(default)]
    pub(crate) ends_held: u64,
    /// Rows that could not be read far enough to know whose they are: while there is one, the
    /// run ends nothing at all.
    #[serde(default)]
    pub(crate) unreadable_rows: u64,
    /// Register rows a contact typed by hand in the EHR (without the product's tag) already
    /// stands for, while no takeover policy is chosen: nothing is planned for them, so the
    /// first sync doubles nothing.
    #[serde(default)]
    pub(crate) takeover_pending: u64,
    /// The EHR's contacts typed by hand: what the takeover decided for each.
    #[serde(default)]
    pub takeover: TakeoverReport,
    /// The written information of the patients whose contacts the plan changes, as
    /// Compositions, when asked for as files (never in plan.json: it names patients).
    #[serde(skip)]
    pub letters: Vec<Value>,
}

/// A relation found on the server as the register wants it, recorded in the state without a
/// write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Adoption {
    pub(crate) key: PlanKey,
    /// `Type/id` on the server.
    pub(crate) resource: String,
    pub(crate) version: Option<String>,
    pub(crate) owned_hash: String,
}

/// The end-of-run summary a cron job reads (`--summary FILE`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// The run's number in the state file.
    pub run: i64,
    /// Planned only.
    pub dry_run: bool,
    /// Relations created.
    pub created: u64,
    /// Relations updated.
    pub updated: u64,
    /// Relations ended.
    pub ended: u64,
    /// Relations already as the register wants them.
    pub unchanged: u64,
    /// Conflicts found.
    pub conflicts: u64,
    /// Errors met.
    pub errors: u64,
    /// Register rows rejected.
    pub rejected_rows: u64,
    /// Relations the register no longer lists, left as they are this run (see messages).
    pub(crate) ends_held: u64,
    /// Register rows held because a contact typed by hand stands for them and no takeover
    /// policy is chosen (see messages).
    pub(crate) takeover_pending: u64,
    /// Register rows held by the takeover (`report`, a conflict, a whole team in one resource).
    pub(crate) takeover_held: u64,
    /// Contacts typed by hand adopted in place.
    pub adopted: u64,
    /// Contacts typed by hand ended (replaced, or with no register row under
    /// `--end-unmatched`).
    pub hand_typed_ended: u64,
    /// Referenced resources created.
    pub references_created: u64,
    /// Duties toward the patient written: inform-the-patient Tasks and written information.
    pub duties_written: u64,
    /// Requests that changed data.
    pub writes: u64,
    pub(crate) requests: u64,
    /// Requests retried.
    pub retries: u64,
    /// 429 answers met (each waited out).
    pub throttled: u64,
    /// Each request's wall time (seconds): the service's latency histogram.
    #[serde(skip)]
    pub latencies: Vec<f32>,
    /// Wall time.
    pub duration_seconds: f64,
    /// How the run wrote to the server (from its probed facts, or the config).
    pub strategy: Option<WriteStrategy>,
    /// What the run wants said (held ends, errors).
    pub messages: Vec<String>,
    /// Stopped between chunks before the plan's end (a service shutting down).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

impl Summary {
    /// Requests made to the server.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// 0 done, 1 done with conflicts or rejected rows, 2 failed.
    pub fn exit_code(&self) -> u8 {
        if self.errors > 0 || self.stopped {
            2
        } else if self.conflicts > 0
            || self.rejected_rows > 0
            || self.takeover_pending > 0
            || self.takeover_held > 0
        {
            1
        } else {
            0
        }
    }
}

/// Entries per transaction unless told otherwise. Into the test server 10,000 patients synced
/// in 34.8 s with 100, 29.2 s with 500 and 29.4 s with 1,000 (a Provenance per 25 changes);
/// a refused transaction is applied one entry at a time, so no larger than it pays.
pub const DEFAULT_CHUNK_SIZE: usize = 500;

/// How a sync plans and applies.
pub struct Options {
    /// What to do with a person's change.
    pub on_conflict: OnConflict,
    /// Entries per transaction.
    pub chunk_size: usize,
    /// The day "active" is judged on, and ends are dated.
    pub as_of: chrono::NaiveDate,
    /// Refuse a plan that ends more than this share of the product's active relations (a
    /// truncated export must not end half a region).
    pub max_end_share: f64,
    /// What to do with register rows a contact typed by hand already stands for (none: write
    /// nothing for them, and say how many there are).
    pub takeover: Option<TakeoverPolicy>,
    /// End the hand-typed contacts no register row stands for (of patients the register
    /// lists), under the end-share guard.
    pub end_unmatched: bool,
    /// How to write to the server: probed facts, or choices that override them.
    pub writing: Writing,
    /// What the run writes for the patient's sake beside the relations (Örebro §7.4).
    pub duties: Duties,
}

/// The duties toward the patient a sync writes beside the relations (Örebro §7.4).
#[derive(Debug, Clone, Copy)]
pub struct Duties {
    /// A Task "inform the patient" for each FVK the run ends or changes, owned by its unit.
    pub inform_tasks: bool,
    /// The written information (a Composition) of each patient whose contacts the run changes,
    /// written to the EHR; off unless the region turns it on.
    pub written_information: bool,
    /// The same written information kept in the plan (`SyncPlan::letters`) for files.
    pub written_information_files: bool,
}

impl Default for Duties {
    fn default() -> Self {
        Duties {
            inform_tasks: true,
            written_information: false,
            written_information_files: false,
        }
    }
}

/// How sync learns the way to write to a server, and what overrides it.
#[derive(Debug, Clone, Default)]
pub struct Writing {
    /// Probe the server again even when the state file holds its facts.
    pub reprobe: bool,
    /// Create so, whatever the probe found.
    pub create_by: Option<CreateBy>,
    /// Group writes so, whatever the probe found.
    pub grouping: Option<Grouping>,
}

fn version_of(r: &Value) -> Option<String> {
    r["meta"]["versionId"].as_str().map(str::to_owned)
}

/// A keyed hash of a patient for the state file: `history` can look a patient up, the file
/// does not list personnummer, and without the operator's key nobody can test a guess.
pub(crate) fn patient_hash(key: &super::state::StateKey, p: &PatientId) -> String {
    key.hash(&p.expose())
}

fn facts_of(c: &FixedContact, key: &super::state::StateKey) -> Facts {
    Facts {
        patient_hash: patient_hash(key, &c.patient),
        kind: c.kind.to_string(),
        staff: c.staff().map(|s| s.hsa.to_string()),
        unit: c.unit.hsa.to_string(),
        status: c.status().code().to_owned(),
        valid_from: c.period.start().to_string(),
        valid_to: c.period.end().map(|d| d.to_string()),
    }
}

/// Replaces `"reference": "Type/det-id"` with the id the EHR already uses for that resource.
pub(crate) fn rewrite_refs(v: &mut Value, map: &HashMap<String, String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("reference") {
                if let Some(n) = map.get(r.as_str()) {
                    *r = n.clone();
                }
            }
            for (_, x) in m.iter_mut() {
                rewrite_refs(x, map);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_refs(x, map)),
        _ => {}
    }
}

fn to_json(r: crate::fhir::Resource) -> Value {
    model::to_value(r).unwrap_or(Value::Null)
}

/// A patient's active FLK (staff, unit) and listing unit, for Patient.generalPractitioner.
type PatientFacts = (
    Option<(crate::domain::HsaId, crate::domain::HsaId)>,
    Option<crate::domain::HsaId>,
);

/// The state's key of a Patient's listing (`Patient.generalPractitioner/id`): apart from the
/// Patient's own key, which records its creation.
fn listing_key(patient_id: &str) -> PlanKey {
    PlanKey::Reference {
        resource_type: "Patient.generalPractitioner".into(),
        id: patient_id.to_owned(),
    }
}

/// Register → what the EHR should hold.
pub(crate) struct Desired {
    /// key → (contact, source, relation JSON)
    pub(crate) relations: BTreeMap<RelationKey, (FixedContact, String, Value)>,
    pub(crate) references: Vec<Value>,
    pub(crate) rejected: Vec<RejectedRow>,
    pub(crate) held_rows: HashSet<String>,
    pub(crate) held_patients: HashSet<PatientId>,
    /// Rejected rows whose patient could not be read: no End at all this run.
    pub(crate) unreadable_rows: u64,
    pub(crate) sha256: String,
}

pub(crate) fn desired(
    path: &Path,
    m: &Mappings,
    on_reject: &mut dyn FnMut(&Path, &RejectedRow),
) -> Result<Desired, SyncError> {
    let sha256 = crate::sources::register::sha256_file(path)?;
    let out = Outbound::new(m);
    let mut relations = BTreeMap::new();
    let mut refs = ResourceSet::default();
    let mut rejected = Vec::new();
    let (mut held_rows, mut held_patients) = (HashSet::new(), HashSet::new());
    let mut unreadable_rows = 0;
    let mut patients: BTreeMap<PatientId, PatientFacts> = BTreeMap::new();
    let shown = crate::sources::register::RowSource::new(path);
    for item in RegisterReader::open(path, &m.register, &m.terminology)? {
        match item? {
            RegisterItem::Rejected(row) => {
                on_reject(path, &row);
                if let Some(r) = &row.row_id {
                    held_rows.insert(r.to_string());
                }
                if let Some(p) = &row.patient {
                    held_patients.insert(p.clone());
                }
                unreadable_rows += u64::from(row.identity_unknown);
                rejected.push(row);
            }
            RegisterItem::Contact { line, contact } => {
                let r = out.contact(&contact);
                refs.add(r.organization);
                if let Some(x) = r.practitioner {
                    refs.add(x);
                }
                if let Some(x) = r.practitioner_role {
                    refs.add(x);
                }
                if let Some(x) = r.listing_organization {
                    refs.add(x);
                }
                let e = patients.entry(contact.patient.clone()).or_default();
                if contact.kind == crate::domain::ContactKind::Flk
                    && contact.status() == ContactStatus::Active
                {
                    e.0 = contact
                        .staff()
                        .map(|s| (s.hsa.clone(), contact.unit.hsa.clone()));
                }
                if e.1.is_none() {
                    e.1 = contact.listing_unit.as_deref().cloned();
                }
                let key = RelationKey::new(relation_type(&contact), contact.row_id.as_str());
                let source = shown.of(line, &contact.row_id);
                relations.insert(key, (contact, source, to_json(r.relation)));
            }
        }
    }
    for (p, (flk, listing)) in &patients {
        refs.add(out.patient(p, flk.as_ref().map(|(a, b)| (a, b)), listing.as_ref()));
    }
    let references = refs.into_resources().into_iter().map(to_json).collect();
    Ok(Desired {
        relations,
        references,
        rejected,
        held_rows,
        held_patients,
        unreadable_rows,
        sha256,
    })
}

/// What the EHR already has of the referenced resources.
struct Resolved {
    /// Deterministic `Type/id` → the EHR's.
    rewrite: HashMap<String, String>,
    /// Referenced resources the EHR lacks.
    creates: Vec<Value>,
    /// The EHR's Patients found, by `system|value` of the identifier searched.
    patients: HashMap<String, Value>,
}

/// Finds which of the referenced resources the EHR already has (by business identifier), and
/// which must be created.
async fn resolve_references(client: &FhirClient, refs: &[Value]) -> Result<Resolved, SyncError> {
    let mut by_type: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in refs {
        by_type
            .entry(r["resourceType"].as_str().unwrap_or("").to_owned())
            .or_default()
            .push(r);
    }
    let mut rewrite = HashMap::new();
    let mut creates = Vec::new();
    let mut patients = HashMap::new();
    for (t, list) in by_type {
        for chunk in list.chunks(40) {
            let ids: Vec<String> = chunk
                .iter()
                .filter_map(|r| {
                    let i = &r["identifier"][0];
                    Some(format!(
                        "{}|{}",
                        i["system"].as_str()?,
                        i["value"].as_str()?
                    ))
                })
                .collect();
            // POST _search: the identifiers (personnummer among them) stay out of every URL.
            let found = client
                .search_post(
                    &t,
                    &[("identifier", ids.join(",")), ("_count", "200".into())],
                )
                .await?;
            let mut existing: HashMap<String, String> = HashMap::new();
            for f in &found {
                for i in f["identifier"].as_array().into_iter().flatten() {
                    if let (Some(s), Some(v), Some(id)) =
                        (i["system"].as_str(), i["value"].as_str(), f["id"].as_str())
                    {
                        existing
                            .entry(format!("{s}|{v}"))
                            .or_insert_with(|| id.to_owned());
                    }
                }
            }
            for r in chunk {
                let i = &r["identifier"][0];
                let key = format!(
                    "{}|{}",
                    i["system"].as_str().unwrap_or(""),
                    i["value"].as_str().unwrap_or("")
                );
                let det = format!("{t}/{}", r["id"].as_str().unwrap_or(""));
                if t == "Patient" {
                    if let Some(id) = existing.get(&key) {
                        if let Some(p) = found.iter().find(|f| f["id"].as_str() == Some(id)) {
                            patients.insert(key.clone(), p.clone());
                        }
                    }
                }
                match existing.get(&key) {
                    Some(id) if format!("{t}/{id}") != det => {
                        rewrite.insert(det, format!("{t}/{id}"));
                    }
                    Some(_) => {}
                    None => creates.push((*r).clone()),
                }
            }
        }
    }
    for c in &mut creates {
        rewrite_refs(c, &rewrite);
    }
    Ok(Resolved {
        rewrite,
        creates,
        patients,
    })
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b',' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// How the product's relations are read from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadBy {
    /// Paging through the product's tag.
    Tag,
    /// By Rad-id in chunks (the register's rows and those the state says were written), on a
    /// server whose paging moves under writes: no page to skip.
    Identifier,
}

/// Read-back searches in flight at once after a sync's writes.
const VERIFY_READS: usize = 4;

/// What the EHR holds of the product's relations, by key; duplicates are reported.
async fn actual(
    client: &FhirClient,
    m: &Mappings,
    read: ReadBy,
    rows: &[&RelationKey],
    errors: &mut Vec<String>,
) -> Result<HashMap<RelationKey, Value>, SyncError> {
    let tag = format!("{}|{}", m.target.tag_system, m.target.tag_code);
    let mut found = Vec::new();
    match read {
        ReadBy::Tag => {
            for t in ["CareTeam", "Task"] {
                found.extend(
                    client
                        .search_all(&format!("{t}?_tag={}&_count=500", encode(&tag)))
                        .await?,
                );
            }
        }
        ReadBy::Identifier => {
            for carrier in [Carrier::CareTeam, Carrier::Task] {
                let ids: Vec<String> = rows
                    .iter()
                    .filter(|k| k.carrier == carrier)
                    .map(|k| format!("{}|{}", m.target.row_id_system, k.row))
                    .collect();
                for chunk in ids.chunks(50) {
                    found.extend(
                        client
                            .search_post(
                                carrier.as_str(),
                                &[
                                    ("identifier", chunk.join(",")),
                                    ("_tag", tag.clone()),
                                    ("_count", "100".into()),
                                ],
                            )
                            .await?,
                    );
                }
            }
        }
    }
    Ok(product_relations(m, found, errors))
}

/// The EHR's fixed contacts that do not carry the product's tag (typed by hand), read from
/// the server with the directory they name, and the JSON of their resources (what an adopt
/// or an end starts from).
async fn hand_typed(
    client: &FhirClient,
    m: &Mappings,
    product: &HashMap<RelationKey, Value>,
) -> Result<(HandIndex, HashMap<String, Value>), SyncError> {
    let ours: HashSet<String> = product
        .iter()
        .map(|(k, v)| format!("{}/{}", k.carrier.as_str(), v["id"].as_str().unwrap_or("")))
        .collect();
    let (side, mut raw) =
        crate::sources::ehr::side::EhrSide::contacts_from_server(client, m).await?;
    let ix = side.hand_typed(&ours);
    raw.retain(|k, _| !ours.contains(k));
    Ok((ix, raw))
}

/// What a product CareTeam or Task read from the EHR says of itself before its body is
/// looked at: a server's JSON, or a compact copy kept from export files.
pub(crate) trait HeldRelation {
    /// `CareTeam` or `Task` (or whatever else carries a row id).
    fn type_name(&self) -> &str;
    /// The resource's id.
    fn id(&self) -> &str;
    /// The register row id it carries under `system`.
    fn row_id(&self, system: &str) -> Option<&str>;
}

impl HeldRelation for Value {
    fn type_name(&self) -> &str {
        self["resourceType"].as_str().unwrap_or("")
    }
    fn id(&self) -> &str {
        self["id"].as_str().unwrap_or("")
    }
    fn row_id(&self, system: &str) -> Option<&str> {
        self["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["system"] == system)
            .and_then(|i| i["value"].as_str())
    }
}

/// The product's relations among the EHR data, by plan key; a row held twice is an error.
pub(crate) fn product_relations<R: HeldRelation>(
    m: &Mappings,
    resources: Vec<R>,
    errors: &mut Vec<String>,
) -> HashMap<RelationKey, R> {
    let mut out: HashMap<RelationKey, R> = HashMap::new();
    for r in resources {
        let t = r.type_name();
        let Some(row) = r.row_id(m.target.row_id_system.as_str()) else {
            continue;
        };
        let Some(carrier) = Carrier::from_type_name(t) else {
            errors.push(format!(
                "{t}/{} carries a register row id ({row}) but is not a CareTeam or Task; not touched",
                r.id()
            ));
            continue;
        };
        let key = RelationKey::new(carrier, row);
        if let Some(prev) = out.get(&key) {
            if prev.id() == r.id() {
                continue; // the same resource, met twice by the searches
            }
            errors.push(format!(
                "{t} row {row} is held by more than one resource ({:?} and {:?}); not touched",
                prev.id(),
                r.id()
            ));
            continue;
        }
        out.insert(key, r);
    }
    out
}

/// Builds the plan from a live server. Reads only.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn plan(
    client: &FhirClient,
    m: &Mappings,
    own: &Ownership,
    state: &State,
    d: &Desired,
    opts: &Options,
    register_name: &str,
    read: ReadBy,
) -> Result<SyncPlan, SyncError> {
    let Resolved {
        rewrite,
        creates,
        patients,
    } = resolve_references(client, &d.references).await?;
    let mut errors = Vec::new();
    let written = if read == ReadBy::Identifier {
        state.written_relations()?
    } else {
        Vec::new()
    };
    let mut rows: Vec<&RelationKey> = d.relations.keys().chain(written.iter()).collect();
    rows.sort();
    rows.dedup();
    let actual = actual(client, m, read, &rows, &mut errors).await?;
    let mut planner = Planner::new(
        m,
        own,
        state,
        opts,
        PlanBasis {
            base: client.base(),
            register: register_name,
            sha256: &d.sha256,
        },
        Bodies::Kept,
    );
    planner.rejected(d.rejected.len() as u64, d.unreadable_rows);
    let (hand, bodies) = hand_typed(client, m, &actual).await?;
    planner.hand_typed(hand, bodies);
    planner.found(
        actual.values().filter(|a| a["status"] == "active").count(),
        errors,
    );
    for (det, existing) in rewrite {
        planner.resolved(det, existing);
    }
    planner.reference_creates(creates);
    planner.listings(&d.references, &patients)?;
    let held = Held {
        rows: &d.held_rows,
        patients: &d.held_patients,
        unreadable_rows: d.unreadable_rows,
    };
    let mut keys: Vec<&RelationKey> = d.relations.keys().chain(actual.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let desired = d.relations.get(key);
        let body = || desired.map(|(_, _, b)| b.clone()).unwrap_or(Value::Null);
        let want = desired.map(|(c, s, _)| Want {
            contact: c,
            source: s,
            body: &body,
        });
        planner.relation(key, want, actual.get(key), &held)?;
    }
    planner.finish_hand_typed(&held)?;
    planner.duties(m, d, &actual);
    planner.finish()
}

/// Register rows and patients that had a rejected row this time: what the register says of
/// them is unknown, so nothing of theirs is ended. A relation is ended only when the register
/// positively no longer lists it: with a row whose patient could not be read, nothing is.
pub(crate) struct Held<'a> {
    pub(crate) rows: &'a HashSet<String>,
    pub(crate) patients: &'a HashSet<PatientId>,
    pub(crate) unreadable_rows: u64,
}

/// What the register wants of one relation; the body is built only when it is needed.
pub(crate) struct Want<'a> {
    pub(crate) contact: &'a FixedContact,
    pub(crate) source: &'a str,
    pub(crate) body: &'a dyn Fn() -> Value,
}

/// What a plan is made against and from: the EHR's base URL (or the files), the export and
/// its SHA-256.
pub(crate) struct PlanBasis<'b> {
    pub(crate) base: &'b str,
    pub(crate) register: &'b str,
    pub(crate) sha256: &'b str,
}

/// Whether a plan's creates carry their bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bodies {
    /// A live plan, to apply.
    Kept,
    /// A plan made from files, for review: creates carry no body (a region's bodies would not
    /// fit in memory, and the files are not the live EHR to apply against).
    ReviewOnly,
}

/// Decides, relation by relation, what a sync does: the three-way diff. The one planner of
/// every caller: `sync` and `reconcile` against a server feed it what they searched,
/// `reconcile` from files what the files hold, a partition at a time; what differs is told
/// through `found`, `resolved` and `Bodies`.
pub(crate) struct Planner<'a> {
    plan: SyncPlan,
    own: &'a Ownership,
    opts: &'a Options,
    state: &'a State,
    ns: uuid::Uuid,
    /// Deterministic reference → the id the EHR uses.
    rewrite: HashMap<String, String>,
    /// The product's active relations in the EHR (for the end-share guard).
    active_owned: usize,
    bodies: Bodies,
    seq: i64,
    ends: usize,
    /// The EHR's contacts typed by hand (of the partition being planned).
    hand: HandIndex,
    /// Their resources' JSON by `Type/id`, when the plan is to be applied.
    hand_bodies: HashMap<String, Value>,
    /// Rows whose only candidates fit loosely: decided once the register has been read.
    deferred: Vec<Deferred>,
    /// The partition's register patients (a hand-typed contact of a patient the register does
    /// not list at all is never ended).
    /// (Their keys, in the order met; sorted once the register has been read: a hash set of
    /// a region's million took 19 MB at the run's peak, this 8.)
    register_patients: Vec<u64>,
    /// Active hand-typed contacts, for the end-share guard under `--end-unmatched`.
    active_hand: usize,
    /// The business status of an answered request (erbjudande#besvarat), as JSON.
    answered: Value,
    /// The state held no written relation when planning began (a million lookups that
    /// could find nothing took a sixth of a first reconcile's planning).
    nothing_applied: bool,
}

/// A register row waiting for the whole register before its takeover is decided.
struct Deferred {
    key: RelationKey,
    contact: FixedContact,
    source: String,
    body: Value,
}

impl<'a> Planner<'a> {
    pub fn new(
        m: &Mappings,
        own: &'a Ownership,
        state: &'a State,
        opts: &'a Options,
        basis: PlanBasis,
        bodies: Bodies,
    ) -> Self {
        Planner {
            plan: SyncPlan {
                base: basis.base.to_owned(),
                register: basis.register.to_owned(),
                register_sha256: basis.sha256.to_owned(),
                created: chrono::Utc::now().to_rfc3339(),
                review_only: bodies == Bodies::ReviewOnly,
                ..Default::default()
            },
            own,
            opts,
            state,
            ns: m.target.id_namespace,
            rewrite: HashMap::new(),
            active_owned: 0,
            bodies,
            seq: 0,
            ends: 0,
            hand: HandIndex::default(),
            hand_bodies: HashMap::new(),
            deferred: Vec::new(),
            register_patients: Vec::new(),
            answered: {
                let c = m
                    .terminology
                    .coding(crate::mapping::terminology::ids::ERBJUDANDE, "besvarat");
                json!({"coding": [{"system": c.system, "code": c.code, "display": c.display}]})
            },
            active_hand: 0,
            // An unreadable state is asked relation by relation, and says why there.
            nothing_applied: state.nothing_applied().unwrap_or(false),
        }
    }

    /// What the state recorded of the relation's last write.
    fn applied(&self, key: &PlanKey) -> Result<Option<super::state::Applied>, SyncError> {
        if self.nothing_applied {
            return Ok(None);
        }
        Ok(self.state.applied(key)?)
    }

    /// The product's relations found in the EHR (all, or a partition's): `active` of them are
    /// active (the end-share guard counts them); `errors`, a row held twice, go in the plan.
    pub(crate) fn found(&mut self, active: usize, errors: Vec<String>) {
        self.active_owned += active;
        self.plan.errors.extend(errors);
    }

    /// The EHR's contacts typed by hand (no product tag) of the patients about to be planned,
    /// with their resources' JSON when the plan is to be applied. `finish_hand_typed` closes
    /// them before the next partition's.
    pub(crate) fn hand_typed(&mut self, hand: HandIndex, bodies: HashMap<String, Value>) {
        self.plan.takeover.policy = self.opts.takeover;
        self.hand = hand;
        self.hand_bodies = bodies;
    }

    /// A referenced resource the EHR already has, under its own id.
    pub(crate) fn resolved(&mut self, deterministic: String, existing: String) {
        self.rewrite.insert(deterministic, existing);
    }

    /// Rows the register reader rejected; `unreadable` of them could not be read far enough to
    /// know whose they are.
    pub(crate) fn rejected(&mut self, rows: u64, unreadable: u64) {
        self.plan.rejected_rows += rows;
        self.plan.unreadable_rows += unreadable;
    }

    /// The items planned so far (a caller moves them to disk as it goes).
    pub(crate) fn items(&mut self) -> &mut Vec<PlanItem> {
        &mut self.plan.items
    }

    fn next(&mut self) -> i64 {
        self.seq += 1;
        self.seq
    }

    /// Referenced resources the EHR lacks.
    pub(crate) fn reference_creates(&mut self, creates: Vec<Value>) {
        for r in creates {
            let (t, id) = (
                r["resourceType"].as_str().unwrap_or("").to_owned(),
                r["id"].as_str().unwrap_or("").to_owned(),
            );
            let seq = self.next();
            self.plan.items.push(PlanItem {
                seq,
                key: PlanKey::Reference {
                    resource_type: t.clone(),
                    id: id.clone(),
                },
                action: Action::CreateReference,
                resource_type: t,
                id,
                expected_version: None,
                owned_hash: hash(&r),
                body: r,
                register_row: None,
                reason: "referenced by the register, absent from the EHR".into(),
                facts: None,
                before: None,
            });
        }
    }

    /// `Patient.generalPractitioner` of the EHR's existing Patients brought to the register's
    /// FLK and listing unit (an element the register owns, domain.md). Only where the register
    /// names an FLK or a listing: a patient it says nothing of keeps what the EHR has. A
    /// person's change since the last sync is a conflict.
    pub(crate) fn listings(
        &mut self,
        desired: &[Value],
        existing: &HashMap<String, Value>,
    ) -> Result<(), SyncError> {
        let refs = |v: &Value| -> Vec<String> {
            let mut r: Vec<String> = v["generalPractitioner"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x["reference"].as_str().map(str::to_owned))
                .collect();
            r.sort();
            r
        };
        for d in desired.iter().filter(|r| r["resourceType"] == "Patient") {
            let i = &d["identifier"][0];
            let key = format!(
                "{}|{}",
                i["system"].as_str().unwrap_or(""),
                i["value"].as_str().unwrap_or("")
            );
            let Some(have) = existing.get(&key) else {
                continue;
            };
            let mut want = d.clone();
            rewrite_refs(&mut want, &self.rewrite);
            let want_gp = refs(&want);
            if want_gp.is_empty() || want_gp == refs(have) {
                continue;
            }
            let id = have["id"].as_str().unwrap_or("").to_owned();
            let pkey = listing_key(&id);
            let have_owned = self.own.owned(have);
            let have_h = hash(&have_owned);
            if let Some(l) = self.applied(&pkey)? {
                if l.owned_hash != have_h {
                    self.plan.conflicts.push(Conflict {
                        key: pkey.clone(),
                        resource: format!("Patient/{id}"),
                        reason: "a person changed Patient.generalPractitioner since the last sync"
                            .into(),
                        register: Some(json!({"generalPractitioner": want["generalPractitioner"]})),
                        ehr: Some(have_owned.clone()),
                    });
                    if self.opts.on_conflict == OnConflict::Report {
                        continue;
                    }
                }
            }
            let body = self.own.merge(
                have,
                &json!({"resourceType": "Patient", "generalPractitioner": want["generalPractitioner"]}),
            );
            let patient = i["value"].as_str().and_then(|v| PatientId::parse(v).ok());
            let seq = self.next();
            self.plan.items.push(PlanItem {
                seq,
                key: pkey,
                action: Action::Update,
                resource_type: "Patient".into(),
                id,
                expected_version: version_of(have),
                owned_hash: hash(&self.own.owned(&body)),
                body,
                register_row: None,
                reason:
                    "the register's FLK or listing unit differs from Patient.generalPractitioner"
                        .into(),
                facts: patient.map(|p| Facts {
                    patient_hash: patient_hash(self.state.key(), &p),
                    kind: "listing (Patient.generalPractitioner)".into(),
                    staff: None,
                    unit: want_gp.join(", "),
                    status: ContactStatus::Active.code().to_owned(),
                    valid_from: self.opts.as_of.to_string(),
                    valid_to: None,
                }),
                before: Some(have_owned),
            });
        }
        Ok(())
    }

    /// One relation: what the register wants (if anything) against what the EHR has.
    pub(crate) fn relation(
        &mut self,
        relation: &RelationKey,
        desired: Option<Want>,
        a: Option<&Value>,
        held: &Held,
    ) -> Result<(), SyncError> {
        let key = &PlanKey::from(relation.clone());
        let last = self.applied(key)?;
        let (t, row) = (relation.carrier.as_str(), relation.row.as_str());
        if let (Some(w), false) = (&desired, self.hand.is_empty()) {
            self.register_patients
                .push(crate::sources::ehr::side::patient_key(&w.contact.patient));
        }
        match (desired, a) {
            // Never written by the product: a contact typed by hand may already stand for it,
            // and creating the product's own beside it would give the patient two.
            (Some(w), None) if last.is_none() && !self.hand.is_empty() => {
                match self.hand.first_look(w.contact) {
                    Match::None => self.create(key, t, w, last),
                    Match::Later => {
                        let body = match self.bodies {
                            Bodies::Kept => (w.body)(),
                            Bodies::ReviewOnly => Value::Null,
                        };
                        self.deferred.push(Deferred {
                            key: relation.clone(),
                            contact: w.contact.clone(),
                            source: w.source.to_owned(),
                            body,
                        });
                    }
                    m => self.take_over(key, t, w, m)?,
                }
            }
            (Some(w), None) => self.create(key, t, w, last),
            (Some(w), Some(a)) => {
                let (contact, source) = (w.contact, w.source);
                self.update(key, t, w, a, last)?;
                if !self.hand.is_empty() {
                    self.duplicates(contact, source);
                }
            }
            (None, Some(a)) => self.end(key, t, row, a, last, held)?,
            (None, None) => {}
        }
        Ok(())
    }

    /// In the register, not in the EHR: a create (a conflict if the product wrote it before and
    /// someone removed it).
    fn create(&mut self, key: &PlanKey, t: &str, w: Want, last: Option<Applied>) {
        let (own, opts) = (self.own, self.opts);
        let id = crate::fhir::ids::IdMaker::new(self.ns).relation(t, &w.contact.row_id);
        if last.is_some() {
            // It was written before and is gone: someone removed it in the EHR.
            let body = self.body(&w);
            self.plan.conflicts.push(Conflict {
                key: key.clone(),
                resource: format!("{t}/{id}"),
                reason: "removed from the EHR since the last sync".into(),
                register: Some(own.owned(&body)),
                ehr: None,
            });
            if opts.on_conflict == OnConflict::Report {
                return;
            }
        }
        let (body, owned_hash) = if self.bodies == Bodies::Kept {
            let body = self.body(&w);
            let h = hash(&own.owned(&body));
            (body, h)
        } else {
            (Value::Null, String::new())
        };
        let seq = self.next();
        self.plan.items.push(PlanItem {
            seq,
            key: key.clone(),
            action: Action::Create,
            resource_type: t.to_owned(),
            id,
            expected_version: None,
            owned_hash,
            body,
            register_row: Some(w.source.to_owned()),
            reason: "in the register, not in the EHR".into(),
            facts: Some(facts_of(w.contact, self.state.key())),
            before: None,
        });
    }

    /// In both: unchanged (adopted into the state if unrecorded), an update, or a conflict when
    /// a person changed what the register owns.
    fn update(
        &mut self,
        key: &PlanKey,
        t: &str,
        w: Want,
        a: &Value,
        last: Option<Applied>,
    ) -> Result<(), SyncError> {
        let (own, opts) = (self.own, self.opts);
        let body = self.body(&w);
        let want = own.owned(&body);
        let have = own.owned(a);
        let (want_h, have_h) = (hash(&want), hash(&have));
        let id = a["id"].as_str().unwrap_or("").to_owned();
        if want_h == have_h {
            self.plan.unchanged += 1;
            if last
                .as_ref()
                .is_none_or(|l| l.owned_hash != have_h || l.version != version_of(a))
            {
                self.plan.adopt.push(Adoption {
                    key: key.clone(),
                    resource: format!("{t}/{id}"),
                    version: version_of(a),
                    owned_hash: have_h,
                });
            }
            return Ok(());
        }
        if let Err(e) = model::parse_value(a.clone()) {
            self.plan.errors.push(format!(
                "{t}/{id} is not strict FHIR R4, so it is not edited: {e}"
            ));
            return Ok(());
        }
        let ours = match &last {
            Some(l) => l.owned_hash == have_h,
            None => self.state.was_pending(key, &have_h)?,
        };
        if !ours {
            self.plan.conflicts.push(Conflict {
                key: key.clone(),
                resource: format!("{t}/{id}"),
                reason: if last.is_some() {
                    "a person changed register-owned elements in the EHR since the last sync".into()
                } else {
                    "the EHR's version differs and there is no record of the product writing it"
                        .into()
                },
                register: Some(want.clone()),
                ehr: Some(have.clone()),
            });
            if opts.on_conflict == OnConflict::Report {
                return Ok(());
            }
        }
        let merged = own.merge(a, &body);
        let seq = self.next();
        self.plan.items.push(PlanItem {
            seq,
            key: key.clone(),
            action: Action::Update,
            resource_type: t.to_owned(),
            id,
            expected_version: version_of(a),
            owned_hash: want_h,
            body: merged,
            register_row: Some(w.source.to_owned()),
            reason: "the register changed".into(),
            facts: Some(facts_of(w.contact, self.state.key())),
            before: Some(have),
        });
        Ok(())
    }

    /// In the EHR, no longer in the register: ended (never deleted), unless what the register
    /// says of it is unknown this run.
    fn end(
        &mut self,
        key: &PlanKey,
        t: &str,
        row: &str,
        a: &Value,
        last: Option<Applied>,
        held: &Held,
    ) -> Result<(), SyncError> {
        let (own, opts) = (self.own, self.opts);
        // An open request (a Task the product wrote as `requested`) is answered once the
        // register no longer lists it; a decline or information given has nothing to end.
        let open_request = t == "Task" && a["status"] == "requested";
        if !open_request && (a["status"] != "active" || t != "CareTeam") {
            return Ok(()); // already ended, or a step of the offer that is done
        }
        let id = a["id"].as_str().unwrap_or("").to_owned();
        let subject = a["subject"]["identifier"]["value"]
            .as_str()
            .and_then(|v| PatientId::parse(v).ok());
        let patient_held = subject.is_some_and(|s| held.patients.contains(&s));
        if held.unreadable_rows > 0 || held.rows.contains(row) || patient_held {
            // What the register says of it is unknown this run: leave it as it is.
            self.plan.ends_held += 1;
            return Ok(());
        }
        let have = own.owned(a);
        let have_h = hash(&have);
        if let Some(l) = &last {
            if l.owned_hash != have_h {
                self.plan.conflicts.push(Conflict { key: key.clone(), resource: format!("{t}/{id}"), reason: "the register no longer lists this relation, and a person changed it in the EHR".into(), register: None, ehr: Some(have.clone()) });
                if opts.on_conflict == OnConflict::Report {
                    return Ok(());
                }
            }
        }
        let mut ended = a.clone();
        let end = opts.as_of.to_string();
        let period = if open_request {
            ended["status"] = json!("completed");
            ended["businessStatus"] = self.answered.clone();
            "executionPeriod"
        } else {
            ended["status"] = json!("inactive");
            "period"
        };
        let keep_end = a[period]["end"].as_str().is_some_and(|e| e <= end.as_str());
        if !keep_end {
            ended[period]["end"] = json!(end);
        }
        let facts = self.state.last_facts(key)?;
        self.ends += 1;
        let seq = self.next();
        self.plan.items.push(PlanItem {
            seq,
            key: key.clone(),
            action: Action::End,
            resource_type: t.to_owned(),
            id,
            expected_version: version_of(a),
            owned_hash: hash(&own.owned(&ended)),
            body: ended,
            register_row: None,
            reason: "no longer in the register: ended, not deleted".into(),
            facts: facts.map(|mut f| {
                f.status = if open_request { "besvarad" } else { "avslutad" }.into();
                f.valid_to = Some(opts.as_of.to_string());
                f
            }),
            before: Some(have),
        });
        Ok(())
    }

    /// A row a contact typed by hand stands for (or several do): what the policy makes of it.
    fn take_over(&mut self, key: &PlanKey, t: &str, w: Want, m: Match) -> Result<(), SyncError> {
        let found = match m {
            Match::One(i) => vec![i],
            Match::Several(v) => v,
            Match::None | Match::Later => return Ok(()),
        };
        let resources: Vec<String> = found
            .iter()
            .map(|&i| self.hand.get(i).resource.to_string())
            .collect();
        let h = self.hand.get(found[0]);
        let row_source = w.source.to_owned();
        let decision = if found.len() > 1 {
            self.plan.conflicts.push(Conflict {
                key: key.clone(),
                resource: resources.join(", "),
                reason: format!(
                    "{} contacts typed by hand in the EHR stand for register row {}: none is taken over and nothing is created (end the extra copies in the EHR)",
                    found.len(),
                    w.contact.row_id
                ),
                register: None,
                ehr: None,
            });
            Decision::Conflict
        } else {
            match self.opts.takeover {
                None => {
                    self.plan.takeover_pending += 1;
                    Decision::Pending
                }
                Some(TakeoverPolicy::Report) => Decision::Report,
                Some(_) if h.team => Decision::Team,
                Some(_) if h.resource_type() != t => Decision::OtherCarrier,
                // A declined offer has nothing to end: replacing it is adopting it.
                Some(TakeoverPolicy::Adopt) | Some(TakeoverPolicy::Replace) if t != "CareTeam" => {
                    self.adopt(key, t, &w, &h)?;
                    Decision::Adopt
                }
                Some(TakeoverPolicy::Adopt) => {
                    self.adopt(key, t, &w, &h)?;
                    Decision::Adopt
                }
                Some(TakeoverPolicy::Replace) => {
                    let row = w.contact.row_id.to_string();
                    self.create(key, t, w, None);
                    // One ended already (by hand) stays as it is: there is nothing to end.
                    if h.status == ContactStatus::Active {
                        self.end_hand(
                        &h,
                        Some(&row_source),
                        format!("Avslutad av fastkontakt vid övertagande: befolkningsregistrets rad {row} förs nu av produktens egen {t}."),
                        "typed by hand in the EHR: ended and replaced by the product's (--takeover replace)",
                    );
                    }
                    Decision::Replace
                }
            }
        };
        self.plan.takeover.record(TakeoverEntry {
            decision,
            resource: resources.join(", "),
            register_row: Some(row_source),
            patient: h.patient.expose(),
            kind: h.kind.to_string(),
            unit: h.unit.to_string(),
        });
        Ok(())
    }

    /// Active copies typed by hand of a relation the product already carries: ended under
    /// `replace`, else listed.
    fn duplicates(&mut self, contact: &FixedContact, source: &str) {
        for i in self.hand.duplicates(contact) {
            let h = self.hand.get(i);
            let replace = self.opts.takeover == Some(TakeoverPolicy::Replace)
                && !h.team
                && h.resource_type() == "CareTeam";
            let decision = if replace {
                self.end_hand(
                    &h,
                    Some(source),
                    format!("Avslutad av fastkontakt: en kopia av befolkningsregistrets rad {}, som produkten redan för.", contact.row_id),
                    "an active copy typed by hand of a relation the product carries: ended (--takeover replace)",
                );
                Decision::DuplicateEnded
            } else {
                Decision::Duplicate
            };
            self.plan.takeover.record(TakeoverEntry {
                decision,
                resource: h.resource.to_string(),
                register_row: Some(source.to_owned()),
                patient: h.patient.expose(),
                kind: h.kind.to_string(),
                unit: h.unit.to_string(),
            });
        }
    }

    /// The hand-typed resource updated in place: the register's owned elements, the product's
    /// tag and the Rad-id on it, all else as it was; If-Match on the version read.
    fn adopt(
        &mut self,
        key: &PlanKey,
        t: &str,
        w: &Want,
        h: &HandContact,
    ) -> Result<(), SyncError> {
        let (body, owned_hash, expected_version, before) = match self.bodies {
            Bodies::ReviewOnly => (Value::Null, String::new(), None, None),
            Bodies::Kept => {
                let Some(cur) = self.hand_bodies.get(&*h.resource) else {
                    self.plan.errors.push(format!(
                        "{}: typed by hand, but its JSON was not read; not adopted",
                        h.resource
                    ));
                    return Ok(());
                };
                if let Err(e) = model::parse_value(cur.clone()) {
                    self.plan.errors.push(format!(
                        "{} is not strict FHIR R4, so it is not adopted: {e}",
                        h.resource
                    ));
                    return Ok(());
                }
                let desired = self.body(w);
                let merged = self.own.merge(cur, &desired);
                let owned_hash = hash(&self.own.owned(&merged));
                (
                    merged,
                    owned_hash,
                    version_of(cur),
                    Some(self.own.owned(cur)),
                )
            }
        };
        let seq = self.next();
        self.plan.items.push(PlanItem {
            seq,
            key: key.clone(),
            action: Action::Adopt,
            resource_type: t.to_owned(),
            id: h.id().to_owned(),
            expected_version,
            owned_hash,
            body,
            register_row: Some(w.source.to_owned()),
            reason: "typed by hand in the EHR: adopted in place (the product's tag and the Rad-id added, register-owned elements set to the register's)".into(),
            facts: Some(facts_of(w.contact, self.state.key())),
            before,
        });
        Ok(())
    }

    /// A hand-typed CareTeam ended: status inactive, `period.end`, and a note saying why.
    fn end_hand(&mut self, h: &HandContact, row: Option<&str>, note: String, reason: &str) {
        let end = self.opts.as_of.to_string();
        let (body, owned_hash, expected_version, before) = match self.bodies {
            Bodies::ReviewOnly => (Value::Null, String::new(), None, None),
            Bodies::Kept => {
                let Some(cur) = self.hand_bodies.get(&*h.resource) else {
                    self.plan.errors.push(format!(
                        "{}: typed by hand, but its JSON was not read; not ended",
                        h.resource
                    ));
                    return;
                };
                let mut ended = cur.clone();
                ended["status"] = json!("inactive");
                if ended["period"]["end"]
                    .as_str()
                    .is_none_or(|e| e > end.as_str())
                {
                    ended["period"]["end"] = json!(end);
                }
                let mut notes = ended["note"].as_array().cloned().unwrap_or_default();
                notes.push(json!({"time": chrono::Utc::now().to_rfc3339(), "text": note}));
                ended["note"] = Value::Array(notes);
                let owned_hash = hash(&self.own.owned(&ended));
                (
                    ended,
                    owned_hash,
                    version_of(cur),
                    Some(self.own.owned(cur)),
                )
            }
        };
        let facts = Facts {
            patient_hash: patient_hash(self.state.key(), &h.patient),
            kind: h.kind.to_string(),
            staff: h.staff.as_ref().map(ToString::to_string),
            unit: h.unit.to_string(),
            status: ContactStatus::Ended.code().to_owned(),
            valid_from: h.period.start().to_string(),
            valid_to: Some(end),
        };
        let seq = self.next();
        self.plan.items.push(PlanItem {
            seq,
            key: PlanKey::HandTyped {
                resource_type: h.resource_type().to_owned(),
                id: h.id().to_owned(),
            },
            action: Action::EndHandTyped,
            resource_type: h.resource_type().to_owned(),
            id: h.id().to_owned(),
            expected_version,
            owned_hash,
            body,
            register_row: row.map(str::to_owned),
            reason: reason.into(),
            facts: Some(facts),
            before,
        });
    }

    /// After the partition's register rows: the rows that waited take their loose candidates,
    /// and the hand-typed contacts no row took are listed (or, with `--end-unmatched`, ended
    /// where the register lists the patient and nothing of theirs was rejected).
    pub(crate) fn finish_hand_typed(&mut self, held: &Held) -> Result<(), SyncError> {
        for d in std::mem::take(&mut self.deferred) {
            let key = PlanKey::from(d.key.clone());
            let t = d.key.carrier.as_str();
            let body = || d.body.clone();
            let w = Want {
                contact: &d.contact,
                source: &d.source,
                body: &body,
            };
            match self.hand.second_look(&d.contact) {
                Match::None | Match::Later => self.create(&key, t, w, None),
                m => self.take_over(&key, t, w, m)?,
            }
        }
        self.active_hand += self.hand.active_single();
        self.register_patients.sort_unstable();
        self.register_patients.dedup();
        for i in self.hand.unmatched_active() {
            let h = self.hand.get(i);
            let listed = self
                .register_patients
                .binary_search(&crate::sources::ehr::side::patient_key(&h.patient))
                .is_ok();
            let decision = if !listed {
                Decision::NotInRegister
            } else if held.unreadable_rows > 0 || held.patients.contains(&h.patient) {
                Decision::Held
            } else if self.opts.end_unmatched && !h.team && h.resource_type() == "CareTeam" {
                self.ends += 1;
                self.end_hand(
                    &h,
                    None,
                    "Avslutad av fastkontakt: befolkningsregistret anger inte denna kontakt för patienten.".into(),
                    "typed by hand in the EHR, and no register row stands for it: ended (--end-unmatched)",
                );
                Decision::UnmatchedEnded
            } else {
                Decision::Unmatched
            };
            self.plan.takeover.record(TakeoverEntry {
                decision,
                resource: h.resource.to_string(),
                register_row: None,
                patient: h.patient.expose(),
                kind: h.kind.to_string(),
                unit: h.unit.to_string(),
            });
        }
        self.hand = HandIndex::default();
        self.hand_bodies.clear();
        self.register_patients.clear();
        Ok(())
    }

    fn body(&self, w: &Want) -> Value {
        let mut body = (w.body)();
        rewrite_refs(&mut body, &self.rewrite);
        body
    }

    /// The duties toward the patient the plan brings (Örebro §7.4), written after the
    /// relations: a Task "inform the patient" for each FVK it ends or changes, and (when the
    /// region turns it on) the written information of each patient whose contacts it changes.
    pub(crate) fn duties(
        &mut self,
        m: &Mappings,
        d: &Desired,
        actual: &HashMap<RelationKey, Value>,
    ) {
        use crate::duties::{FvkChange, WrittenInformation};
        use crate::fhir::duties as fd;
        let (duties, as_of) = (self.opts.duties, self.opts.as_of);
        if self.bodies == Bodies::ReviewOnly {
            return;
        }
        let mut found: Vec<(Value, String)> = Vec::new();
        if duties.inform_tasks {
            for i in &self.plan.items {
                let PlanKey::Relation(k) = &i.key else {
                    continue;
                };
                let change = match i.action {
                    Action::End => Some(FvkChange::Ended),
                    Action::Update => fvk_change(i.before.as_ref(), &i.body),
                    _ => None,
                };
                let fvk = is_fvk(m, &i.body) || i.before.as_ref().is_some_and(|b| is_fvk(m, b));
                if let (Some(change), true, Carrier::CareTeam) = (change, fvk, k.carrier) {
                    let task = fd::inform_task(m, &i.body, &i.id, &k.row, change, as_of);
                    let why = match change {
                        FvkChange::Ended => "the FVK ended: inform the patient (Örebro §7.4)",
                        FvkChange::Changed => "the FVK changed: inform the patient (Örebro §7.4)",
                    };
                    found.push((task, why.into()));
                }
            }
        }
        if duties.written_information || duties.written_information_files {
            let touched: HashSet<PatientId> = self
                .plan
                .items
                .iter()
                .filter(|i| {
                    matches!(
                        i.action,
                        Action::Create | Action::Update | Action::End | Action::Adopt
                    )
                })
                .filter_map(|i| match &i.key {
                    PlanKey::Relation(k) => d
                        .relations
                        .get(k)
                        .map(|(c, _, _)| c.patient.clone())
                        .or_else(|| fd::patient_of(&i.body)),
                    _ => None,
                })
                .collect();
            let mut by_patient: BTreeMap<&PatientId, Vec<(&RelationKey, &FixedContact, &Value)>> =
                BTreeMap::new();
            for (k, (c, _, body)) in &d.relations {
                if touched.contains(&c.patient) {
                    by_patient.entry(&c.patient).or_default().push((k, c, body));
                }
            }
            for (p, rels) in by_patient {
                let contacts: Vec<&FixedContact> = rels.iter().map(|(_, c, _)| *c).collect();
                let Some(info) = WrittenInformation::of(p, &contacts, as_of, &m.terminology) else {
                    continue;
                };
                // Each relation as it is on the server (its id there), or as it will be.
                let bodies: HashMap<crate::domain::RowId, Value> = rels
                    .iter()
                    .map(|(k, c, body)| {
                        let v = actual.get(*k).cloned().unwrap_or_else(|| {
                            let mut b = (*body).clone();
                            rewrite_refs(&mut b, &self.rewrite);
                            b
                        });
                        (c.row_id.clone(), v)
                    })
                    .collect();
                if let Some(doc) = fd::composition(m, &info, &bodies) {
                    if duties.written_information_files {
                        self.plan.letters.push(doc.clone());
                    }
                    if duties.written_information {
                        found.push((
                            doc,
                            "the patient's contacts changed: the written information (Örebro §7.4)"
                                .into(),
                        ));
                    }
                }
            }
        }
        for (body, reason) in found {
            let seq = self.next();
            let t = body["resourceType"].as_str().unwrap_or("").to_owned();
            let id = body["id"].as_str().unwrap_or("").to_owned();
            self.plan.items.push(PlanItem {
                seq,
                key: PlanKey::Reference {
                    resource_type: t.clone(),
                    id: id.clone(),
                },
                action: Action::Duty,
                resource_type: t,
                id,
                expected_version: None,
                owned_hash: hash(&body),
                body,
                register_row: None,
                reason,
                facts: None,
                before: None,
            });
        }
    }

    /// The plan, unless it ends more than the allowed share of active relations (a truncated
    /// export must not end half a region).
    pub(crate) fn finish(self) -> Result<SyncPlan, SyncError> {
        let active = self.active_owned
            + if self.opts.end_unmatched {
                self.active_hand
            } else {
                0
            };
        let ends = self.ends;
        if active >= 20 && ends as f64 > self.opts.max_end_share * active as f64 {
            return Err(SyncError::Refused(format!(
                "the plan ends {ends} of {active} active relations ({:.0}%), above the limit of {:.0}%: is the export truncated? (raise --max-end-share to allow it)",
                100.0 * ends as f64 / active as f64,
                100.0 * self.opts.max_end_share
            )));
        }
        Ok(self.plan)
    }
}

/// Transactions a sync keeps in flight at once: the server works on one while the client
/// reads the last answer and builds the next (hfs took a 10,000-patient sync's 39
/// transactions in 14.0 s two at a time against 27.7 s one by one).
const IN_FLIGHT: usize = 2;

/// A transaction's parts kept for its answer: which writes the server names, the versions
/// each Provenance foresaw, the Provenances.
struct Built {
    posts: Vec<bool>,
    targets: Vec<String>,
    provs: Vec<Value>,
}

/// What may stand beside what in flight: a tier's writes point only at lower tiers' (a
/// PractitionerRole at its Practitioner and Organization, a relation at its Patient, a duty's
/// Task at its CareTeam), so only chunks of one tier travel together.
fn tier_of(items: &[PlanItem]) -> Option<u8> {
    let tier = |i: &PlanItem| match i.action {
        Action::CreateReference => reference_rank(&i.resource_type),
        Action::Duty => 5,
        _ => 4,
    };
    let first = tier(items.first()?);
    items.iter().all(|i| tier(i) == first).then_some(first)
}

/// What a reference points at comes first: an Organization, a Practitioner, a PractitionerRole
/// (at both), a Patient (at its listing unit and physician).
fn reference_rank(resource_type: &str) -> u8 {
    match resource_type {
        "Organization" => 0,
        "Practitioner" => 1,
        "PractitionerRole" => 2,
        _ => 3,
    }
}

/// A chunk sent and not yet answered.
struct Sent<'p> {
    answer: tokio::task::JoinHandle<Result<crate::fhir::client::Response, ClientError>>,
    chunk: &'p [&'p PlanItem],
    items: Vec<PlanItem>,
    tier: Option<u8>,
    built: Built,
}

/// The transactions in flight, answered in the order they were sent.
#[derive(Default)]
struct Flight<'p> {
    sent: std::collections::VecDeque<Sent<'p>>,
}

impl Flight<'_> {
    /// Whether a chunk of `tier` may be sent now: nothing in flight, or room beside chunks
    /// of the same one tier.
    fn takes(&self, tier: Option<u8>) -> bool {
        self.sent.is_empty()
            || (self.sent.len() < IN_FLIGHT
                && tier.is_some()
                && self.sent.iter().all(|s| s.tier == tier))
    }
}

/// Changes one Provenance names in a transaction. The test server's cost for a Provenance grows
/// faster than its targets: 17 transactions of 1,000 PUTs took 21 s with a Provenance of 50
/// targets each, 60 s with one of 1,000 targets, and 24.6 s with twenty Provenances of 50.
const PROVENANCE_TARGETS: usize = 25;

/// The most changes a transaction of `entries` entries carries beside their Provenances.
fn items_within(entries: usize) -> usize {
    (1..=entries)
        .rev()
        .find(|n| n + n.div_ceil(PROVENANCE_TARGETS) <= entries)
        .unwrap_or(1)
}

/// The Provenance of one transaction (or one change): its id is derived from what it records,
/// so a resent transaction writes the same Provenance. `targets` are the references it names
/// (versioned where the version is known or foreseen).
fn provenance(
    m: &Mappings,
    items: &[&PlanItem],
    targets: Vec<String>,
    register: &str,
    sha: &str,
) -> Value {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for i in items {
        h.update(format!("{}|{}|{:?};", i.key, i.owned_hash, i.expected_version).as_bytes());
    }
    let id = uuid::Uuid::new_v5(&m.target.id_namespace, hex::encode(h.finalize()).as_bytes())
        .to_string();
    transaction::provenance(&transaction::ProvenanceFacts {
        id: &id,
        tag_system: &m.target.tag_system,
        tag_code: &m.target.tag_code,
        targets,
        register,
        register_sha256: sha,
        rows: items
            .iter()
            .filter_map(|i| i.register_row.as_deref())
            .map(|r| r.rsplit(' ').next().unwrap_or(r))
            .collect(),
    })
}

/// `Type/id/_history/v`, or unversioned when the version is not known.
fn versioned(t: &str, id: &str, v: Option<&str>) -> String {
    match v {
        Some(v) => format!("{t}/{id}/_history/{v}"),
        None => format!("{t}/{id}"),
    }
}

/// The version a write will make, where versions count up: 1 for a create, n+1 for an update
/// of n. A server that counts otherwise gets its Provenance corrected after the write.
fn foreseen_version(i: &PlanItem) -> Option<String> {
    match &i.expected_version {
        None => Some("1".into()),
        Some(v) => v.parse::<u64>().ok().map(|n| (n + 1).to_string()),
    }
}

/// Whether a CareTeam's JSON is an FVK's (its role a KV typ av fast kontakt code for an FVK).
fn is_fvk(m: &Mappings, ct: &Value) -> bool {
    let t = &m.terminology;
    let kv = t.url(crate::mapping::terminology::ids::KV_TYP_AV_FAST_KONTAKT);
    let map = t.map(crate::mapping::terminology::ids::MAP_KV);
    ct["participant"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["role"].as_array().into_iter().flatten())
        .flat_map(|r| r["coding"].as_array().into_iter().flatten())
        .any(|c| {
            c["system"] == kv
                && c["code"]
                    .as_str()
                    .and_then(|code| map.reverse(code))
                    .is_some_and(|k| k.starts_with("fvk"))
        })
}

/// What an update does to an FVK that the patient is to be told of: ended, or another person,
/// unit or coordinating responsibility. `before` holds the register-owned elements as they were.
fn fvk_change(before: Option<&Value>, after: &Value) -> Option<crate::duties::FvkChange> {
    use crate::duties::FvkChange;
    let before = before?;
    if before["status"] == "active" && after["status"] == "inactive" {
        return Some(FvkChange::Ended);
    }
    let member = |v: &Value| v["participant"][0]["member"]["reference"].clone();
    let role = |v: &Value| v["participant"][0]["role"].clone();
    let unit = |v: &Value| v["managingOrganization"][0]["reference"].clone();
    let changed = |f: &dyn Fn(&Value) -> Value| {
        let b = f(before);
        !b.is_null() && b != f(after)
    };
    (changed(&member) || changed(&role) || changed(&unit)).then_some(FvkChange::Changed)
}

/// What a written item's read-back is checked against: its register-owned elements' hash,
/// or nothing (empty: it need only be there) for what the product owns whole, which a server
/// may annotate.
fn verified_hash(i: &PlanItem) -> String {
    if owns_whole(i.action) {
        String::new()
    } else {
        i.owned_hash.clone()
    }
}

fn is_create(a: Action) -> bool {
    matches!(a, Action::Create | Action::CreateReference | Action::Duty)
}

/// Whether the product owns the whole body (a reference it created, a duty it wrote), not
/// only the register-owned elements of a relation.
fn owns_whole(a: Action) -> bool {
    matches!(a, Action::CreateReference | Action::Duty)
}

pub(crate) struct Applier<'a> {
    pub(crate) client: &'a FhirClient,
    pub(crate) m: &'a Mappings,
    pub(crate) own: &'a Ownership,
    pub(crate) state: &'a mut State,
    pub(crate) run: i64,
    pub(crate) summary: Summary,
    pub(crate) register: String,
    pub(crate) sha: String,
    written: Vec<(String, String, String)>,
    strategy: WriteStrategy,
    /// `Type/deterministic-id` → `Type/server-id`, for what the server created under its own
    /// ids this run: later items' references are rewritten to it.
    assigned: HashMap<String, String>,
    /// The most entries a transaction is sent with: the chunk size, until the server refuses
    /// a chunk it then takes in parts of the probed size.
    transaction_limit: Option<usize>,
    /// The server refused a transaction this run: the rest go one at a time.
    refused: bool,
}

impl<'a> Applier<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: &'a FhirClient,
        m: &'a Mappings,
        own: &'a Ownership,
        state: &'a mut State,
        run: i64,
        register: &str,
        sha: &str,
        strategy: WriteStrategy,
    ) -> Self {
        Applier {
            client,
            m,
            own,
            state,
            run,
            summary: Summary {
                run,
                ..Default::default()
            },
            register: register.into(),
            sha: sha.into(),
            written: Vec::new(),
            strategy,
            assigned: HashMap::new(),
            transaction_limit: None,
            refused: false,
        }
    }

    fn count(&mut self, a: Action) {
        match a {
            Action::Create => self.summary.created += 1,
            Action::Update => self.summary.updated += 1,
            Action::End => self.summary.ended += 1,
            Action::CreateReference => self.summary.references_created += 1,
            Action::Adopt => self.summary.adopted += 1,
            Action::EndHandTyped => self.summary.hand_typed_ended += 1,
            Action::Duty => self.summary.duties_written += 1,
        }
    }

    fn ledger(&self, i: &PlanItem, version: Option<String>) -> Done {
        let f = i.facts.clone().unwrap_or(Facts {
            patient_hash: String::new(),
            kind: i.resource_type.clone(),
            staff: None,
            unit: String::new(),
            status: String::new(),
            valid_from: String::new(),
            valid_to: None,
        });
        let resource = format!("{}/{}", i.resource_type, i.id);
        let l = LedgerEntry {
            at: chrono::Utc::now().to_rfc3339(),
            run: self.run,
            key: i.key.to_string(),
            resource: resource.clone(),
            version: version.clone(),
            action: i.action.as_str().to_owned(),
            register_row: i.register_row.clone(),
            kind: f.kind,
            staff: f.staff,
            unit: f.unit,
            status: f.status,
            valid_from: f.valid_from,
            valid_to: f.valid_to,
            before: i
                .before
                .as_ref()
                .map(|b| self.state.key().redact(b).to_string()),
            after: Some(
                self.state
                    .key()
                    .redact(&self.own.owned(&i.body))
                    .to_string(),
            ),
        };
        Done {
            seq: i.seq,
            key: i.key.clone(),
            applied: Applied {
                resource,
                version,
                owned_hash: i.owned_hash.clone(),
            },
            ledger: l,
            patient_hash: f.patient_hash,
            also: None,
        }
    }

    /// An item as it is sent: its references rewritten to the ids the server gave what this
    /// run created, and its owned hash made again over them.
    fn prepare(&self, i: &PlanItem) -> PlanItem {
        let mut item = i.clone();
        if self.assigned.is_empty() || item.body.is_null() {
            return item;
        }
        let before = item.body.clone();
        rewrite_refs(&mut item.body, &self.assigned);
        if item.body != before {
            item.owned_hash = if owns_whole(item.action) {
                hash(&item.body)
            } else {
                hash(&self.own.owned(&item.body))
            };
        }
        item
    }

    /// The server named a create: later references to it, by our id or by the `urn:uuid:` it
    /// had inside its transaction, go to the server's id.
    fn assign(&mut self, t: &str, ours: &str, theirs: &str) {
        let to = format!("{t}/{theirs}");
        self.assigned.insert(format!("{t}/{ours}"), to.clone());
        self.assigned.insert(format!("urn:uuid:{ours}"), to);
    }

    /// `identifier=system|value` of what a create stands for: the Rad-id of a relation, the
    /// business identifier of a reference.
    fn if_none_exist(&self, i: &PlanItem) -> Option<String> {
        // Composition.identifier is one Identifier, elsewhere a list.
        let one = std::slice::from_ref(&i.body["identifier"]);
        let ids = match i.body["identifier"].as_array() {
            Some(a) => a.as_slice(),
            None if i.body["identifier"].is_object() => one,
            None => return None,
        };
        let id = ids
            .iter()
            .find(|x| x["system"] == self.m.target.row_id_system.as_str())
            .or_else(|| ids.first())?;
        let (s, v) = (id["system"].as_str()?, id["value"].as_str()?);
        Some(format!("identifier={}", encode(&format!("{s}|{v}"))))
    }

    /// Whether this create is POSTed for the server to name (its client ids refused).
    fn posts(&self, i: &PlanItem) -> bool {
        self.strategy.create == CreateBy::ConditionalPost && is_create(i.action)
    }

    /// Applies every item the way the server's facts allow: transaction chunks, batches, or
    /// one item at a time, each change with a Provenance; a refused chunk falls back to one at
    /// a time.
    pub(crate) async fn apply(
        &mut self,
        plan: &SyncPlan,
        chunk_size: usize,
    ) -> Result<(), SyncError> {
        for a in &plan.adopt {
            self.state.adopt(
                &a.key,
                &Applied {
                    resource: a.resource.clone(),
                    version: a.version.clone(),
                    owned_hash: a.owned_hash.clone(),
                },
                self.run,
            )?;
            if self.state.was_pending(&a.key, &a.owned_hash)? {
                self.late_provenance(&a.key, &a.resource, a.version.as_deref(), &a.owned_hash)
                    .await?;
            }
        }
        let grouped = self.strategy.grouping == Grouping::Transaction;
        // References first, so no relation points at nothing even for a moment.
        let (mut refs, rels): (Vec<&PlanItem>, Vec<&PlanItem>) = plan
            .items
            .iter()
            .partition(|i| i.action == Action::CreateReference);
        // What is referenced before what references it (a server naming its creates must
        // have named the PractitionerRole before the Patient pointing at it is sent).
        refs.sort_by_key(|i| (reference_rank(&i.resource_type), i.seq));
        let throttled_before = self
            .client
            .throttled
            .load(std::sync::atomic::Ordering::Relaxed);
        for group in [refs, rels] {
            // Transactions in flight together (the server works on one while the next is
            // read and checked); every one is settled before the next group starts.
            let mut flight = Flight::default();
            for chunk in group.chunks(chunk_size.max(1)) {
                // A service shutting down: the chunks in flight were finished and recorded;
                // the rest is left for the next run, which resumes from the state file.
                if super::stop_requested() {
                    self.land_all(&mut flight).await?;
                    self.summary.stopped = true;
                    self.summary.messages.push(
                        "stopped before the plan's end (the service is shutting down): the next run resumes it".into(),
                    );
                    return self.verify().await;
                }
                let mut items: Vec<PlanItem> = chunk.iter().map(|i| self.prepare(i)).collect();
                let pending: Vec<Pending> = items
                    .iter()
                    .map(|i| Pending {
                        seq: i.seq,
                        key: i.key.clone(),
                        action: i.action,
                        resource: format!("{}/{}", i.resource_type, i.id),
                        expected_version: i.expected_version.clone(),
                        desired_hash: i.owned_hash.clone(),
                    })
                    .collect();
                self.state.record_pending(self.run, &pending)?;
                // A batch cannot point one entry at another: references the server names are
                // created one at a time, in order.
                let one_by_one = self.strategy.create == CreateBy::ConditionalPost
                    && chunk.iter().any(|i| i.action == Action::CreateReference);
                if self.strategy.grouping == Grouping::Batch && !one_by_one {
                    self.land_all(&mut flight).await?;
                    self.batch(chunk, &mut items).await?;
                    continue;
                }
                if !grouped {
                    self.land_all(&mut flight).await?;
                    self.one_by_one(chunk).await?;
                    continue;
                }
                // Alongside others only where nothing in flight can be what it points at (one
                // tier), where the server takes our ids (no later item waits for a name), and
                // while the server has not throttled or refused.
                let whole = items.len() <= self.transaction_limit.unwrap_or(usize::MAX);
                let throttled = self
                    .client
                    .throttled
                    .load(std::sync::atomic::Ordering::Relaxed)
                    > throttled_before;
                let alongside = whole
                    && self.strategy.create != CreateBy::ConditionalPost
                    && !throttled
                    && !self.refused;
                if !alongside {
                    self.land_all(&mut flight).await?;
                    self.transactions(chunk, items).await?;
                    continue;
                }
                let tier = tier_of(&items);
                while !flight.takes(tier) {
                    self.land_next(&mut flight).await?;
                }
                let (built, bundle) = self.build(&mut items);
                let client = self.client.clone();
                flight.sent.push_back(Sent {
                    // A task of its own, so the request goes out and its answer is read while
                    // this one builds the next.
                    answer: tokio::spawn(async move {
                        client.send(Method::POST, "", Some(&bundle), None).await
                    }),
                    chunk,
                    items,
                    tier,
                    built,
                });
            }
            self.land_all(&mut flight).await?;
        }
        if !self.strategy.if_match {
            self.summary.messages.push("the server ignores If-Match: it cannot guarantee against lost updates; each write was re-checked just before and after".into());
        }
        self.verify().await
    }

    /// Items one at a time, each prepared just before it is sent (it may name one created just
    /// now).
    async fn one_by_one(&mut self, chunk: &[&PlanItem]) -> Result<(), SyncError> {
        for i in chunk {
            let item = self.prepare(i);
            self.one(&item).await?;
        }
        Ok(())
    }

    /// A chunk as one transaction; refused whole, and larger than the size `probe` showed the
    /// server takes, in transactions of that size (and, when each of those is taken, every
    /// later chunk too); what a refused transaction holds goes one by one.
    async fn transactions(
        &mut self,
        chunk: &[&PlanItem],
        mut items: Vec<PlanItem>,
    ) -> Result<(), SyncError> {
        if items.len() <= self.transaction_limit.unwrap_or(usize::MAX) {
            let taken = self.transaction(&mut items).await?;
            return self.after_whole(chunk, taken).await;
        }
        self.in_parts(chunk, Some(items)).await
    }

    /// After a chunk sent whole: nothing, if it was taken; what it held one by one if it was
    /// small; else in parts (a refused transaction may have rewritten its items, so they are
    /// prepared again).
    async fn after_whole(&mut self, chunk: &[&PlanItem], taken: bool) -> Result<(), SyncError> {
        if taken {
            return Ok(());
        }
        self.refused = true;
        if chunk.len() <= items_within(PROBED_TRANSACTION) {
            return self.one_by_one(chunk).await;
        }
        self.in_parts(chunk, None).await
    }

    /// A chunk in transactions of the probed size, `prepared` or prepared here.
    async fn in_parts(
        &mut self,
        chunk: &[&PlanItem],
        prepared: Option<Vec<PlanItem>>,
    ) -> Result<(), SyncError> {
        let part = items_within(PROBED_TRANSACTION);
        let mut prepared = prepared.map(|p| p.into_iter());
        let mut all_taken = true;
        for planned in chunk.chunks(part) {
            let mut items: Vec<PlanItem> = match prepared.as_mut() {
                Some(rest) => rest.by_ref().take(planned.len()).collect(),
                None => planned.iter().map(|i| self.prepare(i)).collect(),
            };
            if !self.transaction(&mut items).await? {
                all_taken = false;
                self.one_by_one(planned).await?;
            }
        }
        // Every part taken: the whole was refused for its size, not for what it held.
        if all_taken && self.transaction_limit.is_none() {
            self.transaction_limit = Some(part);
            let message = format!(
                "the server refused a transaction of {} changes and took them {part} at a time (with their Provenances, {PROBED_TRANSACTION} entries): the rest of this run is sent so (--chunk-size {part} says so from the start)",
                chunk.len()
            );
            tracing::warn!(%message);
            self.summary.messages.push(message);
        }
        Ok(())
    }

    /// The oldest transaction in flight: its answer taken in (or, refused, what it held sent
    /// the slower ways).
    async fn land_next(&mut self, flight: &mut Flight<'_>) -> Result<(), SyncError> {
        let Some(mut sent) = flight.sent.pop_front() else {
            return Ok(());
        };
        let answer = (&mut sent.answer)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let taken = self.settle(&mut sent.items, sent.built, answer).await?;
        self.after_whole(sent.chunk, taken).await
    }

    async fn land_all(&mut self, flight: &mut Flight<'_>) -> Result<(), SyncError> {
        while !flight.sent.is_empty() {
            self.land_next(flight).await?;
        }
        Ok(())
    }

    async fn transaction(&mut self, chunk: &mut [PlanItem]) -> Result<bool, SyncError> {
        let (built, bundle) = self.build(chunk);
        let answer = self
            .client
            .send(Method::POST, "", Some(&bundle), None)
            .await;
        drop(bundle);
        self.settle(chunk, built, answer).await
    }

    /// A chunk's transaction Bundle, with a Provenance per `PROVENANCE_TARGETS` changes naming
    /// the versions the writes are foreseen to make; and what its answer is read against.
    fn build(&self, chunk: &mut [PlanItem]) -> (Built, Value) {
        let posts: Vec<bool> = chunk.iter().map(|i| self.posts(i)).collect();
        // What the server names in this very transaction is referenced by its fullUrl, which
        // the server resolves (a Patient's generalPractitioner → a PractitionerRole created
        // beside it).
        let in_chunk: HashMap<String, String> = chunk
            .iter()
            .zip(&posts)
            .filter(|(_, p)| **p)
            .map(|(i, _)| {
                (
                    format!("{}/{}", i.resource_type, i.id),
                    format!("urn:uuid:{}", i.id),
                )
            })
            .collect();
        if !in_chunk.is_empty() {
            for i in chunk.iter_mut() {
                rewrite_refs(&mut i.body, &in_chunk);
            }
        }
        let inex: Vec<Option<String>> = chunk
            .iter()
            .zip(&posts)
            .map(|(i, p)| if *p { self.if_none_exist(i) } else { None })
            .collect();
        let targets: Vec<String> = chunk
            .iter()
            .zip(&posts)
            .map(|(i, p)| {
                if *p {
                    format!("urn:uuid:{}", i.id)
                } else {
                    versioned(&i.resource_type, &i.id, foreseen_version(i).as_deref())
                }
            })
            .collect();
        let refs: Vec<&PlanItem> = chunk.iter().collect();
        let provs: Vec<Value> = refs
            .chunks(PROVENANCE_TARGETS)
            .zip(targets.chunks(PROVENANCE_TARGETS))
            .map(|(items, ts)| provenance(self.m, items, ts.to_vec(), &self.register, &self.sha))
            .collect();
        let writes: Vec<transaction::Write> = chunk
            .iter()
            .zip(inex)
            .map(|(i, q)| transaction::Write {
                resource_type: &i.resource_type,
                id: &i.id,
                body: &i.body,
                expected_version: i.expected_version.as_deref(),
                if_none_exist: q,
            })
            .collect();
        let post_prov = self.strategy.create == CreateBy::ConditionalPost;
        let bundle = transaction::transaction(&writes, provs.clone(), post_prov);
        (
            Built {
                posts,
                targets,
                provs,
            },
            bundle,
        )
    }

    /// A transaction's answer taken in: ids and versions recorded, each Provenance fixed where
    /// the versions were not as foreseen. False when the server refused it (4xx).
    async fn settle(
        &mut self,
        chunk: &mut [PlanItem],
        built: Built,
        answer: Result<crate::fhir::client::Response, ClientError>,
    ) -> Result<bool, SyncError> {
        let Built {
            posts,
            targets,
            provs,
        } = built;
        match answer {
            Ok(resp) => {
                let answers = resp.body["entry"].as_array().cloned().unwrap_or_default();
                let mut done = Vec::new();
                let mut actual = Vec::new();
                for (n, i) in chunk.iter_mut().enumerate() {
                    let answer = answers.get(n);
                    let v = answer.and_then(transaction::entry_version);
                    if posts[n] {
                        match answer.and_then(transaction::entry_id) {
                            Some(id) => {
                                self.assign(&i.resource_type, &i.id, &id);
                                i.id = id;
                            }
                            None => {
                                self.summary.errors += 1;
                                self.summary.messages.push(format!(
                                    "{}: created, but the server's answer names no id (no Location)",
                                    i.resource_type
                                ));
                            }
                        }
                    }
                    actual.push(versioned(&i.resource_type, &i.id, v.as_deref()));
                    done.push(self.landed(i, v)?);
                }
                self.state.record_applied(self.run, &done)?;
                let groups = actual
                    .chunks(PROVENANCE_TARGETS)
                    .zip(targets.chunks(PROVENANCE_TARGETS));
                for (g, (prov, (actual, foreseen))) in provs.into_iter().zip(groups).enumerate() {
                    if actual == foreseen {
                        continue;
                    }
                    // The versions were not as foreseen (or the server named the creates):
                    // the Provenance is made to name exactly what was written.
                    let prov_id = answers
                        .get(chunk.len() + g)
                        .and_then(transaction::entry_id)
                        .unwrap_or_else(|| prov["id"].as_str().unwrap_or("").to_owned());
                    let mut fixed = prov;
                    fixed["id"] = json!(prov_id);
                    fixed["target"] =
                        Value::Array(actual.iter().map(|t| json!({"reference": t})).collect());
                    self.client
                        .send(
                            Method::PUT,
                            &format!("Provenance/{prov_id}"),
                            Some(&fixed),
                            None,
                        )
                        .await?;
                }
                Ok(true)
            }
            Err(ClientError::Http {
                status, message, ..
            }) if (400..500).contains(&status) => {
                tracing::info!(status, %message, items = chunk.len(), "transaction refused; applying its items one by one");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A chunk as a batch: each entry on its own (If-Match each, If-None-Exist for creates the
    /// server names), then a batch of the Provenances of the changes that landed; an entry
    /// refused for a moved version is re-planned alone, as is every entry of a refused batch.
    async fn batch(
        &mut self,
        planned: &[&PlanItem],
        chunk: &mut [PlanItem],
    ) -> Result<(), SyncError> {
        let posts: Vec<bool> = chunk.iter().map(|i| self.posts(i)).collect();
        let entries: Vec<Value> = chunk
            .iter()
            .zip(&posts)
            .map(|(i, p)| {
                transaction::entry(&transaction::Write {
                    resource_type: &i.resource_type,
                    id: &i.id,
                    body: &i.body,
                    expected_version: i.expected_version.as_deref(),
                    if_none_exist: if *p { self.if_none_exist(i) } else { None },
                })
            })
            .collect();
        let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": entries});
        let answers = match self
            .client
            .send(Method::POST, "", Some(&bundle), None)
            .await
        {
            Ok(r) => r.body["entry"].as_array().cloned().unwrap_or_default(),
            Err(ClientError::Http { status, .. }) if (400..500).contains(&status) => {
                for i in planned {
                    let item = self.prepare(i);
                    self.one(&item).await?;
                }
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let mut landed = Vec::new();
        let mut again = Vec::new();
        for (n, i) in chunk.iter_mut().enumerate() {
            let answer = answers.get(n);
            let status = answer
                .and_then(|a| a["response"]["status"].as_str())
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse::<u16>().ok())
                .unwrap_or(0);
            if !(200..300).contains(&status) {
                again.push(n);
                continue;
            }
            let v = answer.and_then(transaction::entry_version);
            if posts[n] {
                if let Some(id) = answer.and_then(transaction::entry_id) {
                    self.assign(&i.resource_type, &i.id, &id);
                    i.id = id;
                }
            }
            landed.push((n, v));
        }
        // The Provenances before the state records the changes (a kill in between is
        // caught by the next run, which writes a missing one late).
        let post_prov = self.strategy.create == CreateBy::ConditionalPost;
        let provs: Vec<Value> = landed
            .iter()
            .map(|(n, v)| {
                let i = &chunk[*n];
                let target = versioned(&i.resource_type, &i.id, v.as_deref());
                let p = provenance(self.m, &[i], vec![target], &self.register, &self.sha);
                let id = p["id"].as_str().unwrap_or("").to_owned();
                let mut e = transaction::entry(&transaction::Write {
                    resource_type: "Provenance",
                    id: &id,
                    body: &p,
                    expected_version: None,
                    if_none_exist: None,
                });
                if post_prov {
                    if let Some(r) = e["resource"].as_object_mut() {
                        r.remove("id");
                    }
                    e["request"] = json!({"method": "POST", "url": "Provenance"});
                }
                e
            })
            .collect();
        if !provs.is_empty() {
            let b = json!({"resourceType": "Bundle", "type": "batch", "entry": provs});
            self.client.send(Method::POST, "", Some(&b), None).await?;
        }
        let mut done = Vec::new();
        for (n, v) in landed {
            let i = &chunk[n];
            done.push(self.landed(i, v)?);
        }
        self.state.record_applied(self.run, &done)?;
        for n in again {
            let item = self.prepare(planned[n]);
            self.one(&item).await?;
        }
        Ok(())
    }

    /// A create the server names: POST with If-None-Exist. A 200 means one with the same
    /// identifier exists (an earlier attempt whose answer was lost, or another writer's): it is
    /// taken when it reads as planned, else it is a conflict.
    async fn post_create(&mut self, item: &PlanItem) -> Result<(), SyncError> {
        let q = self.if_none_exist(item).unwrap_or_default();
        let mut body = item.body.clone();
        if let Some(o) = body.as_object_mut() {
            o.remove("id");
        }
        let resp = match self
            .client
            .send_with(
                Method::POST,
                &item.resource_type,
                Some(&body),
                &[("If-None-Exist", q)],
            )
            .await
        {
            Ok(r) => r,
            Err(ClientError::Http {
                status, message, ..
            }) if (400..500).contains(&status) => {
                let msg = format!(
                    "{}: create refused: HTTP {status}: {message}",
                    item.resource_type
                );
                self.state
                    .mark(self.run, item.seq, ItemOutcome::Error, &msg)?;
                self.summary.errors += 1;
                self.summary.messages.push(msg);
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let Some(id) = resp.created_id() else {
            self.summary.errors += 1;
            self.summary.messages.push(format!(
                "{}: created, but the server's answer names no id (no Location)",
                item.resource_type
            ));
            return Ok(());
        };
        self.assign(&item.resource_type, &item.id, &id);
        let mut done_item = item.clone();
        done_item.id = id.clone();
        if resp.status == 200 {
            // It was there already: take it only if it reads as planned.
            let cur = self.client.read(&item.resource_type, &id).await?;
            let same = cur.as_ref().is_some_and(|c| {
                owns_whole(item.action) || hash(&self.own.owned(c)) == item.owned_hash
            });
            if !same {
                return self.conflict(
                    &done_item,
                    "exists with the same identifier and differs from the register's",
                );
            }
            let l = self.ledger(&done_item, cur.as_ref().and_then(version_of));
            self.state.adopt(&item.key, &l.applied, self.run)?;
            self.state
                .mark(self.run, item.seq, ItemOutcome::AlreadyApplied, "")?;
            return Ok(());
        }
        let v = resp.version();
        self.written_one(&done_item, v).await
    }

    /// A Patient the product creates: its listing as created is the baseline a person's later
    /// change of `generalPractitioner` is told by.
    fn listing_baseline(&self, i: &PlanItem, v: Option<&str>) -> Option<(PlanKey, Applied)> {
        if i.action == Action::CreateReference && i.resource_type == "Patient" {
            let mut body = i.body.clone();
            rewrite_refs(&mut body, &self.assigned);
            return Some((
                listing_key(&i.id),
                Applied {
                    resource: format!("Patient/{}", i.id),
                    version: v.map(str::to_owned),
                    owned_hash: hash(&self.own.owned(&body)),
                },
            ));
        }
        None
    }

    /// Records a write that landed, and writes its Provenance (its own request).
    async fn written_one(&mut self, item: &PlanItem, v: Option<String>) -> Result<(), SyncError> {
        // The Provenance before the state records the write: a run killed in between finds
        // the write unrecorded, adopts it and sees its Provenance (or writes it late).
        let target = versioned(&item.resource_type, &item.id, v.as_deref());
        let prov = provenance(self.m, &[item], vec![target], &self.register, &self.sha);
        self.send_provenance(prov).await?;
        let done = self.landed(item, v)?;
        self.state.record_applied(self.run, &[done])?;
        Ok(())
    }

    /// A write that landed, whatever carried it (transaction, batch, single request): its
    /// listing baseline, its ledger entry (returned, for the state to record), its read-back
    /// check and its count.
    fn landed(&mut self, i: &PlanItem, v: Option<String>) -> Result<Done, SyncError> {
        // Recorded with the write, not committed on its own (a commit per Patient was most of
        // the time a sync spent between its requests).
        let also = self.listing_baseline(i, v.as_deref());
        let done = Done {
            also,
            ..self.ledger(i, v)
        };
        self.written
            .push((i.resource_type.clone(), i.id.clone(), verified_hash(i)));
        self.count(i.action);
        Ok(done)
    }

    /// One item, re-planned against the server's current version if it moved (once).
    async fn one(&mut self, planned: &PlanItem) -> Result<(), SyncError> {
        if self.posts(planned) {
            return self.post_create(planned).await;
        }
        let mut item = planned.clone();
        for attempt in 0..2 {
            let current = self.client.read(&item.resource_type, &item.id).await?;
            if let Some(cur) = &current {
                let have_h = hash(&if owns_whole(item.action) {
                    cur.clone()
                } else {
                    self.own.owned(cur)
                });
                if have_h == item.owned_hash || owns_whole(item.action) {
                    // Already as wanted (another sync, or an earlier attempt that did land).
                    let l = self.ledger(&item, version_of(cur));
                    self.state.adopt(&item.key, &l.applied, self.run)?;
                    self.state
                        .mark(self.run, item.seq, ItemOutcome::AlreadyApplied, "")?;
                    if !owns_whole(item.action) {
                        let resource = format!("{}/{}", item.resource_type, item.id);
                        self.late_provenance(
                            &item.key,
                            &resource,
                            version_of(cur).as_deref(),
                            &have_h,
                        )
                        .await?;
                    }
                    return Ok(());
                }
                let last = self.state.applied(&item.key)?;
                let before_h = item.before.as_ref().map(hash);
                let ours = last.as_ref().is_some_and(|l| l.owned_hash == have_h)
                    || before_h.as_deref() == Some(have_h.as_str())
                    || self.state.was_pending(&item.key, &have_h)?;
                if !ours {
                    return self.conflict(&item, "changed in the EHR while the sync ran");
                }
                let desired_body = item.body.clone();
                item.body = self.own.merge(cur, &desired_body);
                item.expected_version = version_of(cur);
            } else if !is_create(item.action) {
                return self.conflict(&item, "no longer exists in the EHR");
            }
            let if_match = item.expected_version.as_ref().map(|v| format!("W/\"{v}\""));
            match self
                .client
                .send(
                    Method::PUT,
                    &format!("{}/{}", item.resource_type, item.id),
                    Some(&item.body),
                    if_match.as_deref(),
                )
                .await
            {
                Ok(resp) => {
                    let v = resp.version();
                    if !self.strategy.if_match {
                        self.recheck(&item, v.as_deref())?;
                    }
                    return self.written_one(&item, v).await;
                }
                Err(ClientError::Http {
                    status: 409 | 412, ..
                }) if attempt == 0 => continue,
                Err(ClientError::Http {
                    status, message, ..
                }) if (400..500).contains(&status) => {
                    let msg = format!(
                        "{}/{}: HTTP {status}: {message}",
                        item.resource_type, item.id
                    );
                    let conflict = status == 409 || status == 412;
                    self.state.mark(
                        self.run,
                        item.seq,
                        if conflict {
                            ItemOutcome::Conflict
                        } else {
                            ItemOutcome::Error
                        },
                        &msg,
                    )?;
                    if conflict {
                        self.summary.conflicts += 1;
                    } else {
                        self.summary.errors += 1;
                    }
                    self.summary.messages.push(msg);
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// A change an interrupted run made (its write landed, the run died before its Provenance
    /// could be written, as can happen between two single requests): its Provenance is written
    /// now, unless one already names the resource.
    async fn late_provenance(
        &mut self,
        key: &PlanKey,
        resource: &str,
        version: Option<&str>,
        owned_hash: &str,
    ) -> Result<(), SyncError> {
        let found = self
            .client
            .search_post(
                "Provenance",
                &[("target", resource.to_owned()), ("_count", "1".into())],
            )
            .await?;
        if !found.is_empty() {
            return Ok(());
        }
        let id = uuid::Uuid::new_v5(
            &self.m.target.id_namespace,
            format!("late|{key}|{owned_hash}").as_bytes(),
        )
        .to_string();
        let (t, rid) = resource.split_once('/').unwrap_or((resource, ""));
        let prov = transaction::provenance(&transaction::ProvenanceFacts {
            id: &id,
            tag_system: &self.m.target.tag_system,
            tag_code: &self.m.target.tag_code,
            targets: vec![versioned(t, rid, version)],
            register: &self.register,
            register_sha256: &self.sha,
            rows: vec![],
        });
        self.send_provenance(prov).await
    }

    /// A Provenance as its own request: PUT to its id, or POSTed to a server that names what
    /// is created.
    async fn send_provenance(&self, mut prov: Value) -> Result<(), SyncError> {
        if self.strategy.create == CreateBy::ConditionalPost {
            if let Some(o) = prov.as_object_mut() {
                o.remove("id");
            }
            self.client
                .send(Method::POST, "Provenance", Some(&prov), None)
                .await?;
        } else {
            let id = prov["id"].as_str().unwrap_or("").to_owned();
            self.client
                .send(Method::PUT, &format!("Provenance/{id}"), Some(&prov), None)
                .await?;
        }
        Ok(())
    }

    /// On a server that ignores If-Match: the version a write made must be the one after the
    /// version read just before it; another means a write landed in between, and one of the two
    /// may be lost. Reported as a conflict for a person to compare in `_history`.
    fn recheck(&mut self, item: &PlanItem, made: Option<&str>) -> Result<(), SyncError> {
        let before = item
            .expected_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok());
        let after = made.and_then(|v| v.parse::<u64>().ok());
        if let (Some(b), Some(a)) = (before, after) {
            if a != b + 1 {
                let what = format!(
                    "was written at version {b} → {a}: another write landed in between and the server ignores If-Match; compare its _history"
                );
                let msg = format!("{}/{} {what}", item.resource_type, item.id);
                self.summary.conflicts += 1;
                self.summary.messages.push(format!("conflict: {msg}"));
            }
        }
        Ok(())
    }

    /// An item found changed (or gone) at apply time: recorded and reported, not written.
    fn conflict(&mut self, item: &PlanItem, what: &str) -> Result<(), SyncError> {
        let msg = format!("{}/{} {what}", item.resource_type, item.id);
        self.state
            .mark(self.run, item.seq, ItemOutcome::Conflict, &msg)?;
        self.summary.conflicts += 1;
        self.summary.messages.push(format!("conflict: {msg}"));
        Ok(())
    }

    /// Reads back everything written: a write that did not land as sent is an error.
    async fn verify(&mut self) -> Result<(), SyncError> {
        let mut by_type: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (t, id, h) in self.written.drain(..) {
            by_type.entry(t).or_default().push((id, h));
        }
        // A few reads in flight at once: one at a time, the read-back of a region's writes was
        // the sync's longest wait after the transactions themselves.
        let client = self.client;
        let reads = by_type.iter().flat_map(|(t, list)| {
            list.chunks(50).map(move |chunk| {
                let ids: Vec<&str> = chunk.iter().map(|(i, _)| i.as_str()).collect();
                let query = format!("{t}?_id={}&_count=100", ids.join(","));
                async move { (t, chunk, client.search_all(&query).await) }
            })
        });
        let mut answers = futures::stream::iter(reads).buffered(VERIFY_READS);
        while let Some((t, chunk, found)) = answers.next().await {
            let found = found?;
            let got: HashMap<&str, &Value> = found
                .iter()
                .filter_map(|r| Some((r["id"].as_str()?, r)))
                .collect();
            for (id, h) in chunk {
                let ok = got.get(id.as_str()).is_some_and(|r| {
                    let owned = if self.own.owns(t).is_some() {
                        self.own.owned(r)
                    } else {
                        (*r).clone()
                    };
                    let mut x = owned;
                    if self.own.owns(t).is_none() {
                        if let Some(o) = x.as_object_mut() {
                            o.remove("meta");
                        }
                    }
                    t != "CareTeam" && t != "Task" || h.is_empty() || hash(&x) == *h
                });
                if !ok {
                    self.summary.errors += 1;
                    self.summary.messages.push(format!(
                        "{t}/{id} was written but does not read back as sent (silent drop)"
                    ));
                }
            }
        }
        Ok(())
    }
}
