//! Token counting and pricing for OpenAI-compatible requests: the estimate of a
//! request's input (to cap its output before it is sent), the price of an upstream
//! `usage` object, and the text a response carried (to count it when no usage came).
//!
//! Prices are integers in milli-credit-units per token (credit units per 1,000 tokens),
//! so that a model cheaper than one credit unit per token can be priced without
//! fractions; a total is rounded up to whole credit units and never exceeds `C_max`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tiktoken_rs::CoreBPE;

/// Tokens a chat template adds per message (role and separators), as OpenAI documents
/// for its own models; other servers differ by a few tokens, which the cap absorbs.
const TOKENS_PER_MESSAGE: u64 = 3;
/// Tokens that prime the assistant's reply.
const TOKENS_PER_REPLY: u64 = 3;

/// The BPE used to estimate token counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tokenizer {
    /// GPT-3.5/GPT-4 encoding; a fair estimate for most open models too.
    #[default]
    Cl100kBase,
    /// GPT-4o encoding.
    O200kBase,
}

impl Tokenizer {
    /// The (process-wide, lazily loaded) encoder.
    pub fn bpe(self) -> &'static CoreBPE {
        match self {
            Tokenizer::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
            Tokenizer::O200kBase => tiktoken_rs::o200k_base_singleton(),
        }
    }

    /// Tokens in `text` (special-token strings are counted as ordinary text: a client
    /// cannot make its prompt look shorter by writing `<|endoftext|>`).
    pub fn count(self, text: &str) -> u64 {
        self.bpe().encode_ordinary(text).len() as u64
    }
}

/// A model's price in milli-credit-units per token (= credit units per 1,000 tokens).
/// A missing side means the model cannot be used on endpoints that need it
/// (`missing_price`); zero means free.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Credit units per 1,000 input (prompt) tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_per_1k: Option<u64>,
    /// Credit units per 1,000 output (completion) tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_per_1k: Option<u64>,
}

/// Both sides of a price, once the endpoint has checked the ones it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rates {
    /// Milli-credit-units per input token.
    pub input: u64,
    /// Milli-credit-units per output token.
    pub output: u64,
}

/// Cost in credit units of `input` and `output` tokens at `rates`: rounded up, and
/// never above `c_max` (the client paid `c_max` up front; an upstream that used more
/// than the cap allowed is the provider's loss, not the client's).
pub fn price(rates: Rates, input: u64, output: u64, c_max: u64) -> u64 {
    let milli =
        u128::from(input) * u128::from(rates.input) + u128::from(output) * u128::from(rates.output);
    let units = milli.div_ceil(1000);
    u64::try_from(units).unwrap_or(u64::MAX).min(c_max)
}

/// The most output tokens per choice such that `input` tokens plus `choices` worst-case
/// completions cost at most `c_max`. `None` when output is free (no cap needed);
/// `Some(0)` when not even one output token fits.
pub fn output_budget(rates: Rates, input: u64, choices: u64, c_max: u64) -> Option<u64> {
    if rates.output == 0 {
        return None;
    }
    let budget = u128::from(c_max) * 1000;
    let spent = u128::from(input) * u128::from(rates.input);
    let Some(left) = budget.checked_sub(spent) else {
        return Some(0);
    };
    let per_token = u128::from(rates.output) * u128::from(choices.max(1));
    Some(u64::try_from(left / per_token).unwrap_or(u64::MAX))
}

/// Whether `input` tokens alone fit in `c_max` (embeddings have no output).
pub fn input_fits(rates: Rates, input: u64, c_max: u64) -> bool {
    u128::from(input) * u128::from(rates.input) <= u128::from(c_max) * 1000
}

/// Estimated prompt tokens of a chat request: every message's text (string content or
/// text parts), name and tool calls, the tool definitions, plus the template overhead.
/// Images and audio are not estimated; the upstream's usage prices them afterwards
/// within the cap.
pub fn chat_prompt_tokens(tokenizer: Tokenizer, body: &Value) -> u64 {
    let mut total = TOKENS_PER_REPLY;
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        for message in messages {
            total += TOKENS_PER_MESSAGE;
            for key in ["role", "name"] {
                if let Some(s) = message.get(key).and_then(Value::as_str) {
                    total += tokenizer.count(s);
                }
            }
            match message.get("content") {
                Some(Value::String(s)) => total += tokenizer.count(s),
                Some(Value::Array(parts)) => {
                    for part in parts {
                        if let Some(s) = part.get("text").and_then(Value::as_str) {
                            total += tokenizer.count(s);
                        }
                    }
                }
                _ => {}
            }
            if let Some(calls) = message.get("tool_calls") {
                total += tokenizer.count(&calls.to_string());
            }
        }
    }
    if let Some(tools) = body.get("tools") {
        total += tokenizer.count(&tools.to_string());
    }
    total
}

