//! The SSE receipt filter under random events and random chunkings: whatever way the
//! network cuts the stream, the application gets exactly the other events, byte for
//! byte, and the caller gets exactly the receipt.

use proptest::prelude::*;
use zkcredits_client::sse::SseFilter;

/// One event as the gateway might frame it.
#[derive(Clone, Debug)]
enum Event {
    Data(String),
    Named(String, String),
    Comment(String),
}

fn line_end(crlf: bool) -> &'static str {
    if crlf { "\r\n" } else { "\n" }
}

fn render(e: &Event, crlf: bool) -> String {
    let n = line_end(crlf);
    match e {
        Event::Data(d) => format!("data: {d}{n}{n}"),
        Event::Named(name, d) => format!("event: {name}{n}data: {d}{n}{n}"),
        Event::Comment(c) => format!(": {c}{n}data:{c}{n}{n}"),
    }
}

fn event() -> impl Strategy<Value = Event> {
    // Payloads without line breaks (SSE data lines cannot hold one), including text
    // that looks like the receipt event's name.
    let text = prop_oneof![
        "[ -~]{0,40}",
        Just("event: zkcredit-receipt".to_owned()),
        Just("zkcredit-receipt".to_owned()),
    ];
    prop_oneof![
        text.clone().prop_map(Event::Data),
        (
            prop_oneof![
                Just("message".to_owned()),
                Just("zkcredit-receipts".to_owned())
            ],
            text.clone()
        )
            .prop_map(|(n, d)| Event::Named(n, d)),
        text.prop_map(Event::Comment),
    ]
}

proptest! {
    #[test]
    fn any_chunking_relays_the_same_bytes_and_finds_the_receipt(
        before in prop::collection::vec(event(), 0..8),
        after in prop::collection::vec(event(), 0..3),
        receipt in "[A-Za-z0-9_-]{1,120}",
        crlf in any::<bool>(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut expected = String::new();
        for e in &before {
            expected.push_str(&render(e, crlf));
        }
        let n = line_end(crlf);
        let receipt_event = format!("event: zkcredit-receipt{n}data: {receipt}{n}{n}");
        let mut tail = String::new();
        for e in &after {
            tail.push_str(&render(e, crlf));
        }
        tail.push_str(&format!("data: [DONE]{n}{n}"));
        let stream = format!("{expected}{receipt_event}{tail}");
        expected.push_str(&tail);

        let bytes = stream.as_bytes();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut filter = SseFilter::new();
        let mut out = Vec::new();
        let mut from = 0;
        for p in points.into_iter().chain([bytes.len()]) {
            out.extend_from_slice(&filter.push(&bytes[from..p]));
            from = p;
        }
        let (rest, found) = filter.finish();
        out.extend_from_slice(&rest);
        prop_assert_eq!(String::from_utf8(out).unwrap_or_default(), expected);
        prop_assert_eq!(found, Some(receipt));
    }

    #[test]
    fn a_stream_without_receipt_passes_unchanged(
        events in prop::collection::vec(event(), 0..10),
        crlf in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let stream: String = events.iter().map(|e| render(e, crlf)).collect();
        let bytes = stream.as_bytes();
        let at = cut.index(bytes.len() + 1);
        let mut filter = SseFilter::new();
        let mut out = filter.push(&bytes[..at]).to_vec();
        out.extend_from_slice(&filter.push(&bytes[at..]));
        let (rest, found) = filter.finish();
        out.extend_from_slice(&rest);
        prop_assert_eq!(out, bytes.to_vec());
        prop_assert_eq!(found, None);
    }
}
