//! Sink: reconcile's report folder: `report.html` (one self-contained file, no network),
//! `findings.csv`, `findings.json` (as `check --format json`) and `plan.json`.

use crate::checks::run::{masked, CheckReport};
use crate::checks::Severity;
use crate::sync::spill::{ActionCounts, SpilledItems};
use crate::sync::SyncPlan;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
}

/// What the report says about how the run went, beside the findings.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunFacts {
    pub(crate) register: String,
    pub(crate) ehr: String,
    pub(crate) fetched: Option<String>,
    pub(crate) partitions: u32,
    pub(crate) seconds: f64,
}

/// Plan counts: items by action, and what is not an item.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanCounts {
    #[serde(flatten)]
    pub actions: ActionCounts,
    pub unchanged: u64,
    pub conflicts: u64,
    pub(crate) errors: u64,
    /// Register rows a contact typed by hand in the EHR stands for, with no policy chosen:
    /// nothing planned for them.
    pub takeover_pending: u64,
    /// What the takeover decided, per decision.
    pub takeover: BTreeMap<crate::sync::takeover::Decision, u64>,
    /// The takeover's lines for a person.
    pub takeover_messages: Vec<String>,
    /// The policy the plan was made under.
    pub takeover_policy: Option<crate::sync::takeover::TakeoverPolicy>,
    /// The takeover's first entries, for the report.
    #[serde(skip)]
    pub(crate) takeover_entries: Vec<crate::sync::takeover::TakeoverEntry>,
}

impl PlanCounts {
    /// The plan's counts, with the items already moved to disk (`spilled`).
    pub(crate) fn of(p: &SyncPlan, spilled: Option<&SpilledItems>) -> Self {
        PlanCounts {
            actions: ActionCounts::of(&p.items).plus(spilled.map(|s| s.counts).unwrap_or_default()),
            unchanged: p.unchanged,
            conflicts: p.conflicts.len() as u64,
            errors: p.errors.len() as u64,
            takeover_pending: p.takeover_pending,
            takeover: p.takeover.counts.clone(),
            takeover_messages: p.takeover.messages(),
            takeover_policy: p.takeover.policy,
            takeover_entries: p
                .takeover
                .entries
                .iter()
                .take(TAKEOVER_ROWS)
                .cloned()
                .collect(),
        }
    }
}

/// Takeover entries shown in report.html (plan.json holds the first 10,000).
const TAKEOVER_ROWS: usize = 1_000;

/// The takeover's decision as the report says it.
fn decision_sv(d: crate::sync::takeover::Decision) -> &'static str {
    use crate::sync::takeover::Decision as D;
    match d {
        D::Pending => "väntar: ingen --takeover vald",
        D::Adopt => "övertas på plats (adopt)",
        D::Replace => "avslutas och ersätts (replace)",
        D::Report => "rapporteras (report)",
        D::Conflict => "konflikt: flera kandidater",
        D::Team => "hålls: ett helt team i en resurs",
        D::OtherCarrier => "hålls: annan resurstyp",
        D::Duplicate => "dubblett av produktens",
        D::DuplicateEnded => "dubblett, avslutas",
        D::Unmatched => "ingen registerrad",
        D::UnmatchedEnded => "ingen registerrad, avslutas",
        D::NotInRegister => "patienten saknas i registret",
        D::Held => "hålls: avvisade rader",
    }
}

