//! Any bytes → `Message::decode`; whatever is accepted must encode back to
//! the same bytes and decode to the same message. See `../checks.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::icp_decode(data));
