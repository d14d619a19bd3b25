//! Sink: a check's findings as a terminal summary, JSON, CSV (for the region's spreadsheet) or a
//! FHIR OperationOutcome (one issue per finding, `expression` pointing at the element).

use crate::checks::run::{masked, CheckReport};
use crate::checks::{catalogue, Severity};
use std::collections::BTreeMap;
use std::io::Write;

/// Counts per rule and severity, the rules not evaluated, and the worst patients first. Patient
/// numbers are masked here (a terminal ends up in logs); the files carry them in full.
pub fn write_text(r: &CheckReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "fastkontakt check — profile {}, as of {}",
        r.profile, r.as_of
    )?;
    writeln!(
        out,
        "{} patients, {} register rows ({} rejected), {} EHR contacts",
        r.patients, r.register_rows, r.rejected_rows, r.ehr_contacts
    )?;
    write_input(&r.ehr, out)?;
    let mut per_rule: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for f in &r.findings {
        per_rule.entry(f.rule).or_default()[f.severity as usize] += 1;
    }
    let total = |s: Severity| r.findings.iter().filter(|f| f.severity == s).count();
    writeln!(
        out,
        "\n{} findings: {} errors, {} warnings, {} info",
        r.findings.len(),
        total(Severity::Error),
        total(Severity::Warning),
        total(Severity::Info)
    )?;
    if !per_rule.is_empty() {
        writeln!(out, "\n  rule     errors  warnings  info  title")?;
        for (rule, c) in &per_rule {
            let title = catalogue::find(rule).map(|x| x.title).unwrap_or("");
            writeln!(
                out,
                "  {rule}  {:>6}  {:>8}  {:>4}  {title}",
                c[2], c[1], c[0]
            )?;
        }
    }
    if !r.not_evaluated.is_empty() {
        writeln!(out, "\nnot evaluated:")?;
        for n in &r.not_evaluated {
            writeln!(out, "  {}  {}", n.rule, n.reason)?;
        }
    }
    let mut per_patient: BTreeMap<&str, (usize, usize, Vec<&str>)> = BTreeMap::new();
    for f in r.findings.iter().filter(|f| !f.patient.is_empty()) {
        let e = per_patient.entry(&f.patient).or_default();
        match f.severity {
            Severity::Error => e.0 += 1,
            Severity::Warning => e.1 += 1,
            Severity::Info => {}
        }
        if !e.2.contains(&f.rule) {
            e.2.push(f.rule);
        }
    }
    let mut worst: Vec<_> = per_patient.into_iter().collect();
    worst.sort_by(|a, b| (b.1 .0, b.1 .1).cmp(&(a.1 .0, a.1 .1)).then(a.0.cmp(b.0)));
    if !worst.is_empty() {
        writeln!(out, "\nworst patients first:")?;
        for (p, (e, w, rules)) in worst.iter().take(10) {
            writeln!(
                out,
                "  {:<14} {e} errors, {w} warnings: {}",
                masked(p),
                rules.join(" ")
            )?;
        }
        if worst.len() > 10 {
            writeln!(
                out,
                "  … and {} more (see --format json or csv)",
                worst.len() - 10
            )?;
        }
    }
    if !r.ehr_problems.is_empty() {
        writeln!(out, "\nEHR data not read ({}):", r.ehr_problems.len())?;
        for p in r.ehr_problems.iter().take(10) {
            writeln!(out, "  {p}")?;
        }
    }
    Ok(())
}

