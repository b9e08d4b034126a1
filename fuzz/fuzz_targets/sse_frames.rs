//! Arbitrary bytes through the event-stream parser, whole and split at arbitrary points: the same
//! events either way, none over the size limit, and the W3C rules when the limit does not bite.
//! The harness is `consular_fuzz::sse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| consular_fuzz::sse::run(bytes));