/// A completions or embeddings `input`/`prompt` field: a string, an array of strings, an
/// array of token ids, or an array of arrays of token ids. Returns (tokens, number of
/// prompts), or `None` when the shape is none of these.
pub fn prompt_tokens(tokenizer: Tokenizer, prompt: &Value) -> Option<(u64, u64)> {
    match prompt {
        Value::String(s) => Some((tokenizer.count(s), 1)),
        Value::Array(items) if items.is_empty() => Some((0, 1)),
        Value::Array(items) if items.iter().all(Value::is_u64) => Some((items.len() as u64, 1)),
        Value::Array(items) => {
            let mut tokens = 0;
            for item in items {
                tokens += match item {
                    Value::String(s) => tokenizer.count(s),
                    Value::Array(ids) if ids.iter().all(Value::is_u64) => ids.len() as u64,
                    _ => return None,
                };
            }
            Some((tokens, items.len() as u64))
        }
        _ => None,
    }
}

/// `(prompt_tokens, completion_tokens)` of a response's or chunk's `usage` object.
pub fn usage(value: &Value) -> Option<(u64, u64)> {
    let usage = value.get("usage")?;
    let prompt = usage.get("prompt_tokens")?.as_u64()?;
    let completion = usage
        .get("completion_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Some((prompt, completion))
}

/// Appends the generated text of a chat or completions response or stream chunk to
/// `out`: message or delta content, reasoning, refusals, tool-call names and
/// arguments, and completions `text`. Returns whether `value` had a `choices` array.
pub fn collect_text(value: &Value, out: &mut String) -> bool {
    let Some(choices) = value.get("choices").and_then(Value::as_array) else {
        return false;
    };
    for choice in choices {
        if let Some(s) = choice.get("text").and_then(Value::as_str) {
            out.push_str(s);
        }
        for key in ["message", "delta"] {
            let Some(m) = choice.get(key) else { continue };
            for field in ["content", "reasoning_content", "reasoning", "refusal"] {
                if let Some(s) = m.get(field).and_then(Value::as_str) {
                    out.push_str(s);
                }
            }
            if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    if let Some(f) = call.get("function") {
                        for field in ["name", "arguments"] {
                            if let Some(s) = f.get(field).and_then(Value::as_str) {
                                out.push_str(s);
                            }
                        }
                    }
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RATES: Rates = Rates {
        input: 1500,
        output: 2000,
    };

    #[test]
    fn price_rounds_up_and_clamps() {
        assert_eq!(price(RATES, 0, 0, 100), 0);
        // 1 * 1.5 = 1.5 -> 2
        assert_eq!(price(RATES, 1, 0, 100), 2);
        // 10 * 1.5 + 5 * 2 = 25
        assert_eq!(price(RATES, 10, 5, 100), 25);
        assert_eq!(price(RATES, 1000, 1000, 100), 100);
        assert_eq!(price(RATES, u64::MAX, u64::MAX, 7), 7);
    }

    #[test]
    fn budget_leaves_room_exactly() {
        // c_max 100 = 100_000 milli; input 10 tokens = 15_000; left 85_000 / 2_000 = 42.
        assert_eq!(output_budget(RATES, 10, 1, 100), Some(42));
        assert_eq!(price(RATES, 10, 42, 1_000), 99);
        assert_eq!(output_budget(RATES, 10, 2, 100), Some(21));
        assert_eq!(output_budget(RATES, 70, 1, 100), Some(0));
        assert_eq!(output_budget(RATES, 1_000_000, 1, 100), Some(0));
        let free = Rates {
            input: 1,
            output: 0,
        };
        assert_eq!(output_budget(free, 10, 1, 100), None);
    }

    #[test]
    fn prompt_shapes() {
        let t = Tokenizer::Cl100kBase;
        assert_eq!(prompt_tokens(t, &json!("hello world")), Some((2, 1)));
        assert_eq!(prompt_tokens(t, &json!([1, 2, 3])), Some((3, 1)));
        assert_eq!(prompt_tokens(t, &json!(["hello", "world"])), Some((2, 2)));
        assert_eq!(prompt_tokens(t, &json!([[1, 2], [3]])), Some((3, 2)));
        assert_eq!(prompt_tokens(t, &json!({"a": 1})), None);
        assert_eq!(prompt_tokens(t, &json!([{"a": 1}])), None);
    }

    #[test]
    fn chat_estimate_counts_every_message() {
        let t = Tokenizer::Cl100kBase;
        let one = json!({"messages": [{"role": "user", "content": "hello world"}]});
        // reply 3 + message 3 + "user" 1 + "hello world" 2
        assert_eq!(chat_prompt_tokens(t, &one), 9);
        let parts = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "hello world"}]}]});
        assert_eq!(chat_prompt_tokens(t, &parts), 9);
    }

    #[test]
    fn special_tokens_count_as_text() {
        assert!(Tokenizer::Cl100kBase.count("<|endoftext|>") > 1);
        assert!(Tokenizer::O200kBase.count("<|endoftext|>") > 1);
    }

    #[test]
    fn text_of_chunks() {
        let mut s = String::new();
        assert!(collect_text(
            &json!({"choices": [{"delta": {"content": "ab", "tool_calls": [
                {"function": {"name": "f", "arguments": "{}"}}]}}]}),
            &mut s
        ));
        assert!(collect_text(&json!({"choices": [{"text": "cd"}]}), &mut s));
        assert!(!collect_text(&json!({"usage": {}}), &mut s));
        assert_eq!(s, "abf{}cd");
        assert_eq!(
            usage(&json!({"usage": {"prompt_tokens": 3, "completion_tokens": 4}})),
            Some((3, 4))
        );
        assert_eq!(usage(&json!({"usage": null})), None);
    }
}
