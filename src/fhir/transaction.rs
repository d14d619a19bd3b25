//! Sink side of FHIR: the JSON of what sync writes (transaction Bundles, their entries, the
//! Provenance each carries), built from plain values, and the versions read from the answer.

use serde_json::{json, Value};

/// One write of a transaction: a PUT to `type/id`, with If-Match on the planned version.
pub(crate) struct Write<'a> {
    pub(crate) resource_type: &'a str,
    pub(crate) id: &'a str,
    pub(crate) body: &'a Value,
    pub(crate) expected_version: Option<&'a str>,
    /// A create the server gives its own id: POST with this `ifNoneExist` query (the
    /// business identifier), instead of PUT to `id`.
    pub(crate) if_none_exist: Option<String>,
}

/// What a Provenance says of one transaction: who wrote what, from which export.
pub(crate) struct ProvenanceFacts<'a> {
    pub(crate) id: &'a str,
    pub(crate) tag_system: &'a str,
    pub(crate) tag_code: &'a str,
    /// `Type/id` of every resource written.
    pub(crate) targets: Vec<String>,
    pub(crate) register: &'a str,
    pub(crate) register_sha256: &'a str,
    /// Register row ids behind the writes.
    pub(crate) rows: Vec<&'a str>,
}

pub(crate) fn provenance(p: &ProvenanceFacts) -> Value {
    json!({
        "resourceType": "Provenance",
        "id": p.id,
        "meta": {"tag": [{"system": p.tag_system, "code": p.tag_code}]},
        "target": p.targets.iter().map(|t| json!({"reference": t})).collect::<Vec<_>>(),
        "recorded": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "UPDATE"}]},
        "agent": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "assembler"}]},
            "who": {"display": concat!("fastkontakt ", env!("CARGO_PKG_VERSION"))}
        }],
        "entity": [{"role": "source", "what": {"display": format!(
            "befolkningsregistret export {} (sha256 {}); rows {}",
            p.register, p.register_sha256, p.rows.join(", ")
        )}}]
    })
}

/// A transaction entry: PUT to a fixed id, so a resend of a lost answer changes nothing.
pub(crate) fn entry(w: &Write) -> Value {
    if let Some(q) = &w.if_none_exist {
        let mut body = w.body.clone();
        if let Some(o) = body.as_object_mut() {
            o.remove("id");
        }
        return json!({
            "fullUrl": format!("urn:uuid:{}", w.id),
            "resource": body,
            "request": {"method": "POST", "url": w.resource_type, "ifNoneExist": q}
        });
    }
    let mut req = json!({"method": "PUT", "url": format!("{}/{}", w.resource_type, w.id)});
    if let Some(v) = w.expected_version {
        req["ifMatch"] = json!(format!("W/\"{v}\""));
    }
    json!({"fullUrl": format!("urn:uuid:{}", w.id), "resource": w.body, "request": req})
}

