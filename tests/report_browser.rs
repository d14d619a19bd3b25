//! The reconcile report opened in a real browser: headless Chromium (Debian's package, installed
//! by scripts/install-test-deps.sh) loads report.html from disk; the table holds the findings,
//! filtering and sorting work, a screenshot is taken, and the page logs nothing to the console.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chromium() -> String {
    if let Ok(c) = std::env::var("CHROMIUM") {
        return c;
    }
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new("which")
            .arg(c)
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c.to_owned();
        }
    }
    panic!("no Chromium on PATH: run ./scripts/install-test-deps.sh (or set CHROMIUM)");
}

/// What the browser made of the page: the DOM after the scripts ran, and its console lines.
struct Loaded {
    dom: String,
    console: Vec<String>,
}

fn open(page: &Path, fragment: &str, screenshot: Option<&Path>, profile: &Path) -> Loaded {
    let url = format!("file://{}{fragment}", page.display());
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1400,1800",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    match screenshot {
        Some(s) => cmd.arg(format!("--screenshot={}", s.display())),
        None => cmd.arg("--dump-dom"),
    };
    let out = cmd.arg(&url).output().expect("running chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    Loaded {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        console,
    }
}

/// The findings table's body rows, each as its cells' text.
fn rows(dom: &str) -> Vec<Vec<String>> {
    let start = dom
        .find("<table id=\"findings\">")
        .expect("the findings table");
    let table = &dom[start..];
    let body = &table[table.find("<tbody>").expect("tbody") + 7..table.find("</tbody>").unwrap()];
    body.split("<tr>")
        .skip(1)
        .map(|tr| {
            tr.split("<td")
                .skip(1)
                .map(|td| {
                    let text = &td[td.find('>').unwrap() + 1..td.find("</td>").unwrap()];
                    text.replace("&gt;", ">")
                        .replace("&lt;", "<")
                        .replace("&amp;", "&")
                })
                .collect()
        })
        .collect()
}

fn reconcile(report: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_fastkontakt"))
        .current_dir(root())
        .args([
            "reconcile",
            "--register",
            "samples/handwritten/register.csv",
            "--ehr",
            "samples/handwritten/ehr",
            "--profile",
            "gavleborg",
            "--as-of",
            "2026-06-01",
            "--fail-on",
            "never",
            "--report",
        ])
        .arg(report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(report.join("findings.json")).unwrap()).unwrap()
}

#[test]
fn the_report_opens_in_chromium_with_its_rows_filters_sorting_and_no_console_output() {
    let work = tempfile::tempdir().unwrap();
    let report = work.path().join("report");
    let findings = reconcile(&report);
    let findings = findings["findings"].as_array().unwrap();
    assert!(findings.len() > 10);
    let page = report.join("report.html");
    let profile = work.path().join("chromium-profile");

    // Every finding is a row (fewer than a page), most severe first, patients masked.
    let all = open(&page, "", None, &profile);
    assert_eq!(all.console, Vec::<String>::new(), "console output");
    let got = rows(&all.dom);
    assert_eq!(got.len(), findings.len());
    for (row, f) in got.iter().zip(findings) {
        assert_eq!(row[0], f["severity"].as_str().unwrap());
        assert_eq!(row[1], f["rule"].as_str().unwrap());
        assert!(
            row[2].contains('*'),
            "patient masked on the page: {}",
            row[2]
        );
        assert_eq!(row[4], f["message"].as_str().unwrap());
    }
    assert!(all
        .dom
        .contains(&format!("<b id=\"shown\">{}</b>", findings.len())));
    assert!(
        all.dom.contains("<svg id=\"unit-chart\""),
        "the chart per unit"
    );

    // Filtering by rule, and by free text, leaves exactly the matching rows.
    let r01 = findings.iter().filter(|f| f["rule"] == "FK-R01").count();
    assert!(r01 >= 2);
    let filtered = rows(&open(&page, "#f-rule=FK-R01", None, &profile).dom);
    assert_eq!(filtered.len(), r01);
    assert!(filtered.iter().all(|r| r[1] == "FK-R01"));
    let text = rows(&open(&page, "#q=erik%20berg", None, &profile).dom);
    let expected = findings
        .iter()
        .filter(|f| f.to_string().to_lowercase().contains("erik berg"))
        .count();
    assert!(expected >= 2);
    assert_eq!(text.len(), expected);
    let none = rows(&open(&page, "#q=no-such-text-anywhere", None, &profile).dom);
    assert!(none.is_empty());

    // Sorting by patient, descending.
    let sorted = rows(&open(&page, "#sort=-p", None, &profile).dom);
    let patients: Vec<&String> = sorted.iter().map(|r| &r[2]).collect();
    let mut want = patients.clone();
    want.sort_by(|a, b| b.cmp(a));
    assert_eq!(patients, want);

    // A screenshot, and no console output while rendering it.
    let shot = work.path().join("report.png");
    let s = open(&page, "", Some(&shot), &profile);
    assert_eq!(s.console, Vec::<String>::new());
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}

#[test]
fn the_console_check_would_see_a_script_error() {
    // The control for the test above: a page that throws is caught by the same check.
    let work = tempfile::tempdir().unwrap();
    let page = work.path().join("bad.html");
    std::fs::write(
        &page,
        "<html><body><table id=\"findings\"><tbody></tbody></table><script>throw new Error('x')</script></body></html>",
    )
    .unwrap();
    let loaded = open(&page, "", None, &work.path().join("p"));
    assert_eq!(loaded.console.len(), 1, "{:?}", loaded.console);
    assert!(loaded.console[0].contains("Uncaught Error"));
}
