//! Relaying an upstream SSE stream: events are parsed as they arrive, re-framed and
//! passed on at once; the upstream's `data: [DONE]` is withheld (the gateway sends its
//! receipt event and then its own `[DONE]`); the cost is metered on the way and sent
//! when the upstream stream ends, however it ends.

use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{Event, Eventsource};
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use zkcredits_protocol::credits::Credits;

use super::meter::{self, Rates, Tokenizer};
use crate::upstream::EventStream;

/// Events buffered between the upstream reader and the client; when the client is slower,
/// reading from the upstream waits (backpressure instead of memory).
const BUFFER: usize = 32;

/// How a stream is metered.
#[derive(Debug)]
pub(super) struct StreamMeter {
    pub(super) tokenizer: Tokenizer,
    pub(super) rates: Rates,
    /// The gateway's own estimate of the prompt, used when the upstream's usage never came.
    pub(super) input_tokens: u64,
    pub(super) c_max: u64,
    /// Whether the client asked for usage itself; if not, the usage-only chunk the
    /// gateway forced is metered but not relayed.
    pub(super) relay_usage_only_chunks: bool,
}

/// What was seen of the stream so far.
#[derive(Debug, Default)]
struct Seen {
    usage: Option<(u64, u64)>,
    text: String,
    /// Events whose data was JSON with a `choices` array or a usage object.
    understood: u64,
    /// Events relayed in all.
    relayed: u64,
}

impl StreamMeter {
    /// Meters one event; returns whether to relay it.
    fn observe(&self, data: &str, seen: &mut Seen) -> bool {
        let Ok(value) = serde_json::from_str::<Value>(data) else {
            return true;
        };
        let usage = meter::usage(&value);
        let had_choices = meter::collect_text(&value, &mut seen.text);
        if usage.is_some() || had_choices {
            seen.understood += 1;
        }
        if usage.is_some() {
            seen.usage = usage;
        }
        let usage_only = usage.is_some()
            && value
                .get("choices")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        !usage_only || self.relay_usage_only_chunks
    }

    /// The cost once the stream has ended: the upstream's usage when it came; else the
    /// prompt estimate plus the relayed text counted; else (nothing we could read was
    /// relayed) everything that was paid.
    fn cost(&self, seen: &Seen) -> u64 {
        if let Some((input, output)) = seen.usage {
            return meter::price(self.rates, input, output, self.c_max);
        }
        if seen.relayed > 0 && seen.understood == 0 {
            return self.c_max;
        }
        let output = self.tokenizer.count(&seen.text);
        meter::price(self.rates, self.input_tokens, output, self.c_max)
    }
}

/// One event in SSE framing: an `event:` line unless it is a plain message, one `data:`
/// line per line of data, then a blank line.
pub(super) fn frame(event: &Event) -> Bytes {
    let mut out = String::with_capacity(event.data.len() + 16);
    if !event.event.is_empty() && event.event != "message" {
        out.push_str("event: ");
        out.push_str(&event.event);
        out.push('\n');
    }
    if !event.id.is_empty() {
        out.push_str("id: ");
        out.push_str(&event.id);
        out.push('\n');
    }
    for line in event.data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// The SSE event that tells the client the answer was cut: an error in the OpenAI
/// shape, `upstream_failed`.
pub(super) fn cut_event(why: &str) -> Bytes {
    let refusal = zkcredits_api::Refusal::new(
        zkcredits_api::Code::UpstreamFailed,
        format!(
            "{why}; the answer is incomplete and was charged for what was relayed (see the receipt)"
        ),
    );
    Bytes::from(format!("data: {}\n\n", refusal.body()))
}

/// Starts relaying `response`'s events. The returned stream ends when the upstream's
/// does (at `[DONE]`, at its end, on a transport error or after `idle` of silence) or
/// when the client goes away; the cost is sent right after.
pub(super) fn relay(
    response: reqwest::Response,
    meter: StreamMeter,
    idle: Duration,
) -> (EventStream, oneshot::Receiver<Credits>) {
    let (tx, rx) = mpsc::channel::<Bytes>(BUFFER);
    let (cost_tx, cost_rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut events = response.bytes_stream().eventsource();
        let mut seen = Seen::default();
        // Why the upstream's stream ended before its `[DONE]`, if it did.
        let mut cut: Option<String> = None;
        let mut client_left = false;
        loop {
            let event = match tokio::time::timeout(idle, events.next()).await {
                Err(_) => {
                    tracing::warn!(?idle, "upstream stream went silent; cutting it");
                    cut = Some(format!("the upstream was silent for {idle:?}"));
                    break;
                }
                Ok(None) => {
                    cut = Some("the upstream's stream ended before [DONE]".to_owned());
                    break;
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "upstream stream broke off");
                    cut = Some("the upstream's stream broke off".to_owned());
                    break;
                }
                Ok(Some(Ok(event))) => event,
            };
            if event.data.trim() == "[DONE]" {
                break;
            }
            if !meter.observe(&event.data, &mut seen) {
                continue;
            }
            if tx.send(frame(&event)).await.is_err() {
                // The client left: stop reading, which closes the upstream connection
                // and stops the generation; charge what was relayed.
                client_left = true;
                break;
            }
            seen.relayed += 1;
        }
        if let Some(why) = cut
            && !client_left
        {
            // An answer cut short must not read as a finished one: OpenAI SDKs raise on
            // an event whose data is an error object. The receipt still follows.
            let _ = tx.send(cut_event(&why)).await;
        }
        drop(events);
        drop(tx);
        let _ = cost_tx.send(Credits::new(meter.cost(&seen)));
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (bytes, rx))
    });
    (Box::pin(stream), cost_rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_events() {
        let event = Event {
            event: "message".into(),
            data: "a\nb".into(),
            id: String::new(),
            retry: None,
        };
        assert_eq!(&frame(&event)[..], b"data: a\ndata: b\n\n");
        let named = Event {
            event: "x".into(),
            data: "{}".into(),
            id: "7".into(),
            retry: None,
        };
        assert_eq!(&frame(&named)[..], b"event: x\nid: 7\ndata: {}\n\n");
    }

    fn meter(relay_usage: bool) -> StreamMeter {
        StreamMeter {
            tokenizer: Tokenizer::Cl100kBase,
            rates: Rates {
                input: 1000,
                output: 2000,
            },
            input_tokens: 10,
            c_max: 100,
            relay_usage_only_chunks: relay_usage,
        }
    }

    #[test]
    fn usage_only_chunk_is_withheld_unless_asked() {
        let usage = r#"{"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":5}}"#;
        let mut seen = Seen::default();
        assert!(!meter(false).observe(usage, &mut seen));
        assert_eq!(meter(false).cost(&seen), 14);
        assert!(meter(true).observe(usage, &mut Seen::default()));
    }

    #[test]
    fn cut_stream_counts_text() {
        let m = meter(false);
        let mut seen = Seen::default();
        assert!(m.observe(
            r#"{"choices":[{"delta":{"content":"hello world"}}]}"#,
            &mut seen
        ));
        seen.relayed = 1;
        // 10 input + 2 output tokens * 2 = 14
        assert_eq!(m.cost(&seen), 14);
        let mut unreadable = Seen::default();
        assert!(m.observe("not json", &mut unreadable));
        unreadable.relayed = 1;
        assert_eq!(m.cost(&unreadable), 100);
    }
}
