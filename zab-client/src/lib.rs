//! The async client library. Not implemented yet: it is built once the server
//! and its wire protocol (`wire-spec.md`) exist. This crate exists so the
//! workspace has its final shape.
