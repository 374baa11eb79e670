//! Concept maps: Apotti labels ⇄ Kanta codes, as data files beside the mappings.
//!
//! A region swaps in the real THL codes by editing these files, never Rust. A map with a
//! `system` translates a label to a coding `{code, system, display}`; one without translates
//! a label to a plain code string (header status, unit OIDs). Lookups are hash maps built once
//! at load, with the Fx hash: the keys are our own labels and codes, short, and a record looks
//! several up (SipHash, the default, cost more than the rest of a look-up). Each entry's Kanta
//! value is built once too, with its JSON text: a document borrows it and copies the text.

use rustc_hash::FxHashMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::json_tree::Fixed;

/// One concept map file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConceptMapFile {
    /// The id mapping rules use (`concept = "..."`).
    pub id: String,
    /// What the map is for.
    #[serde(default)]
    pub title: String,
    /// The Kanta code system; without it codes are plain strings.
    pub system: Option<String>,
    /// The translations.
    #[serde(default)]
    pub entry: Vec<EntryFile>,
}

/// One translation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryFile {
    /// The Apotti label (`*_C_NAME` value, an id, or a prefix).
    pub label: String,
    /// The Kanta code.
    pub code: String,
    /// The coding's display text; the label when absent.
    pub display: Option<String>,
    /// For `prefix-number` group keys: how many digits the number has on the Apotti side
    /// (`3X10D_07` has 2); 1 means no padding.
    pub number_width: Option<usize>,
}

/// A compiled concept map.
#[derive(Debug)]
pub struct ConceptMap {
    /// Id.
    pub id: String,
    /// Code system, if the codes are codings.
    pub system: Option<String>,
    /// The entries in file order.
    pub entries: Vec<EntryFile>,
    /// The Kanta value of each entry, by entry index, built (and written as text) at load.
    kanta_values: Vec<Fixed>,
    by_label: FxHashMap<String, usize>,
    by_code: FxHashMap<String, Vec<usize>>,
}

/// Why a translation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConceptError {
    /// The label has no entry.
    NoTranslation,
    /// The code has no entry.
    UnknownCode,
    /// The code maps back to several labels.
    Ambiguous,
    /// The coding's system is not the map's.
    WrongSystem,
    /// The value is not of the expected shape.
    Shape,
}

impl ConceptMap {
    /// Builds the lookup tables; a duplicate label is an error.
    ///
    /// # Errors
    /// Names the duplicated label.
    pub fn compile(file: ConceptMapFile) -> Result<Self, String> {
        let mut by_label = FxHashMap::default();
        let mut by_code: FxHashMap<String, Vec<usize>> = FxHashMap::default();
        for (index, entry) in file.entry.iter().enumerate() {
            if by_label.insert(entry.label.clone(), index).is_some() {
                return Err(format!("label '{}' appears twice", entry.label));
            }
            by_code.entry(entry.code.clone()).or_default().push(index);
        }
        let kanta_values = file
            .entry
            .iter()
            .map(|entry| Fixed::new(Self::build_kanta_value(file.system.as_deref(), entry)))
            .collect();
        Ok(Self {
            id: file.id,
            system: file.system,
            entries: file.entry,
            kanta_values,
            by_label,
            by_code,
        })
    }

    /// The entry for a label.
    #[must_use]
    pub fn entry_for_label(&self, label: &str) -> Option<&EntryFile> {
        self.by_label.get(label).map(|&i| &self.entries[i])
    }

    /// Label → Kanta value (a coding, or the plain code): the map's own, which documents
    /// borrow.
    ///
    /// # Errors
    /// When the value is not a string or has no translation.
    pub fn forward(&self, value: &Value) -> Result<&Fixed, ConceptError> {
        let label = value.as_str().ok_or(ConceptError::Shape)?;
        let index = *self
            .by_label
            .get(label)
            .ok_or(ConceptError::NoTranslation)?;
        Ok(&self.kanta_values[index])
    }

    /// The Kanta value of the entry at `index` (of [`Self::entries`]), the map's own.
    #[must_use]
    pub fn kanta_value_at(&self, index: usize) -> &Fixed {
        &self.kanta_values[index]
    }

    /// A coding `{code, system, display}` when the map has a system, else the plain code.
    fn build_kanta_value(system: Option<&str>, entry: &EntryFile) -> Value {
        match system {
            Some(system) => {
                let mut coding = Map::with_capacity(3);
                coding.insert("code".into(), Value::String(entry.code.clone()));
                coding.insert("system".into(), Value::String(system.to_owned()));
                coding.insert(
                    "display".into(),
                    Value::String(entry.display.clone().unwrap_or_else(|| entry.label.clone())),
                );
                Value::Object(coding)
            }
            None => Value::String(entry.code.clone()),
        }
    }

    /// The entry behind a Kanta value (a coding, or a plain code).
    ///
    /// # Errors
    /// When the code is unknown, ambiguous, or of another system.
    pub fn entry_for_kanta(&self, value: &Value) -> Result<&EntryFile, ConceptError> {
        let code = match &self.system {
            Some(system) => {
                if value.get("system").and_then(Value::as_str) != Some(system.as_str()) {
                    return Err(ConceptError::WrongSystem);
                }
                value.get("code").and_then(Value::as_str)
            }
            None => value.as_str(),
        }
        .ok_or(ConceptError::Shape)?;
        match self.by_code.get(code).map(Vec::as_slice) {
            Some([only]) => Ok(&self.entries[*only]),
            Some([]) | None => Err(ConceptError::UnknownCode),
            Some(_) => Err(ConceptError::Ambiguous),
        }
    }

    /// Kanta value → label.
    ///
    /// # Errors
    /// As [`Self::entry_for_kanta`].
    pub fn backward(&self, value: &Value) -> Result<Value, ConceptError> {
        self.entry_for_kanta(value)
            .map(|entry| Value::String(entry.label.clone()))
    }

    /// Codes that map back to more than one label.
    #[must_use]
    pub fn ambiguous_codes(&self) -> Vec<&str> {
        let mut codes: Vec<&str> = self
            .by_code
            .iter()
            .filter(|(_, labels)| labels.len() > 1)
            .map(|(code, _)| code.as_str())
            .collect();
        codes.sort_unstable();
        codes
    }

    /// Does the map translate this label?
    #[must_use]
    pub fn has_label(&self, label: &str) -> bool {
        self.by_label.contains_key(label)
    }

    /// Does the map know this code?
    #[must_use]
    pub fn has_code(&self, code: &str) -> bool {
        self.by_code.contains_key(code)
    }
}

#[cfg(test)]
mod tests {
    use super::ConceptMap;
    use crate::mapping::{MappingSet, MappingSource};
    use crate::profiles::{ProfileRegistry, ProfileSource};

    /// The values built once at load are the ones building each entry's value gives.
    #[test]
    fn prebuilt_kanta_values_are_the_built_ones() {
        let profiles = ProfileRegistry::load(&ProfileSource::Embedded).expect("profiles");
        let set = MappingSet::load(&MappingSource::Embedded, &profiles).expect("mappings");
        for map in &set.concepts {
            for (index, entry) in map.entries.iter().enumerate() {
                let built = ConceptMap::build_kanta_value(map.system.as_deref(), entry);
                assert_eq!(
                    map.kanta_value_at(index).value(),
                    &built,
                    "{} {}",
                    map.id,
                    entry.label
                );
                let label = serde_json::Value::String(entry.label.clone());
                assert_eq!(
                    map.forward(&label).map(crate::json_tree::Fixed::value),
                    Ok(&built),
                    "{} {}",
                    map.id,
                    entry.label
                );
            }
        }
    }
}
