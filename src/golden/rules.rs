//! Survivorship rules: per registry and field, the rules tried in order until one yields a
//! value. Declared in a TOML file (`survivorship_file`, default `DATA_DIR/survivorship.toml`):
//!
//! ```toml
//! [citizens]
//! name  = ["source:市公安局", "most_recent"]   # 公安 is the authority; otherwise the newest
//! phone = ["most_recent"]
//! ```
//!
//! A field the file does not name takes `most_recent` (the newest non-empty value wins).

use crate::error::{Error, Result};
use crate::model::Registry;
use std::path::Path;

/// One survivorship rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// That source's value.
    Source(String),
    /// The newest contribution's value.
    MostRecent,
    /// The value most sources agree on; ties go to the newest.
    MostFrequent,
}

impl Rule {
    /// The rule as the file and `explain` write it.
    pub fn name(&self) -> String {
        match self {
            Rule::Source(s) => format!("source:{s}"),
            Rule::MostRecent => "most_recent".into(),
            Rule::MostFrequent => "most_frequent".into(),
        }
    }
}

impl std::str::FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Rule, String> {
        match s.trim() {
            "most_recent" => Ok(Rule::MostRecent),
            "most_frequent" => Ok(Rule::MostFrequent),
            s => match s.strip_prefix("source:") {
                Some(name) if !name.trim().is_empty() => Ok(Rule::Source(name.trim().to_string())),
                _ => Err(format!("unknown rule `{s}`: expected `source:NAME`, `most_recent` or `most_frequent`")),
            },
        }
    }
}

const DEFAULT: &[Rule] = &[Rule::MostRecent];

/// The rules of every registry's fields.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rules {
    /// By registry (its byte), then field index: the field's rules; empty or absent:
    /// [`Rule::MostRecent`]. (A load asks for every field of every merged row.)
    fields: Vec<Vec<Vec<Rule>>>,
}

impl Rules {
    /// Parses a survivorship file's text; unknown registries, fields and rules are errors that
    /// name them.
    pub fn parse(text: &str) -> std::result::Result<Rules, String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.message().to_string())?;
        let mut fields: Vec<Vec<Vec<Rule>>> = vec![Vec::new(); Registry::ALL.len() + 1];
        for (registry_name, per_field) in &table {
            let registry: Registry = registry_name.parse()?;
            let schema = registry.schema();
            let per_field = per_field.as_table().ok_or_else(|| format!("[{registry_name}] must be a table"))?;
            for (field, rules) in per_field {
                let i = schema.field_index(field).ok_or_else(|| {
                    format!("{registry_name} has no field `{field}` (the key is not chosen by rules)")
                })?;
                let list =
                    rules.as_array().ok_or_else(|| format!("{registry_name}.{field} must be a list of rules"))?;
                let rules = list
                    .iter()
                    .map(|r| r.as_str().ok_or_else(|| format!("{registry_name}.{field}: a rule is a string"))?.parse())
                    .collect::<std::result::Result<Vec<Rule>, String>>()?;
                if rules.is_empty() {
                    return Err(format!("{registry_name}.{field} names no rule"));
                }
                let per = &mut fields[registry as usize];
                if per.len() <= i {
                    per.resize(schema.fields.len().max(i + 1), Vec::new());
                }
                per[i] = rules;
            }
        }
        Ok(Rules { fields })
    }

    /// The rules in `path`; the defaults when there is no such file.
    pub fn load(path: &Path) -> Result<Rules> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                Rules::parse(&text).map_err(|m| Error::Invalid(format!("survivorship file {}: {m}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Rules::default()),
            Err(e) => Err(Error::io(path)(e)),
        }
    }

    /// The rules of one field, in the order they are tried.
    pub fn of(&self, registry: Registry, field: usize) -> &[Rule] {
        match self.fields.get(registry as usize).and_then(|f| f.get(field)) {
            Some(rules) if !rules.is_empty() => rules,
            _ => DEFAULT,
        }
    }

    /// The field's authority: the source its first `source:` rule names.
    pub fn authority(&self, registry: Registry, field: usize) -> Option<&str> {
        self.of(registry, field).iter().find_map(|r| match r {
            Rule::Source(s) => Some(s.as_str()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_file() {
        let rules = Rules::parse(
            "[citizens]\nname = [\"source:市公安局\", \"most_recent\"]\nphone = [\"most_frequent\"]\n[entities]\nname = [\"source:市市场监管局\"]\n",
        )
        .unwrap();
        let name = Registry::Citizens.schema().field_index("name").unwrap();
        assert_eq!(rules.of(Registry::Citizens, name), [Rule::Source("市公安局".into()), Rule::MostRecent]);
        assert_eq!(rules.authority(Registry::Citizens, name), Some("市公安局"));
        let address = Registry::Citizens.schema().field_index("address").unwrap();
        assert_eq!(rules.of(Registry::Citizens, address), [Rule::MostRecent]);
        assert_eq!(rules.authority(Registry::Citizens, address), None);
    }

    #[test]
    fn mistakes_are_named() {
        assert!(Rules::parse("[citizens]\nnmae = [\"most_recent\"]\n").unwrap_err().contains("nmae"));
        assert!(Rules::parse("[citizen]\nname = [\"most_recent\"]\n").is_err());
        assert!(Rules::parse("[citizens]\nname = [\"newest\"]\n").unwrap_err().contains("newest"));
        assert!(Rules::parse("[citizens]\nname = [\"source:\"]\n").is_err());
        assert!(Rules::parse("[citizens]\nname = []\n").is_err());
    }
}
