//! Errors the core returns to its caller. They only ever mean the caller broke the API contract;
//! failures of Marathon or Consul are data (log records and replies), never `Err`.

/// A call broke the core's API contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// [`crate::InboundId`] values must be unique while their reply is outstanding.
    #[error("inbound id {0} is already waiting for its reply")]
    DuplicateInbound(u64),
}
