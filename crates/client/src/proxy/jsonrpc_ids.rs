//! JSON-RPC ids are chosen by the application (counters, timestamps, UUIDs): sent as
//! they are, they would link requests to each other and to the app. The proxy replaces
//! them with 1, 2, 3... in order of appearance and puts the originals back into the
//! answer, matched by the replaced id. Notifications (calls without an `id`) stay
//! without one.

use bytes::Bytes;
use serde_json::Value;

/// The application's ids, at index `new id - 1`.
#[derive(Debug, Default)]
pub(crate) struct OriginalIds(Vec<Value>);

fn renumber(call: &mut Value, ids: &mut OriginalIds) {
    if let Some(object) = call.as_object_mut()
        && let Some(id) = object.get_mut("id")
    {
        let original = std::mem::replace(id, Value::from(ids.0.len() + 1));
        ids.0.push(original);
    }
}

/// The request with its ids replaced, and the originals.
pub(crate) fn rewrite(mut request: Value) -> (Value, OriginalIds) {
    let mut ids = OriginalIds::default();
    match &mut request {
        Value::Array(calls) => calls.iter_mut().for_each(|c| renumber(c, &mut ids)),
        call => renumber(call, &mut ids),
    }
    (request, ids)
}

fn put_back(answer: &mut Value, ids: &OriginalIds) {
    if let Some(id) = answer.as_object_mut().and_then(|o| o.get_mut("id"))
        && let Some(original) = id
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| ids.0.get(i))
    {
        *id = original.clone();
    }
}

/// The answer with the application's ids back. A body that is not JSON (an error page
/// from something in front of the node) is passed on as it is.
pub(crate) fn restore(body: &Bytes, ids: &OriginalIds) -> Bytes {
    let Ok(mut answer) = serde_json::from_slice::<Value>(body) else {
        return body.clone();
    };
    match &mut answer {
        Value::Array(answers) => answers.iter_mut().for_each(|a| put_back(a, ids)),
        one => put_back(one, ids),
    }
    Bytes::from(answer.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_renumbered_and_restored() {
        let request = json!([
            {"jsonrpc": "2.0", "id": "app-uuid-7f3a", "method": "eth_chainId"},
            {"jsonrpc": "2.0", "method": "eth_subscribe_note"},
            {"jsonrpc": "2.0", "id": 1_733_000_000_123_u64, "method": "eth_blockNumber"},
        ]);
        let (sent, ids) = rewrite(request);
        assert_eq!(sent[0]["id"], 1);
        assert!(sent[1].get("id").is_none());
        assert_eq!(sent[2]["id"], 2);
        // Answers may come in any order.
        let answer = json!([
            {"jsonrpc": "2.0", "id": 2, "result": "0x10"},
            {"jsonrpc": "2.0", "id": 1, "result": "0x1"},
        ]);
        let back: Value =
            serde_json::from_slice(&restore(&Bytes::from(answer.to_string()), &ids)).unwrap();
        assert_eq!(back[0]["id"], 1_733_000_000_123_u64);
        assert_eq!(back[1]["id"], "app-uuid-7f3a");
    }

    #[test]
    fn a_single_call_and_a_null_id_round_trip() {
        let (sent, ids) = rewrite(json!({"jsonrpc": "2.0", "id": null, "method": "m"}));
        assert_eq!(sent["id"], 1);
        let back = restore(&Bytes::from(r#"{"jsonrpc":"2.0","id":1,"result":0}"#), &ids);
        assert_eq!(
            serde_json::from_slice::<Value>(&back).unwrap()["id"],
            Value::Null
        );
        assert_eq!(&restore(&Bytes::from("<html>"), &ids)[..], b"<html>");
    }
}
