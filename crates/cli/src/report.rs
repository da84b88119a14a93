//! How a failed command is printed: its error, then each cause the lines above have not
//! already said.
//!
//! Many errors, ours and those of the libraries under them (alloy, reqwest, rusqlite),
//! write their source's text into their own message and also return it from `source()`.
//! The usual report prints every level of the chain on a line of its own, so it said the
//! same failure two or three times; this one leaves out a cause whose whole text is
//! already on a line above, and keeps every cause that adds something.

use std::fmt::Write as _;

/// The report of `error`: `error: <message>`, then `  caused by: <cause>` for each cause
/// that the lines above do not already contain.
pub(crate) fn report(error: &anyhow::Error) -> String {
    let mut out = format!("error: {error}");
    let mut said = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if text.is_empty() || said.contains(&text) {
            continue;
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "\n  caused by: {text}");
        said.push('\n');
        said.push_str(&text);
    }
    out
}

/// `error` with its stable code in front of its message (`[code] message`), and its
/// causes kept for [`report`].
pub(crate) fn coded<E>(error: E, code: &str) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    anyhow::Error::new(Coded {
        code: code.to_owned(),
        error,
    })
}

#[derive(Debug)]
struct Coded<E> {
    code: String,
    error: E,
}

impl<E: std::fmt::Display> std::fmt::Display for Coded<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.code, self.error)
    }
}

impl<E: std::error::Error> std::error::Error for Coded<E> {
    // The wrapped error is this level: its message is in ours, so the chain goes on
    // from its source.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a message and an optional source, as thiserror would derive it.
    #[derive(Debug)]
    struct Level {
        message: String,
        source: Option<Box<Level>>,
    }

    impl std::fmt::Display for Level {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.message)
        }
    }

    impl std::error::Error for Level {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.source.as_deref().map(|s| s as _)
        }
    }

    /// A chain whose levels say `messages`, outermost first.
    fn chain(messages: &[&str]) -> anyhow::Error {
        let level = messages.iter().rev().fold(None, |source, message| {
            Some(Box::new(Level {
                message: (*message).into(),
                source,
            }))
        });
        anyhow::Error::new(*level.expect("at least one level"))
    }

    #[test]
    fn a_cause_that_the_message_above_repeats_is_said_once() {
        let e = chain(&[
            "chain: JSON-RPC: connection refused",
            "JSON-RPC: connection refused",
            "connection refused",
        ]);
        assert_eq!(report(&e), "error: chain: JSON-RPC: connection refused");
    }

    #[test]
    fn a_cause_that_adds_something_is_kept_in_order() {
        let e = chain(&[
            "deploying the pool",
            "the contract refused",
            "DenominationNotAllowed(7 credits)",
        ]);
        assert_eq!(
            report(&e),
            "error: deploying the pool\n  caused by: the contract refused\n  caused by: DenominationNotAllowed(7 credits)"
        );
    }

    #[test]
    fn a_coded_error_keeps_its_causes() {
        let inner = Level {
            message: "cannot listen on 127.0.0.1:1".into(),
            source: Some(Box::new(Level {
                message: "permission denied".into(),
                source: None,
            })),
        };
        assert_eq!(
            report(&coded(inner, "listen_failed")),
            "error: [listen_failed] cannot listen on 127.0.0.1:1\n  caused by: permission denied"
        );
    }

    #[test]
    fn context_over_a_repeating_chain_keeps_the_first_full_text() {
        let e = chain(&["syncing the tree", "JSON-RPC: timed out", "timed out"]).context("sync");
        assert_eq!(
            report(&e),
            "error: sync\n  caused by: syncing the tree\n  caused by: JSON-RPC: timed out"
        );
    }
}
