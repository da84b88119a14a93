//! Any bytes: the credential decoder never panics, and whatever it accepts re-encodes to
//! exactly the input (one encoding per value). The base64url form is fuzzed as text too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zkcredits_protocol::wire::{Credential, WireFormat};

fuzz_target!(|data: &[u8]| {
    if let Ok(credential) = Credential::decode(data) {
        assert_eq!(credential.encode(), data);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(credential) = Credential::from_base64url(text) {
            assert_eq!(credential.to_base64url(), text);
        }
    }
});
