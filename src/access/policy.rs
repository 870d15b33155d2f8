//! The access file (`access_file`, default `DATA_DIR/access.toml`): departments with their
//! role, purposes, rate limit and grants per registry, and the API keys (their SHA-256 only).
//!
//! ```toml
//! [[department]]
//! name = "市人社局"
//! role = "department"                     # or "admin"
//! purposes = ["社保待遇审核", "就业服务"]
//! rate_limit = { per_second = 200, burst = 400 }
//! [department.registries.citizens]
//! operations = ["get", "lookup", "relations", "profile", "search", "spatial"]
//! fields = { id = "full", name = "full", phone = "masked", address = "masked" }
//! rows = { district = ["350203", "350206"] }
//!
//! [[key]]
//! id = "k3f9a0c12d4e1"
//! department = "市人社局"
//! sha256 = "…"                             # of the key; the key itself is never stored
//! created = "2026-12-01T08:00:00Z"
//! # revoked = "2026-12-02T08:00:00Z"
//! ```

use crate::model::{FieldRule, Registry};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// What a department may do besides reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads what its grants allow.
    Department,
    /// Also manages loads, keys and the audit.
    Admin,
}

/// The reads a grant may allow on a registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Get,
    Lookup,
    Relations,
    Profile,
    Search,
    Spatial,
    /// A record's earlier versions, and reads as of a past moment.
    History,
    /// The change feed.
    Changes,
    /// Whole registries, and the records changed since a feed position.
    Export,
}

/// How a granted field is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Full,
    Masked,
}

impl From<Access> for FieldRule {
    fn from(a: Access) -> FieldRule {
        match a {
            Access::Full => FieldRule::Full,
            Access::Masked => FieldRule::Masked,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Which rows of a registry a department sees.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rows {
    /// County-level GB/T 2260 codes.
    pub district: BTreeSet<String>,
}

/// A department's grant on one registry.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    #[serde(default)]
    pub operations: BTreeSet<Operation>,
    /// Field name (or `id`, `extras`) → access; a field not listed is not visible.
    #[serde(default)]
    pub fields: BTreeMap<String, Access>,
    pub rows: Option<Rows>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Department {
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub purposes: Vec<String>,
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub registries: BTreeMap<String, Grant>,
}

/// A key, as the file keeps it: its id, department, SHA-256, when created and revoked.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub id: String,
    pub department: String,
    pub sha256: String,
    pub created: DateTime<Utc>,
    pub revoked: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessFile {
    #[serde(default, rename = "department")]
    pub departments: Vec<Department>,
    #[serde(default, rename = "key")]
    pub keys: Vec<KeyRecord>,
}

/// A department's grants checked against the model: registries by enum, grants by registry.
#[derive(Debug)]
pub struct Principal {
    pub key_id: String,
    pub department: Arc<Department>,
    pub grants: HashMap<Registry, Grant>,
}

/// The access file, checked and indexed by key hash.
#[derive(Debug, Default)]
pub struct Policy {
    pub file: AccessFile,
    /// SHA-256 of a live key → the caller it makes.
    pub by_hash: HashMap<[u8; 32], Arc<Principal>>,
}

/// The 1-based line of a byte offset in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

impl Policy {
    /// Parses and checks an access file's text; the error names the line.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let file: AccessFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| line_of(text, s.start));
            format!("line {line}: {}", e.message())
        })?;
        let at = |needle: &str| text.find(needle).map_or(0, |o| line_of(text, o));
        Self::check(file).map_err(|(needle, message)| format!("line {}: {message}", at(&needle)))
    }

