//! Run-unique identifiers, so that the suite can run again and again against the same
//! gateway or archive.
//!
//! A gateway keeps a crosswalk and an archive keeps what it archived: sent a second time, the
//! same record would be a duplicate, not a new version, and a case that expects "version 1"
//! would fail on the second run. So before a case's inputs go out, and before its expected
//! documents are compared, the runner rewrites the identifiers in them with a run id and the
//! case's ordinal: deterministic within a case (a revision still names the same record, a
//! version 2 still replaces its version 1), different from run to run. Only values that are
//! valid are rewritten, and they stay valid: a case that sends a broken identifier on purpose
//! still sends it broken.
//!
//! - EHR ids (`DECISION_ID`, `PLAN_ID`, `CASE_ID` and the `LINKED_*`/`AMENDS_*` references):
//!   a suffix `.r<run>c<case>` (gateway target).
//! - `PAT_ENC_CSN_ID` (an integer) and the document's `encounterId` (the same, as a string):
//!   `(run·10⁴ + case)·10⁶ + csn mod 10⁶` (gateway target).
//! - Document OIDs under a custodian's document arc (`<root>.13.<year>.<n>`): the last arc gets
//!   the run and case appended as digits (archive target), so the custodian's arc and every
//!   equality between OIDs of a case hold.
//! - A valid hetu (archive target): the same century sign and year, a day, month and test
//!   individual number (900–999) chosen from the run, the case and the original, with its
//!   check character; so that searches by client find this case's documents only.

use serde_json::Value;
use sha2::{Digest, Sha256};

use gateway::identifiers::is_hetu;

/// Which identifiers a target needs fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// EHR ids and contact serial numbers.
    Gateway,
    /// Document OIDs and client hetus.
    Archive,
}

const ID_KEYS: [&str; 6] = [
    "DECISION_ID",
    "PLAN_ID",
    "CASE_ID",
    "LINKED_DECISION_ID",
    "LINKED_PLAN_ID",
    "AMENDS_DECISION_ID",
];

/// Rewrites identifiers for one case of one run.
#[derive(Debug, Clone)]
pub struct Fresh {
    run: u32,
    case: u32,
    scope: Scope,
}

impl Fresh {
    /// For case number `case` (< 10 000) of run `run` (< 100 000).
    #[must_use]
    pub fn new(run: u32, case: u32, scope: Scope) -> Self {
        Self {
            run: run % 100_000,
            case: case % 10_000,
            scope,
        }
    }

