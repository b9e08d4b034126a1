//! Errors the core returns to its caller, and the one error of reading a peer's payload.
//! [`Error`] only ever means the caller broke the API contract; failures of Marathon or Consul are
//! data (log records and replies), never `Err` of a `handle_*` call.

/// A call broke the core's API contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// [`crate::InboundId`] values must be unique while their reply is outstanding.
    #[error("inbound id {0} is already waiting for its reply")]
    DuplicateInbound(u64),
}

/// A Marathon or Consul answer that does not have the shape its request promises. The parsers
/// of both peers return it; what was asked, of whom, is added where it is logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable answer: {0}")]
pub struct ParseError(pub alloc::string::String);

impl From<serde_json::Error> for ParseError {
    fn from(e: serde_json::Error) -> Self {
        ParseError(alloc::string::ToString::to_string(&e))
    }
}