    /// Checks names against the model; an error carries a text to find its line by.
    fn check(file: AccessFile) -> Result<Policy, (String, String)> {
        let mut departments: HashMap<&str, Arc<Department>> = HashMap::new();
        for d in &file.departments {
            if d.name.trim().is_empty() {
                return Err(("[[department]]".into(), "a department needs a name".into()));
            }
            if departments.insert(&d.name, Arc::new(d.clone())).is_some() {
                return Err((d.name.clone(), format!("department {:?} is declared twice", d.name)));
            }
            if let Some(r) = d.rate_limit
                && (r.per_second == 0 || r.burst == 0)
            {
                return Err((d.name.clone(), format!("{}: rate_limit needs per_second and burst above 0", d.name)));
            }
            for (registry, grant) in &d.registries {
                let r: Registry = registry.parse().map_err(|m: String| (format!("registries.{registry}"), m))?;
                let schema = r.schema();
                for field in grant.fields.keys() {
                    if field != "id" && field != "extras" && schema.field_index(field).is_none() {
                        return Err((
                            format!("{field} ="),
                            format!("{}: {registry} has no field `{field}` (fields: id, extras, {})", d.name, {
                                let names: Vec<&str> = schema.fields.iter().map(|f| f.name).collect();
                                names.join(", ")
                            }),
                        ));
                    }
                }
                if let Some(rows) = &grant.rows
                    && let Some(bad) =
                        rows.district.iter().find(|c| c.len() != 6 || !c.bytes().all(|b| b.is_ascii_digit()))
                {
                    return Err((bad.clone(), format!("{}: district {bad:?} is not a 6-digit GB/T 2260 code", d.name)));
                }
            }
        }
        let mut by_hash = HashMap::new();
        let mut ids = std::collections::HashSet::new();
        for k in &file.keys {
            let department = departments.get(k.department.as_str()).ok_or_else(|| {
                (k.id.clone(), format!("key {} names no declared department {:?}", k.id, k.department))
            })?;
            let hash = decode_hex32(&k.sha256)
                .ok_or_else(|| (k.id.clone(), format!("key {}: sha256 must be 64 hex digits", k.id)))?;
            if !ids.insert(k.id.clone()) {
                return Err((k.id.clone(), format!("key id {} is used twice", k.id)));
            }
            if k.revoked.is_some() {
                continue;
            }
            let grants = department
                .registries
                .iter()
                .filter_map(|(name, g)| name.parse::<Registry>().ok().map(|r| (r, g.clone())))
                .collect();
            by_hash.insert(hash, Arc::new(Principal { key_id: k.id.clone(), department: department.clone(), grants }));
        }
        Ok(Policy { file, by_hash })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[department]]
name = "市人社局"
role = "department"
purposes = ["社保待遇审核"]
rate_limit = { per_second = 200, burst = 400 }
[department.registries.citizens]
operations = ["get", "lookup"]
fields = { id = "full", name = "full", phone = "masked" }
rows = { district = ["350203"] }

[[key]]
id = "k1"
department = "市人社局"
sha256 = "0000000000000000000000000000000000000000000000000000000000000001"
created = "2026-12-01T08:00:00Z"
"#;

    #[test]
    fn a_good_file_compiles_and_bad_ones_name_their_line() {
        let p = Policy::parse(FILE).unwrap();
        assert_eq!(p.by_hash.len(), 1);
        let who = p.by_hash.values().next().unwrap();
        assert_eq!(who.grants[&Registry::Citizens].fields["phone"], Access::Masked);
        let bad_field = FILE.replace("phone = \"masked\"", "shoe = \"masked\"");
        let e = Policy::parse(&bad_field).unwrap_err();
        assert!(e.starts_with("line 9:") && e.contains("shoe"), "{e}");
        let bad_access = FILE.replace("phone = \"masked\"", "phone = \"partial\"");
        let e = Policy::parse(&bad_access).unwrap_err();
        assert!(e.starts_with("line 9:"), "{e}");
        let bad_dept = FILE.replace("department = \"市人社局\"", "department = \"别处\"");
        assert!(Policy::parse(&bad_dept).unwrap_err().contains("别处"));
        let revoked = FILE.replace(
            "created = \"2026-12-01T08:00:00Z\"",
            "created = \"2026-12-01T08:00:00Z\"\nrevoked = \"2026-12-02T08:00:00Z\"",
        );
        assert!(Policy::parse(&revoked).unwrap().by_hash.is_empty());
    }
}
