//! The mapping spec: one TOML file per department extract, saying how its columns map onto a
//! registry's canonical fields. The names here are a user-facing format: keep them.

use crate::coords::Crs;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A department's extract description. Only `registry`, `source` and `columns` are required.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `citizens`, `entities`, `parcels`, `credit` or `licences`.
    pub registry: String,
    /// The department that is the authority for this extract.
    pub source: String,
    #[serde(default)]
    pub encoding: TextEncoding,
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub crs: Crs,
    #[serde(default = "default_date_formats")]
    pub date_formats: Vec<String>,
    /// Keep columns that have no canonical field as extra attributes of the record.
    #[serde(default)]
    pub keep_unmapped: bool,
    #[serde(default = "default_null_values")]
    pub null_values: Vec<String>,
    /// `[min_lon, min_lat, max_lon, max_lat]`: the jurisdiction; points outside are invalid.
    pub extent: Option<[f64; 4]>,
    /// Words this extract writes for a validity without end, beyond [`OPEN_ENDED_VALUES`].
    #[serde(default)]
    pub open_ended_values: Vec<String>,
    /// Load credit codes that fail their check but may be early Fujian pilot codes, flagged
    /// `needs_review`, instead of rejecting them (`invalid_id`). Off by default: a mistyped code
    /// is far more common than a pilot code, and known pilot codes go in the allow-list file.
    #[serde(default)]
    pub accept_fujian_pilot_codes: bool,
    /// What the key column holds: the registry's key (default), or for entities the
    /// 9-character organisation code (GB 11714) of companies registered before 2015, which
    /// the loader resolves to the entity whose credit code embeds it.
    #[serde(default)]
    pub key_kind: KeyKind,
    /// Canonical field name → header in the extract.
    pub columns: BTreeMap<String, String>,
}

/// What every extract may write for a validity without end (an [`crate::FieldKind::EndOfValidity`]
/// field); a year-9999 date (`9999-12-31`) in one of the spec's formats means the same.
pub const OPEN_ENDED_VALUES: &[&str] = &["长期", "长期有效", "永久", "永久有效", "无固定期限", "无期限"];

/// The character encoding of an extract.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum TextEncoding {
    /// UTF-8; a byte-order mark is tolerated.
    #[default]
    #[serde(rename = "utf-8", alias = "utf8", alias = "UTF-8")]
    Utf8,
    #[serde(rename = "gb18030", alias = "GB18030")]
    Gb18030,
    #[serde(rename = "gbk", alias = "GBK", alias = "gb2312", alias = "GB2312")]
    Gbk,
}

impl TextEncoding {
    pub(crate) fn encoding(self) -> &'static encoding_rs::Encoding {
        match self {
            TextEncoding::Utf8 => encoding_rs::UTF_8,
            TextEncoding::Gb18030 => encoding_rs::GB18030,
            TextEncoding::Gbk => encoding_rs::GBK,
        }
    }
}

/// What an extract's key column holds.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// The registry's own key.
    #[default]
    Canonical,
    /// An entity's GB 11714 organisation code (characters 9–17 of its credit code).
    OrganisationCode,
}

/// How an extract relates to what the store already holds.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Upsert the rows given.
    #[default]
    Delta,
    /// The department's full set: records of this source absent from it are ended (marked,
    /// never erased).
    Snapshot,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Delta => "delta",
            Mode::Snapshot => "snapshot",
        }
    }
}

fn default_delimiter() -> String {
    ",".into()
}
fn default_date_formats() -> Vec<String> {
    vec!["%Y-%m-%d".into()]
}
fn default_null_values() -> Vec<String> {
    vec![String::new()]
}

impl Spec {
    /// Reads and checks a spec file. Field and header names are checked later, against the
    /// registry's schema and the file's header ([`crate::RowMapper::new`]).
    pub fn from_path(path: &Path) -> Result<Spec> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.into(), source })?;
        Self::parse(&text).map_err(|message| Error::Spec { path: path.into(), message })
    }

    /// Parses and checks a spec from TOML text.
    pub fn parse(text: &str) -> std::result::Result<Spec, String> {
        let spec: Spec = toml::from_str(text).map_err(|e| e.to_string())?;
        spec.check()?;
        Ok(spec)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.source.trim().is_empty() {
            return Err("`source` must name the department".into());
        }
        if self.delimiter.len() != 1 {
            return Err(format!("`delimiter` must be one ASCII character, got {:?}", self.delimiter));
        }
        if self.date_formats.is_empty() {
            return Err("`date_formats` must list at least one format".into());
        }
        for f in &self.date_formats {
            if chrono::format::StrftimeItems::new(f).any(|i| matches!(i, chrono::format::Item::Error)) {
                return Err(format!("`date_formats`: {f:?} is not a valid strftime format"));
            }
        }
        if let Some([min_lon, min_lat, max_lon, max_lat]) = self.extent {
            let ok = (-180.0..=180.0).contains(&min_lon)
                && (-180.0..=180.0).contains(&max_lon)
                && (-90.0..=90.0).contains(&min_lat)
                && (-90.0..=90.0).contains(&max_lat)
                && min_lon < max_lon
                && min_lat < max_lat;
            if !ok {
                return Err(format!(
                    "`extent` must be [min_lon, min_lat, max_lon, max_lat] on Earth, got {:?}",
                    self.extent
                ));
            }
        }
        if !self.columns.contains_key("id") {
            return Err("[columns] must map `id`".into());
        }
        Ok(())
    }

    pub fn delimiter_byte(&self) -> u8 {
        self.delimiter.as_bytes()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_unknown_keys_fail() {
        let spec = Spec::parse("registry = \"citizens\"\nsource = \"公安\"\n[columns]\nid = \"身份证\"\n").unwrap();
        assert_eq!(spec.encoding, TextEncoding::Utf8);
        assert_eq!(spec.mode, Mode::Delta);
        assert_eq!(spec.crs, Crs::Wgs84);
        assert_eq!(spec.date_formats, ["%Y-%m-%d"]);
        assert_eq!(spec.null_values, [""]);
        let err = Spec::parse("registry = \"citizens\"\nsource = \"x\"\nencodnig = \"gbk\"\n[columns]\nid = \"a\"\n")
            .unwrap_err();
        assert!(err.contains("encodnig"), "{err}");
        let err =
            Spec::parse("registry = \"citizens\"\nsource = \"x\"\nencoding = \"latin1\"\n[columns]\nid = \"a\"\n")
                .unwrap_err();
        assert!(err.contains("latin1"), "{err}");
    }

    #[test]
    fn spec_without_id_column_fails() {
        let err = Spec::parse("registry = \"citizens\"\nsource = \"x\"\n[columns]\nname = \"姓名\"\n").unwrap_err();
        assert!(err.contains("id"), "{err}");
    }
}
