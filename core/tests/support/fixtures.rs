//! Marathon's own example payloads, kept in `core/tests/fixtures/marathon/` (provenance in its
//! README), read by the tests that check parsers and simulators against them.

// Each test crate uses part of these.
#![allow(dead_code)]

use std::path::PathBuf;

/// The folder of Marathon's fixtures.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/marathon")
}

/// The bytes of fixture `name`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// Fixture `name` as text.
pub fn fixture_text(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}
