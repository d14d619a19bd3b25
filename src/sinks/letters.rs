//! Sink, the written information as files: per patient a printable Swedish page (HTML) and its
//! Composition (JSON), named by the patient's resource id so no file name holds a personnummer.

use serde_json::Value;
use std::io;
use std::path::{Path, PathBuf};

/// The page around a Composition's section narrative: print-friendly, no scripts, no
/// external resources (it is read on paper and on a screen without a network).
fn page(title: &str, div: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"sv\"><head><meta charset=\"utf-8\"><title>{}</title>\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
<style>body{{font-family:Georgia,serif;font-size:13pt;line-height:1.5;max-width:40em;margin:2em auto;padding:0 1em}}\
h1{{font-size:1.5em}}li{{margin:.6em 0}}@media print{{body{{margin:0}}}}</style></head>\
<body>{div}</body></html>\n",
        crate::duties::escape(title)
    )
}

/// Writes each Composition's page and JSON into `dir` (created private); the files written.
pub fn write(dir: &Path, compositions: &[Value]) -> io::Result<Vec<PathBuf>> {
    super::private::create_dir(dir)?;
    let mut out = Vec::new();
    for c in compositions {
        let name = c["subject"]["reference"]
            .as_str()
            .and_then(|r| r.strip_prefix("Patient/"))
            .or(c["id"].as_str())
            .filter(|n| n.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-'))
            .ok_or_else(|| io::Error::other("a Composition without a usable id"))?;
        let title = c["title"]
            .as_str()
            .unwrap_or("Dina fasta kontakter i vården");
        let div = c["section"][0]["text"]["div"].as_str().unwrap_or("");
        let html = dir.join(format!("{name}.html"));
        super::private::write_file(&html, page(title, div).as_bytes())?;
        let json = dir.join(format!("{name}.json"));
        let bytes = serde_json::to_vec_pretty(c).map_err(io::Error::other)?;
        super::private::write_file(&json, &bytes)?;
        out.push(html);
    }
    Ok(out)
}
