//! The register reader on any bytes: it must never panic, never hold more than the record cap
//! of one row, and account for every record as a contact or a rejected row.
#![no_main]

use fastkontakt::mapping::register::TextEncoding;
use fastkontakt::mapping::Mappings;
use fastkontakt::sources::register::{RegisterItem, RegisterReader};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn mappings() -> &'static Mappings {
    static M: OnceLock<Mappings> = OnceLock::new();
    M.get_or_init(|| Mappings::load_default().expect("the shipped mappings load"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let m = mappings();
    let mut register = m.register.clone();
    register.encoding = match pick % 3 {
        0 => TextEncoding::Utf8,
        1 => TextEncoding::Windows1252,
        _ => TextEncoding::Latin1,
    };
    // Small caps, so the fuzzer reaches them.
    register.format.max_record_bytes = 1024 + usize::from(pick) * 4;
    register.format.max_field_bytes = 64 + usize::from(pick);
    // A header the mapping accepts, then the fuzzed rows.
    let header = m
        .register
        .columns
        .all()
        .iter()
        .map(|(_, h, _)| h.to_string())
        .collect::<Vec<_>>()
        .join(";");
    let mut input = header.into_bytes();
    input.push(b'\n');
    input.extend_from_slice(body);
    let path = std::path::Path::new("fuzz.csv");
    let Ok(reader) = RegisterReader::new(&input[..], path, &register, &m.terminology) else {
        return;
    };
    for item in reader {
        match item {
            Ok(RegisterItem::Rejected(r)) => {
                assert!(r.raw.len() <= register.format.max_record_bytes + 2);
                assert!(!r.problems.is_empty());
                let _ = r.describe(path);
            }
            Ok(RegisterItem::Contact { .. }) => {}
            Err(_) => break,
        }
    }
});
