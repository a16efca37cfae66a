//! Writes the seed corpora under `corpus/<target>/` from
//! `nudge_service::fuzzing::seed_requests()`, the demo catalog and the demo
//! model. Run: `cargo +nightly run --bin write-seeds` in this folder.

use nudge_service::fuzzing::{RequestKind, seed_requests};
use std::fs;
use std::path::Path;

fn write(target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    fs::create_dir_all(&folder)?;
    fs::write(folder.join(name), bytes)
}

fn main() -> std::io::Result<()> {
    for (position, (kind, bytes)) in seed_requests().into_iter().enumerate() {
        let selector = RequestKind::ALL.iter().position(|candidate| *candidate == kind).unwrap_or(0);
        let mut input = vec![u8::try_from(selector).unwrap_or(0)];
        input.extend_from_slice(&bytes);
        write("requests", &format!("seed-{position:02}-{kind:?}"), &input)?;
    }
    write("catalog", "demo.toml", nudge_models_demo_catalog().as_bytes())?;
    write("model", "demo.json", nudge_models_demo_model().as_bytes())?;
    Ok(())
}

fn nudge_models_demo_catalog() -> &'static str {
    include_str!("../../models/demo/catalog.toml")
}

fn nudge_models_demo_model() -> &'static str {
    include_str!("../../models/demo/model.json")
}