/// What the EHR input held and what became of it: counts per type, the reasons resources were
/// not used (with examples), the types not read at all, the shapes met.
pub fn write_input(
    a: &crate::sources::ehr::account::InputAccount,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if a.ehr_input.is_empty() && a.ehr_ignored.is_empty() {
        return Ok(());
    }
    let (read, used) = a.totals();
    writeln!(
        out,
        "\nEHR input: {read} resources of the types the product reads, {used} used, {} not used",
        read - used
    )?;
    writeln!(
        out,
        "  {:<18} {:>9} {:>9} {:>9}",
        "type", "read", "used", "not used"
    )?;
    for (t, c) in &a.ehr_input {
        writeln!(
            out,
            "  {t:<18} {:>9} {:>9} {:>9}",
            c.read, c.used, c.not_used
        )?;
    }
    if !a.ehr_ignored.is_empty() {
        let mut types: Vec<(&String, &u64)> = a.ehr_ignored.iter().collect();
        types.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
        let list: Vec<String> = types
            .iter()
            .take(8)
            .map(|(t, n)| format!("{n} {t}"))
            .collect();
        let more = match types.len().saturating_sub(8) {
            0 => String::new(),
            n => format!(", and {n} more types (see --format json)"),
        };
        writeln!(
            out,
            "  ignored, types the product does not read: {}{more}",
            list.join(", ")
        )?;
    }
    if !a.not_used_by_reason.is_empty() {
        writeln!(out, "\nnot used, by reason:")?;
        let mut reasons: Vec<_> = a.not_used_by_reason.iter().collect();
        reasons.sort_by(|x, y| y.1.count.cmp(&x.1.count).then(x.0.cmp(y.0)));
        for (reason, c) in reasons.iter().take(15) {
            writeln!(out, "  {:>7}  {reason}", c.count)?;
            if let Some(e) = c.examples.first() {
                writeln!(out, "           e.g. {e}")?;
            }
        }
        if reasons.len() > 15 {
            writeln!(
                out,
                "  … and {} more reasons (see --format json)",
                reasons.len() - 15
            )?;
        }
    }
    if !a.shapes.is_empty() {
        writeln!(out, "\nshapes met:")?;
        for (s, n) in &a.shapes {
            writeln!(out, "  {n:>7}  {s}")?;
        }
    }
    Ok(())
}

/// The report as JSON (`check --format json`, findings.json).
pub fn write_json(r: &CheckReport, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, r)?;
    writeln!(out)
}

/// The findings as CSV: semicolons and a BOM, for a Swedish spreadsheet.
pub fn write_csv(r: &CheckReport, out: &mut dyn Write) -> Result<(), csv::Error> {
    // Semicolon and a BOM: what a Swedish spreadsheet opens without asking.
    out.write_all(b"\xEF\xBB\xBF")?;
    let mut w = csv::WriterBuilder::new().delimiter(b';').from_writer(out);
    w.write_record([
        "regel",
        "allvarlighet",
        "patient",
        "meddelande",
        "registret",
        "journalen",
        "enhet",
        "grund",
        "källor",
    ])?;
    for f in &r.findings {
        w.write_record([
            f.rule,
            &f.severity.to_string(),
            &f.patient,
            &f.message,
            f.register.as_deref().unwrap_or(""),
            f.ehr().unwrap_or(""),
            f.unit().map(|u| u.as_str()).unwrap_or(""),
            &f.basis,
            &f.sources.join(" | "),
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// One OperationOutcome for the run: an issue per finding (error → error, warning → warning,
/// info → information), the rule in `details`, the element in `expression`.
pub fn operation_outcome(r: &CheckReport) -> serde_json::Value {
    let issues: Vec<crate::fhir::outcome::Issue> = r
        .findings
        .iter()
        .map(|f| crate::fhir::outcome::Issue {
            severity: match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "information",
            },
            // The data itself (not FHIR R4, not the shape) or the care it records.
            code: match f.rule {
                "FK-IN01" => "structure",
                "FK-IN02" => "invariant",
                _ => "business-rule",
            },
            rule: f.rule,
            text: if f.patient.is_empty() {
                format!("{} ({})", f.message, f.basis)
            } else {
                format!("{} ({}) — patient {}", f.message, f.basis, f.patient)
            },
            diagnostics: f.sources.join(" | "),
            expression: f.expression(),
        })
        .collect();
    crate::fhir::outcome::operation_outcome(&issues)
}
