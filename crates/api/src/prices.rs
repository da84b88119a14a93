//! The price tables a gateway publishes per route prefix in its discovery document
//! (`prices` in `GET /.well-known/zkcredits`), and which route serves a path.
//!
//! The same types are what the gateway's adapters meter with and what the client checks
//! requests against before it proves, so the two cannot disagree about a price.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meter::{ModelPrice, Tokenizer};

/// One route's prices, tagged by the kind of upstream behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoutePrices {
    /// Any HTTP API at one price per request.
    Flat(FlatPrices),
    /// An OpenAI-compatible LLM server.
    Openai(OpenAiPrices),
    /// An Ethereum JSON-RPC node.
    Jsonrpc(JsonRpcPrices),
}

/// A flat route's price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlatPrices {
    /// Credit units per request.
    pub per_request: u64,
}

/// The OpenAI-compatible endpoints, each under `/v1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /v1/chat/completions`
    Chat,
    /// `POST /v1/completions`
    Completions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `GET /v1/models`
    Models,
}

impl Endpoint {
    /// All four.
    pub const ALL: [Endpoint; 4] = [
        Endpoint::Chat,
        Endpoint::Completions,
        Endpoint::Embeddings,
        Endpoint::Models,
    ];

    /// The path under `/v1` (and under the upstream's base URL).
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Models => "/models",
        }
    }

    /// The HTTP method it takes.
    pub fn method(self) -> http::Method {
        match self {
            Endpoint::Models => http::Method::GET,
            _ => http::Method::POST,
        }
    }

    /// Its name in configurations and messages.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Models => "models",
        }
    }
}

fn openai_unit() -> String {
    "credit units per 1000 tokens, total rounded up".to_owned()
}

fn jsonrpc_unit() -> String {
    "credit units per call; a batch costs the sum".to_owned()
}

/// An OpenAI-compatible route's prices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAiPrices {
    /// How the prices read.
    #[serde(default = "openai_unit")]
    pub unit: String,
    /// The encoding prompts are estimated with.
    pub tokenizer: Tokenizer,
    /// The endpoints served.
    pub endpoints: Vec<Endpoint>,
    /// Price of `GET /v1/models`.
    pub models_price: u64,
    /// Model name -> price. Only these models are served.
    pub models: BTreeMap<String, ModelPrice>,
}

impl OpenAiPrices {
    /// A table with the default unit text.
    pub fn new(
        tokenizer: Tokenizer,
        endpoints: Vec<Endpoint>,
        models_price: u64,
        models: BTreeMap<String, ModelPrice>,
    ) -> Self {
        Self {
            unit: openai_unit(),
            tokenizer,
            endpoints,
            models_price,
            models,
        }
    }
}

/// A JSON-RPC route's prices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonRpcPrices {
    /// How the prices read.
    #[serde(default = "jsonrpc_unit")]
    pub unit: String,
    /// Price per method.
    pub methods: BTreeMap<String, u64>,
    /// Price of a method not in `methods`; without it such methods are refused.
    pub default_price: Option<u64>,
    /// Most calls in one batch.
    pub max_batch: usize,
}

impl JsonRpcPrices {
    /// A table with the default unit text.
    pub fn new(
        methods: BTreeMap<String, u64>,
        default_price: Option<u64>,
        max_batch: usize,
    ) -> Self {
        Self {
            unit: jsonrpc_unit(),
            methods,
            default_price,
            max_batch,
        }
    }
}

/// Whether the route with `prefix` serves `path`: the path is the prefix or lies below
/// it (`/rpc` serves `/rpc` and `/rpc/x`, not `/rpcx`).
pub fn serves(prefix: &str, path: &str) -> bool {
    let p = prefix.trim_end_matches('/');
    p.is_empty()
        || path == p
        || path
            .strip_prefix(p)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The route serving `path` among `prefixes`: the longest prefix that serves it, so that
/// nested prefixes (`/` and `/v1`) route the same way on every side.
pub fn route_for<'a>(prefixes: impl IntoIterator<Item = &'a str>, path: &str) -> Option<&'a str> {
    prefixes
        .into_iter()
        .filter(|p| serves(p, path))
        .max_by_key(|p| p.trim_end_matches('/').len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_serves() {
        let prefixes = ["/", "/v1", "/rpc"];
        assert_eq!(route_for(prefixes, "/v1/chat/completions"), Some("/v1"));
        assert_eq!(route_for(prefixes, "/rpc"), Some("/rpc"));
        assert_eq!(route_for(prefixes, "/rpcx"), Some("/"));
        assert_eq!(route_for(["/rpc"], "/rpcx"), None);
        assert_eq!(route_for(["/rpc/"], "/rpc/a"), Some("/rpc/"));
    }

    #[test]
    fn price_tables_keep_their_wire_shape() {
        let table = RoutePrices::Jsonrpc(JsonRpcPrices::new(
            [("eth_call".to_owned(), 3)].into(),
            None,
            100,
        ));
        let json = serde_json::to_value(&table).expect("serializes");
        assert_eq!(json["kind"], "jsonrpc");
        assert_eq!(json["methods"]["eth_call"], 3);
        assert_eq!(json["max_batch"], 100);
        let back: RoutePrices = serde_json::from_value(json).expect("parses");
        assert_eq!(back, table);
        let flat: RoutePrices =
            serde_json::from_str(r#"{"kind":"flat","per_request":5}"#).expect("parses");
        assert_eq!(flat, RoutePrices::Flat(FlatPrices { per_request: 5 }));
    }
}
