//! Arbitrary input sequences (events, responses, transport errors, stream chunks, clock moves)
//! against one bridge, with ownership, reply, in-flight and liveness checks after every step.
//! The harness is `consular_fuzz::bridge_ops`; `CONSULAR_FUZZ_TRACE=1` prints every step.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| consular_fuzz::bridge_ops::run(bytes));
