//! The model artifact loader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nudge_service::fuzzing::exercise_model;

fuzz_target!(|data: &[u8]| {
    let _ = exercise_model(data);
});
