//! FHIR out: one OperationOutcome from plain issues (a check's findings, `validate`'s errors),
//! each with its rule as a coding and `expression` at the element when known.

use serde_json::{json, Value};

/// The CodeSystem of the product's rule ids in `issue.details`.
pub const RULE_SYSTEM: &str = "https://fhir.fastkontakt.example/CodeSystem/regel";

/// One issue, as plain values.
pub struct Issue<'a> {
    /// `error`, `warning` or `information`.
    pub severity: &'a str,
    /// The IssueType code (`business-rule`, `structure`, `invariant` …).
    pub code: &'a str,
    /// The rule id (`FK-R01`).
    pub rule: &'a str,
    /// What is wrong, for a person.
    pub text: String,
    /// Where (register lines, resources).
    pub diagnostics: String,
    /// FHIRPath to the element, when known.
    pub expression: Option<&'a str>,
}

/// The OperationOutcome of `issues`; with none, one informational issue says so (an
/// OperationOutcome needs at least one).
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let mut out: Vec<Value> = issues
        .iter()
        .map(|i| {
            let mut issue = json!({
                "severity": i.severity,
                "code": i.code,
                "details": {
                    "coding": [{"system": RULE_SYSTEM, "code": i.rule}],
                    "text": i.text,
                },
                "diagnostics": i.diagnostics,
            });
            if let Some(e) = i.expression {
                issue["expression"] = json!([e]);
            }
            issue
        })
        .collect();
    if out.is_empty() {
        out.push(json!({"severity": "information", "code": "informational", "details": {"text": "no findings"}}));
    }
    json!({"resourceType": "OperationOutcome", "issue": out})
}