/// The report's takeover section: what becomes of the EHR's contacts typed by hand.
fn takeover_section(p: &PlanCounts, out: &mut dyn Write) -> std::io::Result<()> {
    if p.takeover.is_empty() {
        return Ok(());
    }
    let policy = match p.takeover_policy {
        Some(x) => format!(
            "--takeover {}",
            serde_json::to_value(x)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ),
        None => "ingen vald: inget skrivs för dem".into(),
    };
    writeln!(
        out,
        r#"<h2 id="takeover">Övertagande av kontakter inskrivna för hand i journalen</h2>
<p class="muted">Fasta kontakter i journalen utan produktens märkning (meta.tag), matchade mot registrets rader som reglerna matchar dem. Policy: <b>{}</b>. Inget raderas.</p><div class="cards">"#,
        esc(&policy)
    )?;
    for (d, n) in &p.takeover {
        writeln!(
            out,
            r#"<div class="card">{}<b>{n}</b></div>"#,
            esc(decision_sv(*d))
        )?;
    }
    writeln!(out, "</div>")?;
    for m in &p.takeover_messages {
        writeln!(out, r#"<p class="muted">{}</p>"#, esc(m))?;
    }
    writeln!(
        out,
        r#"<details><summary>Varje kontakt och beslut ({n} rader)</summary><table id="takeover-table"><thead><tr><th>Beslut</th><th>Journalens resurs</th><th>Patient</th><th>Kontakt</th><th>Enhet</th><th>Registerrad</th></tr></thead><tbody>"#,
        n = p.takeover_entries.len()
    )?;
    for e in &p.takeover_entries {
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(decision_sv(e.decision)),
            esc(&e.resource),
            esc(&masked(&e.patient)),
            esc(&e.kind),
            esc(&e.unit),
            esc(e.register_row.as_deref().unwrap_or(""))
        )?;
    }
    let total: u64 = p.takeover.values().sum();
    writeln!(out, "</tbody></table></details>")?;
    if total as usize > p.takeover_entries.len() {
        writeln!(
            out,
            r#"<p class="muted">{} av {total} visas; plan.json listar de första 10 000.</p>"#,
            p.takeover_entries.len()
        )?;
    }
    Ok(())
}

/// Writes the plan as one JSON object, its items streamed from disk (those spilled first: they
/// were made first) so the whole plan is never in memory.
fn write_plan(
    plan: &SyncPlan,
    spilled: Option<SpilledItems>,
    w: &mut impl Write,
) -> std::io::Result<()> {
    let Some(spilled) = spilled else {
        return Ok(serde_json::to_writer(w, plan)?);
    };
    let mut head = serde_json::to_value(SyncPlan {
        items: Vec::new(),
        ..plan.clone()
    })?;
    if let Some(o) = head.as_object_mut() {
        o.remove("items");
    }
    w.write_all(b"{")?;
    if let Some(o) = head.as_object() {
        for (k, v) in o {
            serde_json::to_writer(&mut *w, k)?;
            w.write_all(b":")?;
            serde_json::to_writer(&mut *w, v)?;
            w.write_all(b",")?;
        }
    }
    w.write_all(b"\"items\":[")?;
    let mut first = true;
    let mut sep = |w: &mut dyn Write| -> std::io::Result<()> {
        if !std::mem::take(&mut first) {
            w.write_all(b",")?;
        }
        Ok(())
    };
    for line in spilled.lines()? {
        sep(w)?;
        w.write_all(line?.as_bytes())?;
    }
    for item in &plan.items {
        sep(w)?;
        serde_json::to_writer(&mut *w, item)?;
    }
    w.write_all(b"]}")
}

/// A finding as the page's table shows it (the patient masked: the page is for reading on a
/// screen; findings.csv and findings.json carry the full number for case work).
#[derive(Serialize)]
struct Row<'a> {
    s: Severity,
    r: &'a str,
    p: String,
    u: String,
    m: &'a str,
    reg: &'a str,
    ehr: &'a str,
    b: &'a str,
    src: String,
}

