//! The fuzz targets' checks as bounded property tests, so CI runs them on every
//! change: arbitrary and mutated bytes of every request type, the catalog
//! parser and the model loader never panic, and what they refuse is refused
//! with a message. (`service/fuzz/` runs the same entry points under libFuzzer.)

use nudge_service::fuzzing::{
    RequestKind, Verdict, exercise_catalog, exercise_model, exercise_request, seed_requests,
};
use proptest::prelude::*;

/// A byte edit: overwrite, insert or delete at a position.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Set(at, byte)),
            (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert(at, byte)),
            any::<usize>().prop_map(Edit::Delete),
        ],
        1..8,
    )
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len();
        match *edit {
            Edit::Set(at, byte) if len > 0 => bytes[at % len] = byte,
            Edit::Insert(at, byte) => bytes.insert(at % (len + 1), byte),
            Edit::Delete(at) if len > 0 => {
                bytes.remove(at % len);
            }
            _ => {}
        }
    }
    bytes
}

fn refused_with_a_message(verdict: &Verdict) -> bool {
    !matches!(verdict, Verdict::Refused(message) if message.trim().is_empty())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_of_any_request_type_never_panic(selector in any::<u8>(), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let verdict = exercise_request(RequestKind::from_selector(selector), &bytes);
        prop_assert!(refused_with_a_message(&verdict), "{verdict:?}");
    }

    #[test]
    fn mutated_valid_requests_never_panic(seed in any::<prop::sample::Index>(), edits in edits()) {
        let seeds = seed_requests();
        let (kind, bytes) = seeds[seed.index(seeds.len())].clone();
        let verdict = exercise_request(kind, &apply(bytes, &edits));
        prop_assert!(refused_with_a_message(&verdict), "{verdict:?}");
    }

    #[test]
    fn mutated_catalogs_never_panic(edits in edits()) {
        let text = apply(nudge_models::demo::CATALOG_TOML.as_bytes().to_vec(), &edits);
        let verdict = exercise_catalog(&String::from_utf8_lossy(&text));
        prop_assert!(refused_with_a_message(&verdict), "{verdict:?}");
    }

    #[test]
    fn mutated_models_never_panic(edits in edits()) {
        let bytes = apply(nudge_models::demo::MODEL_JSON.as_bytes().to_vec(), &edits);
        let verdict = exercise_model(&bytes);
        prop_assert!(refused_with_a_message(&verdict), "{verdict:?}");
    }
}