/// A transaction Bundle of the writes, with their Provenances as the last entries: each PUT to
/// its id, or (`post_provenance`, on a server that refuses client ids) POSTed.
pub(crate) fn transaction(
    writes: &[Write],
    provenances: Vec<Value>,
    post_provenance: bool,
) -> Value {
    let mut entries: Vec<Value> = writes.iter().map(entry).collect();
    for p in provenances {
        let id = p["id"].as_str().unwrap_or("").to_owned();
        entries.push(provenance_entry(&id, p, post_provenance));
    }
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// The version a transaction-response entry reports (its ETag, else its Location).
fn provenance_entry(id: &str, mut provenance: Value, post: bool) -> Value {
    if post {
        if let Some(o) = provenance.as_object_mut() {
            o.remove("id");
        }
        json!({"fullUrl": format!("urn:uuid:{id}"), "resource": provenance, "request": {"method": "POST", "url": "Provenance"}})
    } else {
        json!({"fullUrl": format!("urn:uuid:{id}"), "resource": provenance, "request": {"method": "PUT", "url": format!("Provenance/{id}")}})
    }
}

/// The id a transaction answer's entry names (its Location, `Type/id/_history/n`).
pub(crate) fn entry_id(entry: &Value) -> Option<String> {
    let l = entry["response"]["location"].as_str()?;
    let path = l.split("/_history/").next().unwrap_or(l);
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub(crate) fn entry_version(entry: &Value) -> Option<String> {
    let resp = &entry["response"];
    if let Some(e) = resp["etag"].as_str() {
        return Some(e.trim_start_matches("W/").trim_matches('"').to_owned());
    }
    resp["location"]
        .as_str()
        .and_then(|l| l.split("/_history/").nth(1))
        .map(|v| v.split('/').next().unwrap_or(v).to_owned())
}

/// Writes resources as they come: NDJSON lines, or the entries of one transaction Bundle that
/// PUTs each resource to its deterministic id (order does not matter in a transaction). A
/// region's Bundle never sits in memory.
pub(crate) struct ResourceStream<'w> {
    out: &'w mut (dyn std::io::Write + Send),
    ndjson: bool,
    written: usize,
}

impl<'w> ResourceStream<'w> {
    /// A stream into `out`: NDJSON, or one transaction Bundle.
    pub(crate) fn new(out: &'w mut (dyn std::io::Write + Send), ndjson: bool) -> Self {
        ResourceStream {
            out,
            ndjson,
            written: 0,
        }
    }

    /// Resources written so far.
    pub(crate) fn written(&self) -> usize {
        self.written
    }

    /// Opens the Bundle (nothing for NDJSON).
    pub(crate) fn start(&mut self) -> std::io::Result<()> {
        if !self.ndjson {
            self.out
                .write_all(br#"{"resourceType":"Bundle","type":"transaction","entry":["#)?;
        }
        Ok(())
    }

    /// Writes `n` resources encoded by [`encode`] (on any thread), in order.
    pub(crate) fn write_encoded(&mut self, buf: &[u8], n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        if !self.ndjson && self.written > 0 {
            self.out.write_all(b",")?;
        }
        self.out.write_all(buf)?;
        self.written += n;
        Ok(())
    }

    /// Closes the Bundle (nothing for NDJSON).
    pub(crate) fn finish(&mut self) -> std::io::Result<()> {
        if !self.ndjson {
            self.out.write_all(b"\n]}\n")?;
        }
        Ok(())
    }
}

/// Appends one resource to `buf` as [`ResourceStream`] writes it: an NDJSON line, or a
/// transaction entry that PUTs it at its id (after a comma when `buf` holds entries already).
pub(crate) fn encode(
    r: &super::Resource,
    ndjson: bool,
    buf: &mut Vec<u8>,
) -> Result<(), super::model::FhirError> {
    use std::io::Write as _;
    if ndjson {
        super::model::write_to(r, buf)?;
        buf.push(b'\n');
    } else {
        let (t, id) = super::outbound::type_and_id(r);
        if !buf.is_empty() {
            buf.push(b',');
        }
        // Writing to a Vec cannot fail.
        let _ = write!(buf, "\n{{\"fullUrl\":\"urn:uuid:{id}\",\"resource\":");
        super::model::write_to(r, buf)?;
        let _ = write!(
            buf,
            ",\"request\":{{\"method\":\"PUT\",\"url\":\"{t}/{id}\"}}}}"
        );
    }
    Ok(())
}

/// A referenced resource a review-only plan lists for creation: its type and id only (the
/// body is built when a live plan is made against the server).
pub(crate) fn reference_stub(resource_type: &str, id: &str) -> serde_json::Value {
    serde_json::json!({"resourceType": resource_type, "id": id})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_puts_each_write_with_if_match_and_ends_with_its_provenance() {
        let body = json!({"resourceType": "CareTeam", "id": "a"});
        let writes = [
            Write {
                resource_type: "CareTeam",
                id: "a",
                body: &body,
                expected_version: Some("3"),
                if_none_exist: None,
            },
            Write {
                resource_type: "CareTeam",
                id: "b",
                body: &body,
                expected_version: None,
                if_none_exist: Some("identifier=s%7Cb".into()),
            },
        ];
        let p = provenance(&ProvenanceFacts {
            id: "p1",
            tag_system: "s",
            tag_code: "c",
            targets: vec!["CareTeam/a".into(), "CareTeam/b".into()],
            register: "r.csv",
            register_sha256: "ab",
            rows: vec!["row-1"],
        });
        let t = transaction(&writes, vec![p.clone()], false);
        let e = t["entry"].as_array().unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0]["request"]["ifMatch"], "W/\"3\"");
        // A create the server names: POST with If-None-Exist, no id of ours in the body.
        assert_eq!(e[1]["request"]["method"], "POST");
        assert_eq!(e[1]["request"]["ifNoneExist"], "identifier=s%7Cb");
        assert!(e[1]["resource"].get("id").is_none());
        assert_eq!(e[2]["request"]["url"], "Provenance/p1");
        let posted = transaction(&writes, vec![p], true);
        assert_eq!(posted["entry"][2]["request"]["method"], "POST");
        assert_eq!(
            entry_id(&json!({"response": {"location": "http://x/fhir/CareTeam/abc/_history/2"}})),
            Some("abc".into())
        );
        assert_eq!(e[2]["resource"]["target"][1]["reference"], "CareTeam/b");
        assert_eq!(
            entry_version(&json!({"response": {"etag": "W/\"7\""}})),
            Some("7".into())
        );
        assert_eq!(
            entry_version(&json!({"response": {"location": "CareTeam/a/_history/4"}})),
            Some("4".into())
        );
    }
}