/// Writes the four files; returns the folder's paths.
pub(crate) fn write(
    dir: &Path,
    report: &CheckReport,
    plan: Option<&SyncPlan>,
    spilled: Option<SpilledItems>,
    facts: &RunFacts,
) -> Result<Vec<PathBuf>, ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io {
            path: path.clone(),
            source,
        }
    };
    // The folder holds personal identity numbers: created for its owner only, from the start
    // (an existing folder keeps the mode its owner gave it).
    super::private::create_dir(dir).map_err(io(dir))?;
    let create = |name: &str| -> Result<(PathBuf, std::io::BufWriter<std::fs::File>), ReportError> {
        let p = dir.join(name);
        let f = super::private::create_file(&p).map_err(io(&p))?;
        Ok((p, std::io::BufWriter::with_capacity(1 << 20, f)))
    };
    let counts = plan.map(|p| PlanCounts::of(p, spilled.as_ref()));

    // Two files on each core: each is one core's serialising, and a region's four took two
    // seconds one after the other at the end of a run, the other core idle.
    let json_and_plan = || -> Result<Vec<PathBuf>, ReportError> {
        let (p, mut w) = create("findings.json")?;
        super::findings::write_json(report, &mut w)
            .and_then(|_| w.flush())
            .map_err(io(&p))?;
        let mut written = vec![p];
        if let Some(plan) = plan {
            let (p, mut w) = create("plan.json")?;
            write_plan(plan, spilled, &mut w)
                .and_then(|_| w.flush())
                .map_err(io(&p))?;
            written.push(p);
        }
        Ok(written)
    };
    let csv_and_page = || -> Result<Vec<PathBuf>, ReportError> {
        let (p, mut w) = create("findings.csv")?;
        super::findings::write_csv(report, &mut w).map_err(|source| ReportError::Csv {
            path: p.clone(),
            source,
        })?;
        w.flush().map_err(io(&p))?;
        let (page, mut w) = create("report.html")?;
        html(report, counts.as_ref(), facts, &mut w)
            .and_then(|_| w.flush())
            .map_err(io(&page))?;
        Ok(vec![p, page])
    };
    let (first, second) = std::thread::scope(|sc| {
        let other = sc.spawn(csv_and_page);
        let first = json_and_plan();
        let second = other
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (first, second)
    });
    // In the order a reader meets them: findings.json, findings.csv, plan.json, report.html.
    let (mut first, mut second) = (first?.into_iter(), second?.into_iter());
    Ok(first
        .next()
        .into_iter()
        .chain(second.next())
        .chain(first)
        .chain(second)
        .collect())
}

/// Passes JSON through with `<`, `>` and `&` as JSON escapes, so no text in the data
/// (`</script>`, `<!--`) can end or change the `<script>` element it is written into, and the
/// JSON stays valid (outside its strings JSON has none of the three). Written through as it is
/// made: a region's findings as one string, and its escaped copies, were 300 MB at the peak.
struct ScriptSafe<'w>(&'w mut dyn Write);

impl Write for ScriptSafe<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut from = 0;
        for i in memchr::memchr3_iter(b'<', b'>', b'&', buf) {
            let escaped: &[u8] = match buf[i] {
                b'<' => b"\\u003c",
                b'>' => b"\\u003e",
                _ => b"\\u0026",
            };
            self.0.write_all(&buf[from..i])?;
            self.0.write_all(escaped)?;
            from = i + 1;
        }
        self.0.write_all(&buf[from..])?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The CSP source that allows exactly the report's one script and no other.
fn script_hash() -> String {
    use base64::Engine;
    use sha2::Digest;
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(SCRIPT.as_bytes()))
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The findings per rule, with each rule's basis.
fn rule_table(
    by_rule: &BTreeMap<&str, (Severity, u64, &str)>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        r#"<div class="two"><section><h2>Per regel</h2><table id="rules"><thead><tr><th>Regel</th><th>Allvarlighet</th><th>Antal</th><th>Grund</th></tr></thead><tbody>"#
    )?;
    for (rule, (sev, n, basis)) in by_rule {
        writeln!(
            out,
            r#"<tr><td>{rule}</td><td class="sev-{sev}">{sev}</td><td>{n}</td><td class="basis">{}</td></tr>"#,
            esc(basis)
        )?;
    }
    writeln!(out, "</tbody></table></section>")?;
    Ok(())
}

