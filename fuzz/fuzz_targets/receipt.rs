//! Any bytes: the receipt decoder never panics, and whatever it accepts re-encodes to
//! exactly the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zkcredits_protocol::state::Receipt;
use zkcredits_protocol::wire::WireFormat;

fuzz_target!(|data: &[u8]| {
    if let Ok(receipt) = Receipt::decode(data) {
        assert_eq!(receipt.encode(), data);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(receipt) = Receipt::from_base64url(text) {
            assert_eq!(receipt.to_base64url(), text);
        }
    }
});
