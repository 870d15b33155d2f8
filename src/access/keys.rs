//! `jichu keys add | list | revoke`: API keys in the access file. A key is 256 random bits,
//! shown once; the file keeps only its SHA-256. The file is edited in place (toml_edit), so
//! comments and the departments written by hand stay as they were. These work whether or not
//! a server runs: a running server re-reads the file when it changes.

use super::key_hash;
use super::policy::{Policy, Role};
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

fn read(path: &Path) -> Result<DocumentMut> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(path)(e)),
    };
    text.parse::<DocumentMut>().map_err(|e| Error::Invalid(format!("access file {}: {e}", path.display())))
}

/// Writes the document if it still checks as a policy (never leaves a file the server would
/// refuse), through a temporary file, readable by its owner only.
fn write(path: &Path, doc: &DocumentMut) -> Result<()> {
    let text = doc.to_string();
    Policy::parse(&text).map_err(|m| Error::Invalid(format!("access file {}: {m}", path.display())))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    }
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).map_err(Error::io(&tmp))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(Error::io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(Error::io(path))
}

fn array<'d>(doc: &'d mut DocumentMut, name: &str) -> &'d mut ArrayOfTables {
    if doc.get(name).and_then(Item::as_array_of_tables).is_none() {
        doc.insert(name, Item::ArrayOfTables(ArrayOfTables::new()));
    }
    doc[name].as_array_of_tables_mut().expect("just made an array of tables")
}

/// A new key for `department` (declared with `role` if it is not yet): returns `(key id, key)`.
/// The key is shown to the caller once; only its SHA-256 is stored.
pub fn add(path: &Path, department: &str, role: Role) -> Result<(String, String)> {
    let mut doc = read(path)?;
    let departments = array(&mut doc, "department");
    let known = departments.iter().any(|d| d.get("name").and_then(|n| n.as_str()) == Some(department));
    if !known {
        let mut d = Table::new();
        d["name"] = value(department);
        d["role"] = value(match role {
            Role::Admin => "admin",
            Role::Department => "department",
        });
        departments.push(d);
    }
    let secret: [u8; 32] = rand::random();
    let key = format!("jichu_{}", hex::encode(secret));
    let id = format!("k{}", hex::encode(rand::random::<[u8; 6]>()));
    let mut k = Table::new();
    k["id"] = value(id.as_str());
    k["department"] = value(department);
    k["sha256"] = value(hex::encode(key_hash(&key)));
    k["created"] = value(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    array(&mut doc, "key").push(k);
    write(path, &doc)?;
    Ok((id, key))
}

/// Revokes a key by id (it stays in the file, marked with when it was revoked).
pub fn revoke(path: &Path, key_id: &str) -> Result<()> {
    let mut doc = read(path)?;
    let keys = array(&mut doc, "key");
    let k = keys
        .iter_mut()
        .find(|k| k.get("id").and_then(|i| i.as_str()) == Some(key_id))
        .ok_or_else(|| Error::Invalid(format!("no key {key_id} in {}", path.display())))?;
    if k.get("revoked").is_none() {
        k["revoked"] = value(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    write(path, &doc)
}

/// A key as `jichu keys list` shows it: never its secret.
#[derive(Debug, serde::Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub department: String,
    pub role: Role,
    pub created: DateTime<Utc>,
    pub revoked: Option<DateTime<Utc>>,
    pub last_used: Option<DateTime<Utc>>,
}

/// Every key in the file, with when a server last saw it used.
pub fn list(path: &Path) -> Result<Vec<KeyInfo>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path)(e)),
    };
    let policy = Policy::parse(&text).map_err(|m| Error::Invalid(format!("access file {}: {m}", path.display())))?;
    let used = read_last_used(&last_used_path(path));
    Ok(policy
        .file
        .keys
        .iter()
        .map(|k| KeyInfo {
            id: k.id.clone(),
            department: k.department.clone(),
            role: policy.file.departments.iter().find(|d| d.name == k.department).map_or(Role::Department, |d| d.role),
            created: k.created,
            revoked: k.revoked,
            last_used: used.get(&k.id).copied(),
        })
        .collect())
}

/// Where a server records when keys were last used: beside the access file.
pub fn last_used_path(access_file: &Path) -> PathBuf {
    access_file.with_extension("last-used.json")
}

pub fn read_last_used(path: &Path) -> BTreeMap<String, DateTime<Utc>> {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_added_listed_and_revoked_keeping_the_file_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.toml");
        std::fs::write(
            &path,
            "# 人社局's grants, written by hand\n[[department]]\nname = \"市人社局\"\nrole = \"department\"\n",
        )
        .unwrap();
        let (id, key) = add(&path, "市人社局", Role::Department).unwrap();
        let (admin_id, _) = add(&path, "信息中心", Role::Admin).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# 人社局's grants, written by hand"), "{text}");
        assert!(!text.contains(&key), "the key itself is never stored");
        let listed = list(&path).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed.iter().find(|k| k.id == admin_id).unwrap().role, Role::Admin);
        let policy = Policy::parse(&text).unwrap();
        assert_eq!(policy.by_hash.get(&key_hash(&key)).unwrap().key_id, id);
        revoke(&path, &id).unwrap();
        let policy = Policy::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(!policy.by_hash.contains_key(&key_hash(&key)));
        assert!(revoke(&path, "nope").is_err());
    }
}