/// The units with most findings as a bar chart, stacked by severity (inline SVG).
/// What the EHR input held: per type read, used and not used; the reasons with examples; the
/// types not read at all; the shapes met. Never a silent "nothing wrong".
fn input_section(
    a: &crate::sources::ehr::account::InputAccount,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if a.ehr_input.is_empty() && a.ehr_ignored.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        r#"<div class="two"><section><h2>Journaldata: läst och använt</h2><table id="ehr-input"><thead><tr><th>Resurstyp</th><th>Lästa</th><th>Använda</th><th>Ej använda</th></tr></thead><tbody>"#
    )?;
    for (t, c) in &a.ehr_input {
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(t),
            c.read,
            c.used,
            c.not_used
        )?;
    }
    writeln!(out, "</tbody></table>")?;
    if !a.ehr_ignored.is_empty() {
        let list: Vec<String> = a
            .ehr_ignored
            .iter()
            .map(|(t, n)| format!("{n} {}", esc(t)))
            .collect();
        writeln!(
            out,
            r#"<p class="muted" id="ehr-ignored">Typer som produkten inte läser: {}</p>"#,
            list.join(", ")
        )?;
    }
    if !a.shapes.is_empty() {
        writeln!(out, r#"<h3>Former som känts igen</h3><ul id="ehr-shapes">"#)?;
        for (s, n) in &a.shapes {
            writeln!(out, "<li>{n} · {}</li>", esc(s))?;
        }
        writeln!(out, "</ul>")?;
    }
    writeln!(
        out,
        r#"</section><section><h2>Ej använt, per orsak</h2><table id="not-used"><thead><tr><th>Antal</th><th>Orsak</th><th>Exempel</th></tr></thead><tbody>"#
    )?;
    let mut reasons: Vec<_> = a.not_used_by_reason.iter().collect();
    reasons.sort_by(|x, y| y.1.count.cmp(&x.1.count).then(x.0.cmp(y.0)));
    for (reason, c) in reasons {
        writeln!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td class="src">{}</td></tr>"#,
            c.count,
            esc(reason),
            c.examples
                .iter()
                .map(|e| esc(e))
                .collect::<Vec<_>>()
                .join("<br>")
        )?;
    }
    writeln!(out, "</tbody></table></section></div>")
}

fn unit_chart(by_unit: &BTreeMap<String, [u64; 3]>, out: &mut dyn Write) -> std::io::Result<()> {
    let mut units: Vec<(&String, &[u64; 3])> = by_unit.iter().collect();
    units.sort_by(|a, b| {
        b.1.iter()
            .sum::<u64>()
            .cmp(&a.1.iter().sum::<u64>())
            .then(a.0.cmp(b.0))
    });
    let shown = units.len().min(25);
    let max = units
        .first()
        .map(|u| u.1.iter().sum::<u64>())
        .unwrap_or(1)
        .max(1);
    let (bar_h, label_w, width) = (18u64, 190u64, 620u64);
    let height = shown as u64 * (bar_h + 4) + 24;
    writeln!(
        out,
        r#"<section><h2>Avvikelser per enhet{}</h2><svg id="unit-chart" role="img" aria-label="Avvikelser per enhet" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-size="11">"#,
        if units.len() > shown {
            format!(" (de {shown} med flest av {})", units.len())
        } else {
            String::new()
        }
    )?;
    let colours = ["#3b5f8a", "#d29922", "#b3261e"];
    for (i, (unit, counts)) in units.iter().take(shown).enumerate() {
        let y = i as u64 * (bar_h + 4);
        writeln!(
            out,
            r#"<text x="0" y="{}" >{}</text>"#,
            y + bar_h - 5,
            esc(unit)
        )?;
        let mut x = label_w;
        for sev in [Severity::Error, Severity::Warning, Severity::Info] {
            let n = counts[sev as usize];
            if n == 0 {
                continue;
            }
            let w = ((width - label_w - 50) * n / max).max(1);
            writeln!(
                out,
                r#"<rect class="bar" x="{x}" y="{y}" width="{w}" height="{bar_h}" fill="{}"><title>{} {sev}: {n}</title></rect>"#,
                colours[sev as usize],
                esc(unit)
            )?;
            x += w;
        }
        writeln!(
            out,
            r#"<text x="{}" y="{}">{}</text>"#,
            x + 4,
            y + bar_h - 5,
            counts.iter().sum::<u64>()
        )?;
    }
    writeln!(out, "</svg></section></div>")?;
    Ok(())
}

