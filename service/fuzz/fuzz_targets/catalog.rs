//! The catalog parser and validator, and a decision per placement of any
//! catalog that validates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nudge_service::fuzzing::exercise_catalog;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = exercise_catalog(text);
    }
});
