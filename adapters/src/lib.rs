//! Adapters (placeholder)
