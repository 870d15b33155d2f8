//! The five base registries: their keys, fields, relations and identifier rules.
//!
//! The model is declarative: each registry module lists its fields once, and ingest, the
//! store, the catalogue and the API all read that list. Field names are the canonical names
//! that mapping specs and the API use.

pub mod citizens;
pub mod codes;
pub mod credit;
pub mod entities;
pub mod ids;
pub mod licences;
mod mask;
pub mod parcels;
mod record;

pub use mask::{Mask, mask_address, mask_name};
pub use record::{FieldRule, Lineage, Record, RecordAccess, RecordJson, value_json};

use jichu_ingest::{CheckedId, FieldDef, FieldKind, IdRejection, MappedRow, Reason};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// One of the five base registries. The discriminant is the registry's byte in store keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Registry {
    Citizens = 1,
    Entities = 2,
    Parcels = 3,
    Credit = 4,
    Licences = 5,
}

impl Registry {
    pub const ALL: [Registry; 5] =
        [Registry::Citizens, Registry::Entities, Registry::Parcels, Registry::Credit, Registry::Licences];

    pub fn as_str(self) -> &'static str {
        match self {
            Registry::Citizens => "citizens",
            Registry::Entities => "entities",
            Registry::Parcels => "parcels",
            Registry::Credit => "credit",
            Registry::Licences => "licences",
        }
    }

    pub fn from_byte(b: u8) -> Option<Registry> {
        Registry::ALL.into_iter().find(|r| *r as u8 == b)
    }

    pub fn schema(self) -> &'static Schema {
        match self {
            Registry::Citizens => &citizens::SCHEMA,
            Registry::Entities => &entities::SCHEMA,
            Registry::Parcels => &parcels::SCHEMA,
            Registry::Credit => &credit::SCHEMA,
            Registry::Licences => &licences::SCHEMA,
        }
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Registry {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Registry::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            format!("unknown registry `{s}`; the registries are citizens, entities, parcels, credit, licences")
        })
    }
}

/// Who may see a field: the catalogue publishes it so that consumers know what is personal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sensitivity {
    Public,
    /// Identifies or describes a natural person.
    Personal,
    /// Personal and especially protected (identity numbers, phone numbers, exact locations).
    Sensitive,
}

/// How the full-text index holds a field (see `crate::text`). Date fields are always date
/// filters, and code fields and references always exact filters; text fields say here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Search {
    /// Not indexed.
    None,
    /// Analysed into CJK bigrams: addresses, free text.
    Text,
    /// Analysed into bigrams, and a person's name (up to four characters) into its characters
    /// too: names, a person's searched by surname too.
    Name,
    /// An exact filter (status, kind…).
    Keyword,
}

/// A reference from a field to another registry's key: navigable both ways, as the holder's
/// record (forward) and as a relation edge keyed by the target (reverse).
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// Registries the reference may point to; a subject points to citizens or entities.
    pub target: Target,
    /// The relation's name seen from the record holding the reference (e.g. `holder`).
    pub forward: Relation,
    /// The relation's name seen from the referenced record (e.g. `licences`).
    pub reverse: Relation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Citizens,
    /// A citizen or an entity, told apart by the identifier's form.
    Subject,
}

/// The names of relation edges. The discriminant is the edge's byte in relation keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    LegalRep = 1,
    Represents = 2,
    Subject = 3,
    CreditRecords = 4,
    Holder = 5,
    Licences = 6,
}

impl Relation {
    pub fn from_byte(b: u8) -> Option<Relation> {
        use Relation::*;
        [LegalRep, Represents, Subject, CreditRecords, Holder, Licences].into_iter().find(|r| *r as u8 == b)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Relation::LegalRep => "legal_rep",
            Relation::Represents => "represents",
            Relation::Subject => "subject",
            Relation::CreditRecords => "credit_records",
            Relation::Holder => "holder",
            Relation::Licences => "licences",
        }
    }
}

