//! The SOSKU conformance suite: what vendors of EHRs and archives run to show that their
//! exports and endpoints meet the contract (`shared/spec/`) before they connect.
//!
//! - [`cases`]: the cases, data under `cases/`, compiled into the binary;
//! - [`runner`] with [`sources`] (inputs), [`fresh`] (run-unique identifiers) and [`expect`]
//!   (comparing answers): running cases step by step;
//! - [`targets`]: vendor files, the profiles in process, a gateway and an archive at a URL;
//! - [`report`]: console, JSON, JUnit XML and FHIR TestReport renderings;
//! - [`archive`]: the reference Kanta-style archive, the real peer of the gateway's delivery
//!   tests and the yardstick of the archive cases.

pub mod archive;
pub mod cases;
pub mod expect;
pub mod fresh;
pub mod report;
pub mod runner;
pub mod sources;
pub mod targets;
