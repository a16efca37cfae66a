//! Every request type: the first byte picks the type, the rest is decoded as
//! that protobuf message, validated, and (for Decide) decided on the demo.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nudge_service::fuzzing::{RequestKind, exercise_request};

fuzz_target!(|data: &[u8]| {
    if let Some((selector, bytes)) = data.split_first() {
        let _ = exercise_request(RequestKind::from_selector(*selector), bytes);
    }
});