/// The page: summary, per-rule and per-unit counts, a bar chart of findings per unit (inline
/// SVG), and the findings table (filtered, sorted and paged by a small inline script).
/// The summary: patients, rows, contacts, rejected rows, findings by severity.
fn summary_cards(
    report: &CheckReport,
    by_severity: &[u64; 3],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        r#"<h2>Sammanfattning</h2><div class="cards">
<div class="card">Patienter<b id="n-patients">{}</b></div>
<div class="card">Registerrader<b>{}</b></div>
<div class="card">Kontakter i journalen<b>{}</b></div>
<div class="card">Avvisade rader<b>{}</b></div>
<div class="card sev-error">Fel<b id="n-error">{}</b></div>
<div class="card sev-warning">Varningar<b id="n-warning">{}</b></div>
<div class="card sev-info">Info<b id="n-info">{}</b></div>
</div>"#,
        report.patients,
        report.register_rows,
        report.ehr_contacts,
        report.rejected_rows,
        by_severity[Severity::Error as usize],
        by_severity[Severity::Warning as usize],
        by_severity[Severity::Info as usize],
    )?;
    Ok(())
}

/// A finding's unit by name with its HSA-id beside it (the HSA-id alone when unnamed).
fn unit_label(f: &crate::checks::Finding) -> Option<String> {
    let u = f.unit()?;
    Some(match f.unit_name() {
        Some(n) => format!("{n} ({u})"),
        None => u.to_string(),
    })
}

