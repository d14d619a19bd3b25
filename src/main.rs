//! The `fastkontakt` command line: parses the arguments and hands them to `cli`, which runs one
//! pipeline and turns its outcome into an exit code (0 done, 1 done with rejected rows,
//! findings or conflicts, 2 failed).

mod cli;

use clap::Parser;
use std::process::ExitCode;

// mimalloc: the streamed FHIR read allocates and frees millions of small objects; glibc's
// allocator spent a third of the time there. `--features system-alloc` keeps the system's,
// which heap profilers (heaptrack) see.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3; the Rust bindings name no constant).
#[cfg(not(feature = "system-alloc"))]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[cfg(not(feature = "system-alloc"))]
fn tune_allocator() {
    // mimalloc hands freed pages back to the kernel after 10 ms, and the next batch of a
    // stream faults them in again, zeroed: half of a `check --ehr` was that system time
    // (1.33 s → 0.72 s on 60 MB). Never handing them back cost the peak instead: what one
    // thread freed (a pass's parse buffers) stayed resident while others grew, ~70 MiB of a
    // million-patient reconcile's 720. After a second, both are gone: the reconcile's peak
    // 650 MiB in one pass (546 in two, was 606), a region's FHIR → CSV 247 MiB (was 316),
    // CSV → NDJSON 264 (was 342), at the same speed. An operator's own
    // MIMALLOC_PURGE_DELAY (read by mimalloc itself) is left to stand.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets an option of the allocator this binary links, before any thread starts.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
}

#[cfg(feature = "system-alloc")]
fn tune_allocator() {}

fn main() -> ExitCode {
    // A panic caught inside the FHIR parser is reported as that input's parse error; the
    // default hook would print it as if the program had crashed.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !fastkontakt::fhir::model::IN_PARSER.with(|c| c.get()) {
            default_hook(info);
        }
    }));
    let args = cli::args::Cli::parse();
    tune_allocator();
    cli::init_logging(args.verbose, args.log_json);
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // A server's or a file's text may quote an identity number: never in full here.
            let text = format!("{e:#}");
            eprintln!(
                "error: {}",
                fastkontakt::sources::register::mask_identity_numbers(&text)
            );
            ExitCode::from(2)
        }
    }
}
