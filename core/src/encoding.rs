//! Encoders (placeholder)
