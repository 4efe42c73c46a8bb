//! Any UTF-8 → every directive-value parser in `mod_icpquery::settings`;
//! none may panic, and accepted values must be in range. Host names never
//! reach a real resolver here: see `../checks.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::directive_values(data));
