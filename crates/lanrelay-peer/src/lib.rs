//! A str0m test participant shared by lanrelay's integration tests, its in-memory
//! engine harness, its benchmarks and the load generator.
//!
//! - [`payload`]: the stamped VP8/Opus RTP payloads a publisher sends and a receiver
//!   checks (integrity, packet numbers, send time).

pub mod payload;