    /// Rewrites every identifier in `value` in place.
    pub fn apply(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, member) in map.iter_mut() {
                    match (self.scope, key.as_str(), &*member) {
                        (Scope::Gateway, key, Value::String(id))
                            if ID_KEYS.contains(&key) && !id.is_empty() =>
                        {
                            *member = Value::String(format!("{id}.r{}c{}", self.run, self.case));
                        }
                        (Scope::Gateway, "PAT_ENC_CSN_ID", Value::Number(n)) => {
                            if let Some(csn) = n.as_u64().filter(|c| *c >= 1) {
                                *member = Value::from(self.csn(csn));
                            }
                        }
                        (Scope::Gateway, "encounterId", Value::String(text)) => {
                            if let Some(csn) = text
                                .parse::<u64>()
                                .ok()
                                .filter(|c| *c >= 1 && !text.starts_with('0'))
                            {
                                *member = Value::String(self.csn(csn).to_string());
                            }
                        }
                        _ => self.apply(member),
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.apply(item);
                }
            }
            Value::String(text) if self.scope == Scope::Archive => {
                if let Some(oid) = self.document_oid(text) {
                    *text = oid;
                } else if is_hetu(text) {
                    *text = self.hetu(text);
                }
            }
            _ => {}
        }
    }

    fn csn(&self, csn: u64) -> u64 {
        (u64::from(self.run) * 10_000 + u64::from(self.case)) * 1_000_000 + csn % 1_000_000
    }

    /// `<root>.13.<year>.<n>` with a valid OID shape → `<root>.13.<year>.<n><run><case>`.
    fn document_oid(&self, text: &str) -> Option<String> {
        let arcs: Vec<&str> = text.split('.').collect();
        let valid = arcs.len() >= 8
            && text.starts_with("1.2.246.10.")
            && arcs
                .iter()
                .all(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
            && arcs.iter().all(|a| a.len() == 1 || !a.starts_with('0'));
        let n = arcs.len();
        (valid && arcs[n - 3] == "13" && arcs[n - 2].len() == 4)
            .then(|| format!("{text}{:05}{:04}", self.run, self.case))
    }

    fn hetu(&self, hetu: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.run.to_be_bytes());
        hasher.update(self.case.to_be_bytes());
        hasher.update(hetu.as_bytes());
        let digest = hasher.finalize();
        let pick = |i: usize, m: u32| (u32::from(digest[i]) * 256 + u32::from(digest[i + 1])) % m;
        let day = pick(0, 28) + 1;
        let month = pick(2, 12) + 1;
        let individual = 900 + pick(4, 100);
        let year = hetu.get(4..6).unwrap_or("90");
        let sign = hetu.get(6..7).unwrap_or("-");
        let digits = format!("{day:02}{month:02}{year}{individual:03}");
        let check = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| {
                "0123456789ABCDEFHJKLMNPRSTUVWXY"
                    .chars()
                    .nth(usize::try_from(n % 31).unwrap_or(0))
            })
            .unwrap_or('0');
        format!("{day:02}{month:02}{year}{sign}{individual:03}{check}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gateway_ids_get_a_run_suffix_and_csns_stay_integers() {
        let mut record = json!({"DECISION": {"DECISION_ID": "SD-1", "CASE_ID": "AS-1"},
            "VISIT": {"PAT_ENC_CSN_ID": 7_310_031_100_u64}, "MSG_ID": "M1"});
        Fresh::new(42, 7, Scope::Gateway).apply(&mut record);
        assert_eq!(record["DECISION"]["DECISION_ID"], "SD-1.r42c7");
        assert_eq!(record["DECISION"]["CASE_ID"], "AS-1.r42c7");
        assert_eq!(record["MSG_ID"], "M1");
        assert_eq!(record["VISIT"]["PAT_ENC_CSN_ID"], 420_007_031_100_u64);
        let mut document = json!({"body": {"visit": {"encounterId": "7310031100"}}});
        Fresh::new(42, 7, Scope::Gateway).apply(&mut document);
        assert_eq!(document["body"]["visit"]["encounterId"], "420007031100");
    }

    #[test]
    fn archive_oids_and_hetus_stay_valid_and_consistent() {
        let fresh = Fresh::new(42, 7, Scope::Archive);
        let mut document = json!({"header": {
            "documentOid": "1.2.246.10.2012566.13.2026.117",
            "setOid": "1.2.246.10.2012566.13.2026.117",
            "caseOid": "1.2.246.10.2012566.14.2026.4411",
            "custodian": {"oid": "1.2.246.10.2012566"},
            "client": {"hetu": "170966V9851"}}});
        fresh.apply(&mut document);
        let header = &document["header"];
        assert_eq!(
            header["documentOid"],
            "1.2.246.10.2012566.13.2026.117000420007"
        );
        assert_eq!(header["documentOid"], header["setOid"]);
        assert_eq!(header["caseOid"], "1.2.246.10.2012566.14.2026.4411");
        assert_eq!(header["custodian"]["oid"], "1.2.246.10.2012566");
        let hetu = header["client"]["hetu"].as_str().unwrap_or_default();
        assert!(is_hetu(hetu), "{hetu}");
        assert_eq!(hetu.get(4..7), Some("66V"));
        assert_ne!(hetu, "170966V9851");
        // Broken values stay broken.
        let mut broken = json!({"hetu": "010190-999K", "oid": "1.2.246.10.2012566.13.2026.0117"});
        fresh.apply(&mut broken);
        assert_eq!(broken["hetu"], "010190-999K");
        assert_eq!(broken["oid"], "1.2.246.10.2012566.13.2026.0117");
    }
}