pub(crate) fn html(
    report: &CheckReport,
    plan: Option<&PlanCounts>,
    facts: &RunFacts,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    // Each rule with its basis in the run's region, as its findings carry it.
    let mut by_rule: BTreeMap<&str, (Severity, u64, &str)> = BTreeMap::new();
    let mut by_unit: BTreeMap<String, [u64; 3]> = BTreeMap::new();
    let mut by_severity = [0u64; 3];
    for f in &report.findings {
        by_rule.entry(f.rule).or_insert((f.severity, 0, &f.basis)).1 += 1;
        let u = unit_label(f).unwrap_or_else(|| "(ingen enhet)".into());
        by_unit.entry(u).or_default()[f.severity as usize] += 1;
        by_severity[f.severity as usize] += 1;
    }

    writeln!(
        out,
        r#"<!doctype html>
<html lang="sv"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src {script_hash}; img-src data:">
<title>fastkontakt reconcile: {profile}, {as_of}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:0 2rem 3rem;color:#1d2329}}
h1{{font-size:1.5rem;margin:1.2rem 0 .2rem}} h2{{font-size:1.15rem;margin:1.6rem 0 .5rem}}
.muted{{color:#5b6670}} .cards{{display:flex;gap:.8rem;flex-wrap:wrap}}
.card{{border:1px solid #d0d7de;border-radius:6px;padding:.5rem .9rem;min-width:8rem}}
.card b{{display:block;font-size:1.4rem}}
table{{border-collapse:collapse;width:100%}} th,td{{border-bottom:1px solid #e3e8ec;padding:.3rem .5rem;text-align:left;vertical-align:top}}
td:nth-child(-n+3){{white-space:nowrap}} th{{background:#f4f6f8;position:sticky;top:0}} th.sort{{cursor:pointer;user-select:none}}
th.sort:after{{content:" \2195";color:#9aa4ad}} th.asc:after{{content:" \2191"}} th.desc:after{{content:" \2193"}}
.sev-error{{color:#b3261e;font-weight:600}} .sev-warning{{color:#8a5a00;font-weight:600}} .sev-info{{color:#3b5f8a}}
.filters{{display:flex;gap:.6rem;flex-wrap:wrap;margin:.5rem 0}} .filters input{{min-width:18rem}}
.two{{display:grid;grid-template-columns:minmax(20rem,1fr) minmax(20rem,1.3fr);gap:2rem}}
td.basis,td.src{{font-size:12px;color:#5b6670}} .pager{{margin:.6rem 0;display:flex;gap:.6rem;align-items:center}}
</style></head><body>
<h1>Avstämning register ↔ journal</h1>
<div class="muted">Profil <b>{profile}</b> · per {as_of} · register {register} · journal {ehr}{fetched} · {secs:.1} s{parts}</div>"#,
        script_hash = script_hash(),
        profile = esc(&report.profile),
        as_of = report.as_of,
        register = esc(&facts.register),
        ehr = esc(&facts.ehr),
        secs = facts.seconds,
        fetched = facts
            .fetched
            .as_ref()
            .map(|f| format!(" ({})", esc(f)))
            .unwrap_or_default(),
        parts = if facts.partitions > 1 {
            format!(" · {} partitioner", facts.partitions)
        } else {
            String::new()
        },
    )?;
    summary_cards(report, &by_severity, out)?;
    if let Some(p) = plan {
        writeln!(
            out,
            r#"<h2>Vad en synk skulle göra (plan.json)</h2><div class="cards">
<div class="card">Skapa<b id="plan-create">{}</b></div><div class="card">Ändra<b>{}</b></div>
<div class="card">Avsluta<b>{}</b></div><div class="card">Nya referenser<b>{}</b></div>
<div class="card">Oförändrade<b>{}</b></div><div class="card">Konflikter<b>{}</b></div></div>"#,
            p.actions.create,
            p.actions.update,
            p.actions.end,
            p.actions.create_reference,
            p.unchanged,
            p.conflicts
        )?;
        takeover_section(p, out)?;
    }
    if !report.not_evaluated.is_empty() {
        writeln!(out, "<h2>Ej bedömda regler</h2><ul>")?;
        for n in &report.not_evaluated {
            writeln!(
                out,
                "<li>{}</li>",
                esc(&serde_json::to_string(n).unwrap_or_default())
            )?;
        }
        writeln!(out, "</ul>")?;
    }

    rule_table(&by_rule, out)?;

    input_section(&report.ehr, out)?;

    unit_chart(&by_unit, out)?;

    let options = |values: Vec<String>| -> String {
        values
            .iter()
            .map(|v| format!(r#"<option value="{0}">{0}</option>"#, esc(v)))
            .collect::<String>()
    };
    writeln!(
        out,
        r#"<h2>Avvikelser</h2>
<div class="filters">
<input id="q" type="search" placeholder="Sök patient, meddelande, rad, enhet…" aria-label="Sök">
<select id="f-sev" aria-label="Allvarlighet"><option value="">alla allvarligheter</option><option>error</option><option>warning</option><option>info</option></select>
<select id="f-rule" aria-label="Regel"><option value="">alla regler</option>{}</select>
<select id="f-unit" aria-label="Enhet"><option value="">alla enheter</option>{}</select>
<span class="muted"><b id="shown">0</b> av {} visas</span>
</div>
<table id="findings"><thead><tr>
<th class="sort" data-k="s">Allvarlighet</th><th class="sort" data-k="r">Regel</th><th class="sort" data-k="p">Patient</th><th class="sort" data-k="u">Enhet</th>
<th class="sort" data-k="m">Avvikelse</th><th class="sort" data-k="reg">Registret säger</th><th class="sort" data-k="ehr">Journalen säger</th><th>Grund</th><th>Källa</th>
</tr></thead><tbody></tbody></table>
<div class="pager"><button id="prev">‹ Föregående</button><span id="page"></span><button id="next">Nästa ›</button></div>"#,
        options(by_rule.keys().map(|k| k.to_string()).collect()),
        options(by_unit.keys().cloned().collect()),
        report.findings.len()
    )?;
    write!(out, r#"<script type="application/json" id="data">["#)?;
    for (n, f) in report.findings.iter().enumerate() {
        let row = Row {
            s: f.severity,
            r: f.rule,
            p: masked(&f.patient),
            u: unit_label(f).unwrap_or_default(),
            m: &f.message,
            reg: f.register.as_deref().unwrap_or(""),
            ehr: f.ehr().unwrap_or(""),
            b: &f.basis,
            src: f.sources.join(" · "),
        };
        if n > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(ScriptSafe(&mut *out), &row)?;
    }
    writeln!(out, "]</script>")?;
    writeln!(out, "<script>{}</script></body></html>", SCRIPT)?;
    Ok(())
}

/// Filtering, sorting and paging; plain DOM, no library, no network.
const SCRIPT: &str = r#"
(function () {
  var rows = JSON.parse(document.getElementById('data').textContent);
  var rank = {error: 0, warning: 1, info: 2};
  var state = {key: null, dir: 1, page: 0, size: 200};
  var body = document.querySelector('#findings tbody');
  var $ = function (id) { return document.getElementById(id); };
  function matches(r, q, sev, rule, unit) {
    if (sev && r.s !== sev) return false;
    if (rule && r.r !== rule) return false;
    if (unit && r.u !== unit) return false;
    if (!q) return true;
    return (r.p + ' ' + r.u + ' ' + r.m + ' ' + r.reg + ' ' + r.ehr + ' ' + r.src + ' ' + r.r).toLowerCase().indexOf(q) >= 0;
  }
  function cell(tr, text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  function render() {
    var q = $('q').value.trim().toLowerCase();
    var sev = $('f-sev').value, rule = $('f-rule').value, unit = $('f-unit').value;
    var list = rows.filter(function (r) { return matches(r, q, sev, rule, unit); });
    if (state.key) {
      var k = state.key, d = state.dir;
      list.sort(function (a, b) {
        var x = k === 's' ? rank[a.s] : a[k], y = k === 's' ? rank[b.s] : b[k];
        return x < y ? -d : x > y ? d : 0;
      });
    }
    var pages = Math.max(1, Math.ceil(list.length / state.size));
    if (state.page >= pages) state.page = pages - 1;
    var start = state.page * state.size;
    body.textContent = '';
    var frag = document.createDocumentFragment();
    list.slice(start, start + state.size).forEach(function (r) {
      var tr = document.createElement('tr');
      cell(tr, r.s, 'sev-' + r.s); cell(tr, r.r); cell(tr, r.p); cell(tr, r.u);
      cell(tr, r.m); cell(tr, r.reg); cell(tr, r.ehr); cell(tr, r.b, 'basis'); cell(tr, r.src, 'src');
      frag.appendChild(tr);
    });
    body.appendChild(frag);
    $('shown').textContent = String(list.length);
    $('page').textContent = 'sida ' + (state.page + 1) + ' av ' + pages;
    $('prev').disabled = state.page === 0;
    $('next').disabled = state.page >= pages - 1;
  }
  ['q', 'f-sev', 'f-rule', 'f-unit'].forEach(function (id) {
    $(id).addEventListener('input', function () { state.page = 0; render(); });
  });
  $('prev').addEventListener('click', function () { state.page--; render(); });
  $('next').addEventListener('click', function () { state.page++; render(); });
  document.querySelectorAll('th.sort').forEach(function (th) {
    th.addEventListener('click', function () {
      var k = th.getAttribute('data-k');
      state.dir = state.key === k ? -state.dir : 1;
      state.key = k;
      document.querySelectorAll('th.sort').forEach(function (h) { h.classList.remove('asc', 'desc'); });
      th.classList.add(state.dir === 1 ? 'asc' : 'desc');
      render();
    });
  });
  // A link can carry filters and a sort: report.html#f-rule=FK-R03&sort=-p
  var hash = new URLSearchParams(location.hash.slice(1));
  ['q', 'f-sev', 'f-rule', 'f-unit'].forEach(function (id) { if (hash.get(id)) $(id).value = hash.get(id); });
  var sort = hash.get('sort');
  if (sort) {
    state.dir = sort.charAt(0) === '-' ? -1 : 1;
    state.key = sort.replace(/^-/, '');
  }
  render();
})();
"#;