/// A canonical field of a registry.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: FieldKind,
    pub required: bool,
    pub sensitivity: Sensitivity,
    pub link: Option<Link>,
    pub search: Search,
    /// The searchable field this one is indexed in (its own name unless grouped: a citizen's
    /// two addresses are searched as one `address`).
    pub search_as: &'static str,
    /// Its de-identified form, for callers granted it `masked`.
    pub mask: Mask,
    pub doc: &'static str,
}

impl Field {
    pub const fn new(name: &'static str, kind: FieldKind, doc: &'static str) -> Field {
        let search = match kind {
            FieldKind::Code(_) | FieldKind::Identifier(_) => Search::Keyword,
            _ => Search::None,
        };
        let mask = match kind {
            FieldKind::Identifier(_) => Mask::Identifier,
            FieldKind::Name => Mask::Name,
            FieldKind::Date | FieldKind::EndOfValidity => Mask::Year,
            FieldKind::Point => Mask::Location,
            _ => Mask::Withheld,
        };
        Field {
            name,
            kind,
            required: false,
            sensitivity: Sensitivity::Public,
            link: None,
            search,
            search_as: name,
            mask,
            doc,
        }
    }
    /// Masked as `mask` (an address, a phone) rather than by its kind.
    pub const fn masked_as(mut self, mask: Mask) -> Field {
        self.mask = mask;
        self
    }
    pub const fn required(mut self) -> Field {
        self.required = true;
        self
    }
    pub const fn personal(mut self) -> Field {
        self.sensitivity = Sensitivity::Personal;
        self
    }
    pub const fn sensitive(mut self) -> Field {
        self.sensitivity = Sensitivity::Sensitive;
        self
    }
    /// Searchable text (CJK bigrams).
    pub const fn text(mut self) -> Field {
        self.search = Search::Text;
        self
    }
    /// Searchable text, indexed in the searchable field `group` with others.
    pub const fn text_in(mut self, group: &'static str) -> Field {
        self.search = Search::Text;
        self.search_as = group;
        self
    }
    /// A searchable name (characters and bigrams).
    pub const fn name(mut self) -> Field {
        self.search = Search::Name;
        self
    }
    /// An exact filter.
    pub const fn keyword(mut self) -> Field {
        self.search = Search::Keyword;
        self
    }
    pub const fn link(mut self, target: Target, forward: Relation, reverse: Relation) -> Field {
        self.link = Some(Link { target, forward, reverse });
        self
    }
    pub fn def(&self) -> FieldDef {
        FieldDef { name: self.name, kind: self.kind, required: self.required }
    }
    /// The JSON type name the catalogue and the OpenAPI document show.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            FieldKind::Text | FieldKind::Name | FieldKind::Code(_) | FieldKind::Identifier(_) => "string",
            FieldKind::Date | FieldKind::EndOfValidity => "date",
            FieldKind::Decimal => "decimal",
            FieldKind::Number => "number",
            FieldKind::Point => "point",
            FieldKind::Geometry => "geometry",
        }
    }
}

/// Cross-field checks and derivations for one row, after every cell is valid.
pub type RowCheck = fn(&mut MappedRow) -> Result<(), (Reason, String)>;

/// A registry's declaration: its key and its fields, in stored order.
#[derive(Debug)]
pub struct Schema {
    pub registry: Registry,
    pub key: Field,
    pub fields: &'static [Field],
    pub row_check: Option<RowCheck>,
    pub doc: &'static str,
}

impl Schema {
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
    pub fn defs(&self) -> Vec<FieldDef> {
        self.fields.iter().map(Field::def).collect()
    }
    /// Fields holding references to other registries, with their index.
    pub fn links(&self) -> impl Iterator<Item = (usize, Link)> + '_ {
        self.fields.iter().enumerate().filter_map(|(i, f)| f.link.map(|l| (i, l)))
    }
    /// Canonicalises and checks a key given by a client (400 on a malformed one). A code that
    /// may be a genuine pilot code is looked up (it is absent unless a load allowed it).
    pub fn parse_key(&self, raw: &str) -> Result<String, String> {
        match self.key.kind {
            FieldKind::Identifier(check) => canonical_id(check, raw),
            _ => {
                let key = jichu_ingest::normalize_text(raw);
                if key.is_empty() || key.len() > 255 {
                    Err("must be 1 to 255 bytes".into())
                } else {
                    Ok(key.into_owned())
                }
            }
        }
    }
}

