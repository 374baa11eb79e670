//! The SOSKU interoperability gateway: Finnish social rehabilitation records between an
//! Apotti-like EHR and a Kanta-style social welfare archive.
//!
//! One module per concern; dependencies point one way (cli → validate → {input, profiles} →
//! {identifiers, outcome}).

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod document_codec;
pub mod exchange;
pub mod files;
pub mod http;
pub mod identifiers;
pub mod input;
pub mod json_parse;
pub mod json_text;
pub mod json_tree;
pub mod map_cli;
pub mod mapping;
pub mod openapi;
pub mod outcome;
pub mod parallel;
pub mod profiles;
pub mod scratch_db;
pub mod server;
pub mod store;
pub mod tls;
pub mod validate;
mod writer;
