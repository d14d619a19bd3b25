//! `mapping test`: the shipped golden cases pass for the product's own mapping; a vendor's FHIR
//! with other ids, references and order passes too; a vendor's wrong status fails, shown as
//! -want/+got at the resource.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("samples/golden"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("register.csv").exists())
        .collect();
    v.sort();
    v
}

/// The expected FHIR as another system would write it: its own ids (and references to them),
/// lines in reverse order.
fn as_a_vendor_writes(expected: &Path, out: &Path) {
    let text = std::fs::read_to_string(expected).unwrap();
    let mut values: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let renames: Vec<(String, String)> = values
        .iter()
        .enumerate()
        .map(|(n, v)| {
            let t = v["resourceType"].as_str().unwrap();
            (
                format!("{t}/{}", v["id"].as_str().unwrap()),
                format!("{t}/vendor-{n}"),
            )
        })
        .collect();
    let mut lines = Vec::new();
    for (n, v) in values.iter_mut().enumerate() {
        v["id"] = Value::String(format!("vendor-{n}"));
        let mut s = v.to_string();
        for (old, new) in &renames {
            s = s.replace(&format!("\"{old}\""), &format!("\"{new}\""));
        }
        lines.push(s);
    }
    lines.reverse();
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(out.join("from-vendor.ndjson"), lines.join("\n")).unwrap();
}

fn mapping_test(got: Option<&Path>) -> (i32, String) {
    let mut cmd = common::fastkontakt();
    cmd.args(["mapping", "test"])
        .arg(root().join("samples/golden"));
    if let Some(g) = got {
        cmd.arg("--got").arg(g);
    }
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

#[test]
fn the_shipped_cases_cover_every_contact_kind_and_status_and_pass() {
    let all: String = cases()
        .iter()
        .map(|c| std::fs::read_to_string(c.join("register.csv")).unwrap())
        .collect();
    for needle in [
        ";FLK;",
        ";FVK;",
        ";BR;",
        ";Aktiv;",
        ";Avslutad;",
        ";Avböjd;",
    ] {
        assert!(all.contains(needle), "no case has {needle}");
    }
    let (code, out) = mapping_test(None);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "{} cases: {} passed",
            cases().len(),
            cases().len()
        )),
        "{out}"
    );
}

#[test]
fn a_vendors_fhir_with_its_own_ids_passes_and_a_wrong_status_fails_at_the_resource() {
    let got = tempfile::tempdir().unwrap();
    for c in cases() {
        let name = c.file_name().unwrap();
        as_a_vendor_writes(&c.join("expected.ndjson"), &got.path().join(name));
    }
    let (code, out) = mapping_test(Some(got.path()));
    assert_eq!(code, 0, "{out}");

    // The vendor ends a relation the register has as active.
    let case = got.path().join("01-ok-all/from-vendor.ndjson");
    let text = std::fs::read_to_string(&case).unwrap();
    let first_active = text
        .find("\"status\":\"active\"")
        .expect("an active CareTeam");
    let mut changed = text.clone();
    changed.replace_range(
        first_active..first_active + "\"status\":\"active\"".len(),
        "\"status\":\"inactive\"",
    );
    std::fs::write(&case, changed).unwrap();
    let (code, out) = mapping_test(Some(got.path()));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL 01-ok-all"), "{out}");
    assert!(out.contains("-  \"status\": \"active\""), "{out}");
    assert!(out.contains("+  \"status\": \"inactive\""), "{out}");
    // The register still has it active: the status rule of register against EHR says so.
    assert!(out.contains("+finding FK-R09"), "{out}");
    assert!(out.contains("1 failed"), "{out}");
}
