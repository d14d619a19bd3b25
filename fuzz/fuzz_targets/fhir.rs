//! The FHIR NDJSON line and Bundle reader on any bytes: a parse error, never a panic; the
//! typed parse and the enum parse agree on what is valid.
#![no_main]

use fastkontakt::fhir::model;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let typed = model::parse_line(data);
    let whole = model::parse(data);
    assert_eq!(
        typed.is_ok(),
        whole.is_ok(),
        "typed and enum parse disagree: {:?} / {:?}",
        typed.as_ref().err(),
        whole.as_ref().err()
    );
    if let Ok(r) = whole {
        // What was read can be written again.
        let _ = model::to_vec(&r);
    }
    let _ = model::peek_type(data);
    let _ = model::empty_array(data);
});
