//! The simulated world driven by fuzz-chosen ops: no ownership violation ever, and convergence
//! once the world heals. The harness is `consular_fuzz::world_ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| consular_fuzz::world_ops::run(bytes));
