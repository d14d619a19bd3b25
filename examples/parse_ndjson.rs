//! Benchmark helper (benches/bench.sh): parse every line of an NDJSON file strictly into the
//! FHIR R4 model (fhirbolt, typed by the peeked resourceType, as the EHR stream reads), on one
//! thread and on all cores. Prints one JSON line; compared with Python's fhir.resources.
//!
//!     cargo run --release --example parse_ndjson -- FILE.ndjson

use rayon::prelude::*;
use std::io::BufRead;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: parse_ndjson FILE.ndjson"))?;
    let lines: Vec<Vec<u8>> = std::io::BufReader::new(std::fs::File::open(&path)?)
        .split(b'\n')
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let t = Instant::now();
    let mut bad = 0usize;
    for l in &lines {
        if fastkontakt::fhir::model::parse_line(l).is_err() {
            bad += 1;
        }
    }
    let single = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let bad_par = lines
        .par_iter()
        .filter(|l| fastkontakt::fhir::model::parse_line(l).is_err())
        .count();
    let parallel = t.elapsed().as_secs_f64();
    assert_eq!(bad, bad_par);
    println!(
        "{{\"resources\": {}, \"bytes\": {bytes}, \"invalid\": {bad}, \"seconds_one_thread\": {single:.3}, \"seconds_all_cores\": {parallel:.3}, \"cores\": {}}}",
        lines.len(),
        rayon::current_num_threads()
    );
    Ok(())
}
