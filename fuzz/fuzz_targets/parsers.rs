//! Every Marathon and Consul parser, and the encoders, on arbitrary bytes: no panic, promises
//! kept on success, and round trips. The harness is `consular_fuzz::parsers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| consular_fuzz::parsers::run(bytes));
