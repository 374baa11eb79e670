//! The SOSKU interoperability gateway: Finnish social rehabilitation records between an
//! Apotti-like EHR and a Kanta-style social welfare archive.
//!
//! One module per concern; dependencies point one way (cli → validate → {input, profiles} →
//! {identifiers, outcome}).

pub mod cli;
pub mod identifiers;
pub mod input;
pub mod map_cli;
pub mod mapping;
pub mod outcome;
pub mod profiles;
pub mod validate;
