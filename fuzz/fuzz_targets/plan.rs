//! The plan reader (`sync apply PLAN`) on any bytes: an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(plan) = serde_json::from_slice::<fastkontakt::sync::SyncPlan>(data) {
        let _ = serde_json::to_vec(&plan);
        // Every key read back writes the string it was read from.
        for i in &plan.items {
            let s = i.key.to_string();
            let again: fastkontakt::sync::engine::PlanKey = serde_json::from_value(s.clone().into()).unwrap();
            assert_eq!(again.to_string(), s);
        }
    }
});
