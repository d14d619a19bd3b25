//! The StructureDefinitions published in mappings/fhir/ are what SUSHI compiles from the FSH in
//! mappings/fhir/fsh/ today: edit the FSH, run scripts/fhir-profiles.sh, and this stays green.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sushi() -> PathBuf {
    let dir = std::env::var_os("FASTKONTAKT_SUSHI_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/fastkontakt/sushi")
        });
    let bin = dir.join("node_modules/.bin/sushi");
    assert!(
        bin.exists(),
        "SUSHI is not installed at {}: run scripts/install-test-deps.sh",
        bin.display()
    );
    bin
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            if e.file_name() != "fsh-generated" {
                copy_dir(&e.path(), &target);
            }
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn structure_definitions_are_compiled_from_the_current_fsh() {
    let work = tempfile::tempdir().unwrap();
    let project = work.path().join("fsh");
    copy_dir(&root().join("mappings/fhir/fsh"), &project);
    let core = Command::new(root().join("scripts/fhir-core-package.sh"))
        .status()
        .unwrap();
    assert!(core.success(), "assembling hl7.fhir.r4.core for SUSHI");
    let out = Command::new(sushi())
        .arg("build")
        .arg(&project)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && log.contains("0 Errors"), "{log}");

    let generated = project.join("fsh-generated/resources");
    let mut names: Vec<String> = std::fs::read_dir(&generated)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("StructureDefinition-"))
        .collect();
    names.sort();
    let mut published: Vec<String> = std::fs::read_dir(root().join("mappings/fhir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("StructureDefinition-"))
        .collect();
    published.sort();
    assert_eq!(published, names, "run scripts/fhir-profiles.sh");
    for n in &names {
        assert_eq!(
            json(&root().join("mappings/fhir").join(n)),
            json(&generated.join(n)),
            "{n} is not what the FSH compiles to: run scripts/fhir-profiles.sh"
        );
    }
    // The profiles the reader recognises in meta.profile are among them.
    for id in [
        "fast-kontakt-careteam",
        "behandlande-roll-careteam",
        "avbojt-erbjudande-task",
        "erbjudande-task",
    ] {
        assert!(
            names.contains(&format!("StructureDefinition-{id}.json")),
            "{id}"
        );
    }
}
