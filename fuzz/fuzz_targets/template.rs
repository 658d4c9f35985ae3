//! Any text as a task's template: checking and rendering it give a value or an error, never a
//! panic, a hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        drover_spec::template::fuzz_one(text);
    }
});
