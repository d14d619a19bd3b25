//! The offer's life and the need over time: a request is met in time (FK-R22), and an FVK long
//! unchanged is a reminder to evaluate the need again with the patient (FK-R23).

use super::{Engine, PatientData, View};
use crate::checks::catalogue::RuleId;
use crate::checks::Finding;
use crate::domain::ContactStatus;
use crate::mapping::messages::msg_args;
use chrono::Months;

pub(super) fn check(e: &mut Engine, v: &View, _d: &PatientData, out: &mut Vec<Finding>) {
    requests(e, v, out);
    review(e, v, out);
    told(e, v, out);
}

fn told(e: &mut Engine, v: &View, out: &mut Vec<Finding>) {
    let View { p, ctx, a, .. } = v;
    // FK-R24
    if !e.needs(RuleId::R24, a.inform_tasks, "inform-the-patient Tasks") {
        return;
    }
    for t in &ctx.open_inform_tasks {
        let since = t.since.map(|d| d.to_string()).unwrap_or_else(|| "–".into());
        let unit = t
            .unit
            .as_ref()
            .map(|u| v.unit_label(u))
            .unwrap_or_else(|| "–".into());
        let message = e.say("fk-r24", msg_args![since = since, unit = unit]);
        let x = super::Extra {
            ehr: Some(t.source.clone()),
            unit: t.unit.clone(),
            sources: vec![t.source.clone()],
            expression: Some("Task".into()),
            ..Default::default()
        };
        e.emit(out, RuleId::R24, None, p, message, x);
    }
}

fn requests(e: &mut Engine, v: &View, out: &mut Vec<Finding>) {
    let View { p, view, .. } = v;
    // FK-R22
    let Some(days) = e.profile.fvk.request_appointed_within_days else {
        return;
    };
    for (req, s) in view.iter() {
        if req.status() != ContactStatus::Requested {
            continue;
        }
        let asked = req.period.start();
        // Met: a contact of the kind asked for, appointed on or after the request, or one that
        // is active today.
        let met = view.iter().any(|(c, _)| {
            !c.status().is_offer()
                && c.kind.same_relation(req.kind)
                && (c.period.start() >= asked || c.is_active_on(e.as_of))
        });
        let waited = (e.as_of - asked).num_days();
        if !met && waited > i64::from(days) {
            let message = e.say(
                "fk-r22",
                msg_args![
                    kind = req.kind.to_string(),
                    date = asked.to_string(),
                    waited = waited,
                    days = days
                ],
            );
            e.emit(out, RuleId::R22, None, p, message, v.side(&[(*req, *s)]));
        }
    }
}

fn review(e: &mut Engine, v: &View, out: &mut Vec<Finding>) {
    let View { p, fvks, .. } = v;
    // FK-R23
    let Some(months) = e.profile.fvk.review_after_months else {
        return;
    };
    let Some(due) = e.as_of.checked_sub_months(Months::new(months)) else {
        return;
    };
    for (c, s) in fvks.iter() {
        // Unchanged since the later of its start and the register's last change of the row.
        let changed = c
            .registration
            .as_ref()
            .and_then(|r| r.at)
            .map(|at| at.date_naive())
            .filter(|d| *d > c.period.start())
            .unwrap_or(c.period.start());
        if changed <= due {
            let message = e.say(
                "fk-r23",
                msg_args![date = changed.to_string(), months = months],
            );
            e.emit(out, RuleId::R23, None, p, message, v.side(&[(*c, *s)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{findings, findings_of, has, nurse_fvk, rows, AS_OF};
    use crate::checks::Severity;
    use crate::domain::{OpenInformTask, PatientContext};

    #[test]
    fn fk_r24_an_open_inform_task_is_listed_as_information() {
        let open = PatientContext {
            open_inform_tasks: thin_vec::thin_vec![OpenInformTask {
                source: "Task/t1".into(),
                since: Some("2026-05-16".parse().expect("date")),
                unit: None,
            }],
            ..Default::default()
        };
        for profile in ["gavleborg", "orebro"] {
            let f = findings_of(profile, &rows(&[&nurse_fvk("a")]), &open);
            let r24: Vec<_> = f.iter().filter(|f| f.rule == "FK-R24").collect();
            assert_eq!(r24.len(), 1, "{profile}: {f:?}");
            assert_eq!(r24[0].severity, Severity::Info);
            assert!(r24[0].message.contains("2026-05-16"));
            // None open: nothing.
            let none = PatientContext::default();
            assert!(!has(
                &findings(profile, &rows(&[&nurse_fvk("a")]), &none),
                "FK-R24"
            ));
        }
    }

    /// A request for an FVK (Begärd) made `days` before the test's day.
    fn requested(id: &str, days: i64) -> String {
        let as_of: chrono::NaiveDate = AS_OF.parse().expect("date");
        let on = as_of - chrono::Duration::days(days);
        format!(
            "{id};19310304-1004;FVK;;;Begärd;{on};;;;;;;SE2321000016-V0001;Enhet;Vårdcentral;;;"
        )
    }

    #[test]
    fn fk_r22_a_request_without_an_fvk_after_the_profiles_days_is_an_error() {
        let ctx = PatientContext::default();
        for profile in ["gavleborg", "orebro"] {
            // 31 days and no FVK: an error (both profiles allow 30).
            let late = rows(&[&requested("a", 31)]);
            let f = findings_of(profile, &late, &ctx);
            let r22: Vec<_> = f.iter().filter(|f| f.rule == "FK-R22").collect();
            assert_eq!(r22.len(), 1, "{profile}: {f:?}");
            assert_eq!(r22[0].severity, Severity::Error);
            // Near misses: 30 days is still in time; an FVK appointed meets the request.
            let in_time = rows(&[&requested("a", 30)]);
            assert!(
                !has(&findings(profile, &in_time, &ctx), "FK-R22"),
                "{profile}"
            );
            let met = rows(&[&requested("a", 400), &nurse_fvk("b")]);
            assert!(!has(&findings(profile, &met, &ctx), "FK-R22"), "{profile}");
        }
    }

    #[test]
    fn fk_r23_an_fvk_unchanged_for_the_profiles_months_is_a_reminder() {
        let ctx = PatientContext::default();
        for profile in ["gavleborg", "orebro"] {
            // nurse_fvk starts 2024-01-01, 29 months before the test's day: a reminder.
            let old = rows(&[&nurse_fvk("a")]);
            let f = findings_of(profile, &old, &ctx);
            let r23: Vec<_> = f.iter().filter(|f| f.rule == "FK-R23").collect();
            assert_eq!(r23.len(), 1, "{profile}: {f:?}");
            assert_eq!(r23[0].severity, Severity::Info);
            // Changed in the register since: no reminder.
            // The row's last two fields are Registrerad and Registrerad av.
            let row = nurse_fvk("a");
            let row = format!("{}2026-03-01 10:00:00;", &row[..row.len() - 1]);
            let recent = rows(&[&row]);
            assert!(recent[0].registration.is_some(), "{row}");
            assert!(
                !has(&findings(profile, &recent, &ctx), "FK-R23"),
                "{profile}"
            );
        }
    }
}
