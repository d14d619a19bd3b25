//! Element ownership (`mappings/ownership.toml`): which elements of a resource the register owns.
//! `owned` extracts them for comparison; `merge` writes them onto the server's current JSON.

use crate::mapping::{read_toml, MappingError};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Owned {
    pub(crate) register: Vec<String>,
    #[serde(default)]
    pub(crate) register_extensions: Vec<String>,
    /// Identifier systems the register owns; a resource's other identifiers are the EHR's (a
    /// contact typed by hand keeps its own when the product adopts it).
    #[serde(default)]
    pub(crate) register_identifiers: Vec<String>,
}

/// The elements the register owns in each relation; a person owns the rest.
#[derive(Debug, Clone)]
pub struct Ownership {
    by_type: BTreeMap<String, Owned>,
}

impl Ownership {
    pub(crate) fn load(path: &Path) -> Result<Self, MappingError> {
        Ok(Ownership {
            by_type: read_toml(path)?,
        })
    }

    pub(crate) fn owns(&self, resource_type: &str) -> Option<&Owned> {
        self.by_type.get(resource_type)
    }

    /// The register-owned part of a resource, as a JSON object (stable for hashing).
    pub(crate) fn owned(&self, r: &Value) -> Value {
        let t = r["resourceType"].as_str().unwrap_or("");
        let Some(o) = self.owns(t) else {
            return Value::Null;
        };
        let mut m = Map::new();
        for k in &o.register {
            if let Some(v) = r.get(k) {
                m.insert(k.clone(), v.clone());
            }
        }
        let ext = owned_entries(r, "extension", "url", &o.register_extensions, true);
        if !ext.is_empty() {
            m.insert("extension".into(), Value::Array(ext));
        }
        let ids = owned_entries(r, "identifier", "system", &o.register_identifiers, true);
        if !ids.is_empty() {
            m.insert("identifier".into(), Value::Array(ids));
        }
        Value::Object(m)
    }

    /// The server's resource with the register-owned elements taken from `desired`.
    pub(crate) fn merge(&self, server: &Value, desired: &Value) -> Value {
        let t = desired["resourceType"].as_str().unwrap_or("");
        let Some(o) = self.owns(t) else {
            return desired.clone();
        };
        let mut out = server.clone();
        let Some(obj) = out.as_object_mut() else {
            return desired.clone();
        };
        for k in &o.register {
            match desired.get(k) {
                Some(v) => {
                    obj.insert(k.clone(), v.clone());
                }
                None => {
                    obj.remove(k);
                }
            }
        }
        for (element, field, owned) in [
            ("extension", "url", &o.register_extensions),
            ("identifier", "system", &o.register_identifiers),
        ] {
            let mut list = owned_entries(server, element, field, owned, false);
            list.extend(owned_entries(desired, element, field, owned, true));
            if list.is_empty() {
                obj.remove(element);
            } else {
                obj.insert(element.into(), Value::Array(list));
            }
        }
        // A generated narrative says what the elements said: once the register's values
        // replace them it would show a clinician the old contact.
        if server["text"]["status"] == "generated" && self.owned(server) != self.owned(&out) {
            if let Some(obj) = out.as_object_mut() {
                obj.remove("text");
            }
        }
        let Some(obj) = out.as_object_mut() else {
            return desired.clone();
        };
        // The product's tag goes on; the server's other meta stays.
        let tags = desired["meta"]["tag"].clone();
        if let Some(meta) = obj
            .entry("meta")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
        {
            meta.remove("versionId");
            meta.remove("lastUpdated");
            let mut all: Vec<Value> = meta
                .get("tag")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for t in tags.as_array().into_iter().flatten() {
                if !all.contains(t) {
                    all.push(t.clone());
                }
            }
            meta.insert("tag".into(), Value::Array(all));
        }
        out
    }
}

/// The entries of a list element (`extension`, `identifier`) whose `field` (url, system) is one
/// the register owns (`owned_ones`), or the others.
fn owned_entries(
    r: &Value,
    element: &str,
    field: &str,
    owned: &[String],
    owned_ones: bool,
) -> Vec<Value> {
    r[element]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            let is_owned = e[field]
                .as_str()
                .is_some_and(|u| owned.iter().any(|x| x == u));
            is_owned == owned_ones
        })
        .cloned()
        .collect()
}

/// Order-independent hash of a JSON value (object keys sorted), for comparing owned parts.
pub(crate) fn hash(v: &Value) -> String {
    use sha2::Digest;
    fn canon(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for k in keys {
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                    out.push(':');
                    canon(&m[k], out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for x in a {
                    canon(x, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    canon(v, &mut s);
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}
