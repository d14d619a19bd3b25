//! The plan reader (`sync apply PLAN`) on any bytes: an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(plan) = serde_json::from_slice::<fastkontakt::sync::SyncPlan>(data) {
        let _ = serde_json::to_vec(&plan);
        for i in &plan.items {
            let _ = fastkontakt::sync::engine::row_key(&i.resource_type, &i.id);
        }
    }
});
