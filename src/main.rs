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
fn tune_allocator(command: &cli::args::Command) {
    // mimalloc hands freed pages back to the kernel after 10 ms, and the next batch of a
    // stream faults them in again, zeroed: half of a `check --ehr` was that system time
    // (1.33 s → 0.72 s on 60 MB). A command keeps what it freed until it exits (its peak is
    // unchanged); the service gives idle memory back after a second.
    let delay = match command {
        cli::args::Command::Serve { .. } => 1000,
        _ => -1,
    };
    // SAFETY: sets an option of the allocator this binary links, before any thread starts.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, delay) };
}

#[cfg(feature = "system-alloc")]
fn tune_allocator(_: &cli::args::Command) {}

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
    tune_allocator(&args.command);
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
