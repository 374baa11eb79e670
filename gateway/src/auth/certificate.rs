//! System clients known by their TLS client certificate.
//!
//! rustls has already checked that the certificate chains to the configured client CA and
//! that the client holds its key; here the certificate is mapped to a configured client by
//! its SHA-256 fingerprint, or by a subject alternative name on the allow-list. The common
//! name is never looked at: anyone the CA ever issued a certificate to could carry any CN.

use std::collections::HashMap;

use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::config::CertificateClient;

/// The client certificate of a TLS connection (the end-entity one), if the client sent one.
/// Inserted into every request of the connection by the TLS acceptor.
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Option<CertificateDer<'static>>);

/// A fingerprint as lowercase hex without separators, or `None` if it is not SHA-256 hex.
#[must_use]
pub fn normalise_fingerprint(text: &str) -> Option<String> {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

/// SHA-256 of a DER certificate, lowercase hex.
#[must_use]
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The subject alternative names (DNS names and URIs) of a certificate.
#[must_use]
pub fn subject_alternative_names(der: &[u8]) -> Vec<String> {
    let Ok((_, certificate)) = x509_parser::certificate::X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let Ok(Some(extension)) = certificate.subject_alternative_name() else {
        return Vec::new();
    };
    extension
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            GeneralName::URI(uri) => Some((*uri).to_owned()),
            _ => None,
        })
        .collect()
}

/// The configured certificate clients, indexed.
#[derive(Debug, Default)]
pub struct CertificateClients {
    clients: Vec<CertificateClient>,
    by_fingerprint: HashMap<String, usize>,
    by_san: HashMap<String, usize>,
}

impl CertificateClients {
    /// Indexes the configured clients.
    #[must_use]
    pub fn new(clients: &[CertificateClient]) -> Self {
        let mut index = Self {
            clients: clients.to_vec(),
            ..Self::default()
        };
        for (i, client) in clients.iter().enumerate() {
            if let Some(fingerprint) = client.sha256.as_deref().and_then(normalise_fingerprint) {
                index.by_fingerprint.insert(fingerprint, i);
            }
            if let Some(san) = &client.san {
                index.by_san.insert(san.to_ascii_lowercase(), i);
            }
        }
        index
    }

    /// Whether any client is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The client a certificate belongs to: by fingerprint first, then by SAN.
    #[must_use]
    pub fn identify(&self, der: &[u8]) -> Option<&CertificateClient> {
        if let Some(&i) = self.by_fingerprint.get(&fingerprint(der)) {
            return self.clients.get(i);
        }
        subject_alternative_names(der)
            .iter()
            .find_map(|san| self.by_san.get(&san.to_ascii_lowercase()))
            .and_then(|&i| self.clients.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;

    #[test]
    fn fingerprints_are_normalised() {
        let colons = "AB:".repeat(31) + "AB";
        assert_eq!(normalise_fingerprint(&colons), Some("ab".repeat(32)));
        assert_eq!(normalise_fingerprint("abc"), None);
        assert_eq!(normalise_fingerprint(&"zz".repeat(32)), None);
    }

    #[test]
    fn an_unknown_certificate_is_nobody() {
        let clients = CertificateClients::new(&[CertificateClient {
            name: "apotti".to_owned(),
            sha256: Some("00".repeat(32)),
            san: Some("apotti.example".to_owned()),
            roles: vec![Role::Integrator],
        }]);
        assert!(clients.identify(b"not a certificate").is_none());
    }
}
