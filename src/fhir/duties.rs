//! Domain → FHIR for the duties toward the patient: the written information as a Composition
//! (its section's narrative is the printable page) and the inform-the-patient Task.

use crate::domain::{PatientId, RowId};
use crate::duties::{FvkChange, WrittenInformation};
use crate::mapping::terminology::ids;
use crate::mapping::Mappings;
use chrono::NaiveDate;
use serde_json::{json, Value};
use std::collections::HashMap;

fn tag(m: &Mappings) -> Value {
    json!({"tag": [{"system": m.target.tag_system, "code": m.target.tag_code}]})
}

fn coding(m: &Mappings, code: &str) -> Value {
    let c = m.terminology.coding(ids::PATIENTUPPGIFT, code);
    json!({"coding": [{"system": c.system, "code": c.code, "display": c.display}]})
}

fn uuid(m: &Mappings, key: &str) -> String {
    uuid::Uuid::new_v5(&m.target.id_namespace, key.as_bytes()).to_string()
}

/// The written information as a Composition. `relations` are the JSON of the patient's
/// relations by row (as they are or will be on the server): the subject, the author unit and
/// the CareTeams the document names come from them. None when no relation of the patient is
/// given (nothing to point at).
pub(crate) fn composition(
    m: &Mappings,
    info: &WrittenInformation,
    relations: &HashMap<RowId, Value>,
) -> Option<Value> {
    let any = info.lines.iter().find_map(|l| relations.get(&l.row))?;
    let digest = info.digest();
    let author = info
        .author_unit()
        .and_then(|u| {
            info.lines
                .iter()
                .filter(|l| &l.unit == u)
                .find_map(|l| relations.get(&l.row))
        })
        .unwrap_or(any);
    let entries: Vec<Value> = info
        .lines
        .iter()
        .filter_map(|l| relations.get(&l.row))
        .filter_map(|r| {
            let t = r["resourceType"].as_str()?;
            let id = r["id"].as_str()?;
            Some(json!({"reference": format!("{t}/{id}")}))
        })
        .collect();
    Some(json!({
        "resourceType": "Composition",
        "id": uuid(m, &format!("Composition|{}|{digest}", info.patient.expose())),
        "meta": tag(m),
        "identifier": {"system": m.target.duty_system, "value": format!("skriftlig-information|{digest}")},
        "status": "final",
        "type": coding(m, "skriftlig-information-fasta-kontakter"),
        "subject": any["subject"],
        "date": info.as_of.to_string(),
        "author": [author["managingOrganization"][0]],
        "title": "Dina fasta kontakter i vården",
        "section": [{
            "title": "Dina fasta kontakter",
            "text": {"status": "generated", "div": info.xhtml()},
            "entry": entries,
        }],
    }))
}

/// The task, owned by the unit, to tell the patient that an FVK ended or changed. `careteam`
/// is the relation's JSON as the sync leaves it (subject, managing organization, id).
pub(crate) fn inform_task(
    m: &Mappings,
    careteam: &Value,
    careteam_id: &str,
    row: &str,
    change: FvkChange,
    on: NaiveDate,
) -> Value {
    let key = format!("informera|{row}|{}|{on}", change.code());
    json!({
        "resourceType": "Task",
        "id": uuid(m, &format!("Task|{key}")),
        "meta": tag(m),
        "identifier": [{"system": m.target.duty_system, "value": key}],
        "status": "requested",
        "intent": "order",
        "priority": "routine",
        "code": coding(m, "informera-om-fast-vardkontakt"),
        "description": change.task_text(),
        "focus": {"reference": format!("CareTeam/{careteam_id}")},
        "for": careteam["subject"],
        "authoredOn": on.to_string(),
        "owner": careteam["managingOrganization"][0],
    })
}

/// The patient a relation's JSON names, by its identifier.
pub(crate) fn patient_of(relation: &Value) -> Option<PatientId> {
    let v = relation["subject"]["identifier"]["value"]
        .as_str()
        .or(relation["for"]["identifier"]["value"].as_str())?;
    PatientId::parse(v).ok()
}
