//! Any text as a DAG file: loading it must give a DAG or located errors, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = drover_spec::dag::load_dag("dags/fuzzed.yaml", text);
    }
});
