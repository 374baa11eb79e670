//! The SOSKU conformance suite. So far: the reference Kanta-style archive ([`archive`]), the
//! real peer the gateway's delivery is tested against and that vendors compare their archives
//! with. The cases and the runner are still to come (see this folder's README).

pub mod archive;
