//! Any text as an environment file: an environment or located errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = drover_spec::environment::load_environment("environments/dev.yaml", text);
    }
});
