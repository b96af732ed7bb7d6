//! Minimal host for the runtime's internal modes (`__netloom-shim`,
//! `__netloom-nsexec`), used by the crate's privileged tests and for manual
//! debugging. `netloomd` hosts the same modes itself.

fn main() {
    match netloom_runtime::maybe_run_internal() {
        Some(code) => std::process::exit(code),
        None => {
            eprintln!(
                "usage: netloom-runtime-helper __netloom-shim <spec.json> | __netloom-nsexec <json>"
            );
            std::process::exit(2);
        }
    }
}