/// The canonical form of an identifier a client gives (a key, a filter value): valid, or well
/// formed and possibly a genuine pilot code (which the store holds only if a load allowed it).
pub fn canonical_id(check: jichu_ingest::IdCheck, raw: &str) -> Result<String, String> {
    match check(raw) {
        Ok(c) => Ok(c.id),
        Err(IdRejection { allowable: Some(id), .. }) => Ok(id),
        Err(r) => Err(r.message),
    }
}

// Identifier checks in the form ingest calls them.
pub(crate) fn check_resident_id(s: &str) -> Result<CheckedId, IdRejection> {
    ids::parse_resident_id(s)
        .map(|r| CheckedId { id: r.id, needs_review: false })
        .map_err(|e| IdRejection::new(e.to_string()))
}

pub(crate) fn check_credit_code(s: &str) -> Result<CheckedId, IdRejection> {
    credit_checked(ids::read_credit_code(s).map_err(|e| IdRejection::new(e.to_string()))?)
}

/// An organisation code (GB 11714), the key of an entities extract with
/// `key_kind = "organisation_code"`.
pub(crate) fn check_organisation_code(s: &str) -> Result<CheckedId, IdRejection> {
    ids::parse_organisation_code(s)
        .map(|id| CheckedId { id, needs_review: false })
        .map_err(|e| IdRejection::new(e.to_string()))
}

/// The key field of an extract keyed by organisation codes.
pub fn organisation_code_key() -> FieldDef {
    FieldDef { name: "id", kind: FieldKind::Identifier(check_organisation_code), required: true }
}

/// A well-formed credit code: valid, or refused — with the way to allow it when it may be a
/// genuine Fujian pilot code.
fn credit_checked(code: ids::CreditCode) -> Result<CheckedId, IdRejection> {
    match code.check_failure {
        None => Ok(CheckedId { id: code.id, needs_review: false }),
        Some(e) if code.may_be_fujian_pilot() => Err(IdRejection {
            message: format!(
                "{e}: a mistyped code, or one of the early Fujian pilot codes that fail their check; a genuine \
                 pilot code is allowed by listing it in the pilot_codes_file, or by \
                 accept_fujian_pilot_codes = true in the spec (loaded flagged for review)"
            ),
            allowable: Some(code.id),
        }),
        Some(e) => Err(IdRejection::new(e.to_string())),
    }
}

/// A subject: a resident identity number or a credit code. A refusal names the check that
/// failed for the kind of number it looks like.
pub(crate) fn check_subject(s: &str) -> Result<CheckedId, IdRejection> {
    let resident = match ids::parse_resident_id(s) {
        Ok(r) => return Ok(CheckedId { id: r.id, needs_review: false }),
        Err(e) => e,
    };
    match ids::read_credit_code(s) {
        Ok(code) if code.check_failure.is_none() || code.may_be_fujian_pilot() || !looks_resident(s) => {
            credit_checked(code)
        }
        _ if looks_resident(s) => Err(IdRejection::new(format!("(an identity number) {resident}"))),
        _ => Err(IdRejection::new(ids::IdError::NotASubject.to_string())),
    }
}

/// 15 or 18 characters, all digits but an 18th `X`: what an identity number looks like.
fn looks_resident(s: &str) -> bool {
    let s: String = jichu_ingest::normalize_text(s).chars().filter(|c| !c.is_whitespace()).collect();
    let b = s.as_bytes();
    matches!(b.len(), 15 | 18) && b[..b.len() - 1].iter().all(u8::is_ascii_digit)
}
