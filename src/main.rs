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
    // CSV → NDJSON 264 (was 342), at the same speed. With the huge pages below turned off a
    // fault costs 4 KiB, not 2 MiB, and a tenth of a second is as fast again and smaller
    // (against a second: a 1 M reconcile 13.2–13.6 s and 616–619 MiB against 14.0–16.7 s and
    // 634–640; a 3 M region's FHIR → CSV 138 MiB against 146–150, in the same 28 s). An
    // operator's own MIMALLOC_PURGE_DELAY (read by mimalloc itself) is left to stand.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets an option of the allocator this binary links, before any thread starts.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 100) };
    }
    // mimalloc asks the kernel for transparent huge pages (its arenas are reserved before
    // `main`, so its own option `allow_thp` comes too late here): each fault then zeroes 2 MiB,
    // of which a streamed pass's short-lived batches use a part, and all of it stays resident.
    // Without them, at the same speed: a 3 M region's FHIR → CSV 137–141 MiB (was 148–166),
    // a 1 M reconcile 625 MiB (was 657), `check --ehr` of 60 MB 118–126 (was 151–161). This
    // is what mimalloc does itself when MIMALLOC_ALLOW_THP=0; an operator's own
    // MIMALLOC_ALLOW_THP is left to stand.
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes no pointers; it marks this process only, and
        // failing (an old kernel) leaves it as it was.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
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
