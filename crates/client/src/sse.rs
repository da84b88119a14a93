//! A filter over a server-sent-event byte stream that takes out the gateway's receipt
//! event (`event: zkcredit-receipt`, `docs/PROTOCOL.md §8`) and relays everything else
//! to the application unchanged, byte for byte.
//!
//! Events end at a blank line. Bytes are held back only until the event they belong to
//! is complete, so an event split across chunks is judged whole, and the application
//! never sees half of the receipt event. Lines may end in `\n` or `\r\n`.

use bytes::{Bytes, BytesMut};

/// The event name of the gateway's receipt.
pub const RECEIPT_EVENT: &str = "zkcredit-receipt";

/// The filter's state: feed it chunks with [`SseFilter::push`], then call
/// [`SseFilter::finish`].
#[derive(Debug, Default)]
pub struct SseFilter {
    /// Bytes of the event not yet complete.
    pending: BytesMut,
    /// How far `pending` was already searched for a line end.
    scanned: usize,
    /// Where the current (incomplete) line starts in `pending`.
    line_start: usize,
    receipt: Option<String>,
    /// Events after the receipt (the gateway's `[DONE]`): held until [`SseFilter::finish`],
    /// so that the application sees the end of its stream only once the ticket is
    /// settled and the note free for its next request.
    tail: BytesMut,
}

/// The field value of an SSE line `name: value` (or `name:value`), if the line is that
/// field.
fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(name)?;
    let rest = rest.strip_prefix(b":")?;
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

/// The receipt carried by one complete event, if the event is the receipt event.
fn receipt_of_event(event: &[u8]) -> Option<String> {
    let lines = event
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let mut is_receipt = false;
    let mut data: Vec<&[u8]> = Vec::new();
    for line in lines {
        if let Some(name) = field(line, b"event") {
            is_receipt = name == RECEIPT_EVENT.as_bytes();
        } else if let Some(d) = field(line, b"data") {
            data.push(d);
        }
    }
    if !is_receipt {
        return None;
    }
    let joined = data.join(&b'\n');
    Some(String::from_utf8_lossy(&joined).trim().to_owned())
}

impl SseFilter {
    /// A fresh filter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The receipt, once its event has been seen.
    pub fn receipt(&self) -> Option<&str> {
        self.receipt.as_deref()
    }

    /// Feeds one chunk; returns the bytes to relay now (complete events other than the
    /// receipt event).
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        self.pending.extend_from_slice(chunk);
        let mut out = BytesMut::new();
        while let Some(offset) = self.pending[self.scanned..]
            .iter()
            .position(|&b| b == b'\n')
        {
            let end = self.scanned + offset; // index of '\n'
            let line = &self.pending[self.line_start..end];
            let blank = line.is_empty() || line == b"\r";
            self.scanned = end + 1;
            self.line_start = end + 1;
            if blank {
                let event = self.pending.split_to(end + 1).freeze();
                self.scanned = 0;
                self.line_start = 0;
                self.take_or_relay(event, &mut out);
            }
        }
        out.freeze()
    }

    fn take_or_relay(&mut self, event: Bytes, out: &mut BytesMut) {
        match receipt_of_event(&event) {
            Some(r) => {
                if self.receipt.is_some() {
                    tracing::warn!("a second receipt event in one stream; keeping the first");
                } else {
                    self.receipt = Some(r);
                }
            }
            None if self.receipt.is_some() => self.tail.extend_from_slice(&event),
            None => out.extend_from_slice(&event),
        }
    }

    /// Ends the stream: returns the bytes still held (the events after the receipt, and
    /// an unterminated last event unless it is the receipt event) and the receipt, if
    /// one came.
    pub fn finish(mut self) -> (Bytes, Option<String>) {
        let mut out = BytesMut::new();
        if !self.pending.is_empty() {
            let rest = self.pending.split().freeze();
            self.take_or_relay(rest, &mut out);
        }
        let mut held = self.tail;
        held.extend_from_slice(&out);
        (held.freeze(), self.receipt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> (Vec<u8>, Option<String>) {
        let mut f = SseFilter::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&f.push(c));
        }
        let (rest, receipt) = f.finish();
        out.extend_from_slice(&rest);
        (out, receipt)
    }

    #[test]
    fn the_receipt_event_is_taken_out_and_the_rest_relayed() {
        let stream = b"data: {\"a\":1}\n\nevent: zkcredit-receipt\ndata: AbC-_\n\ndata: [DONE]\n\n";
        let (out, receipt) = run(&[stream]);
        assert_eq!(out, b"data: {\"a\":1}\n\ndata: [DONE]\n\n");
        assert_eq!(receipt.as_deref(), Some("AbC-_"));
    }

    #[test]
    fn crlf_lines_and_a_split_inside_the_event_name_work() {
        let (out, receipt) = run(&[
            b"data: x\r\n\r\nevent: zkcredit-rec",
            b"eipt\r\ndata:Q",
            b"w\r\n",
            b"\r\ndata: [DONE]\r\n\r\n",
        ]);
        assert_eq!(out, b"data: x\r\n\r\ndata: [DONE]\r\n\r\n");
        assert_eq!(receipt.as_deref(), Some("Qw"));
    }

    #[test]
    fn other_events_that_mention_the_name_are_relayed() {
        let stream = b"data: event: zkcredit-receipt\n\nevent: zkcredit-receipts\ndata: no\n\n";
        let (out, receipt) = run(&[stream]);
        assert_eq!(out, stream);
        assert_eq!(receipt, None);
    }

    #[test]
    fn an_unterminated_last_event_is_still_judged() {
        let (out, receipt) = run(&[b"data: a\n\nevent: zkcredit-receipt\ndata: R"]);
        assert_eq!(out, b"data: a\n\n");
        assert_eq!(receipt.as_deref(), Some("R"));
        let (out, receipt) = run(&[b"data: a\n\ndata: partial"]);
        assert_eq!(out, b"data: a\n\ndata: partial");
        assert_eq!(receipt, None);
    }

    #[test]
    fn the_end_of_the_stream_is_held_until_finish() {
        let mut f = SseFilter::new();
        assert_eq!(&f.push(b"data: a\n\n")[..], b"data: a\n\n");
        assert!(
            f.push(b"event: zkcredit-receipt\ndata: R\n\ndata: [DONE]\n\n")
                .is_empty()
        );
        let (rest, receipt) = f.finish();
        assert_eq!(&rest[..], b"data: [DONE]\n\n");
        assert_eq!(receipt.as_deref(), Some("R"));
    }

    #[test]
    fn bytes_are_relayed_as_soon_as_their_event_is_complete() {
        let mut f = SseFilter::new();
        assert!(f.push(b"data: one\n").is_empty());
        assert_eq!(&f.push(b"\ndata: tw")[..], b"data: one\n\n");
        assert_eq!(&f.push(b"o\n\n")[..], b"data: two\n\n");
    }
}
