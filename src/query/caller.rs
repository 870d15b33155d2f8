//! Who asks, and what that lets a query return: the caller's grants made concrete per
//! registry ([`Shape`]), the purpose check, row filters, and the trace of personal values
//! returned (for the audit).

use super::error::{QueryError, QueryResult};
use super::view::View;
use crate::access::{Grant, Operation, Principal};
use crate::model::{FieldRule, Lineage, Record, RecordAccess, RecordJson, Registry, Sensitivity};
use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

/// Personal values a request returned: which records, which fields.
#[derive(Debug, Default, Clone)]
pub struct Trace {
    /// `registry:key`.
    pub records: Vec<String>,
    pub fields: BTreeSet<&'static str>,
    /// Count the records instead of listing them (an export: its audit entry names its scope).
    pub summary: bool,
    pub counted: u64,
}

/// The caller of a request. Without a principal (a server run with `--insecure-no-auth`, or
/// the service's own tools) everything is granted in full.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub principal: Option<Arc<Principal>>,
    /// `X-Purpose`, decoded.
    pub purpose: Option<String>,
    pub trace: Arc<Mutex<Trace>>,
    /// Set when the request runs out of time or its client goes away.
    pub cancel: super::Cancel,
}

/// How a request may return one registry's records: the rule of each field (and the key),
/// the projection asked for, the rows visible.
#[derive(Debug, Clone)]
pub struct Shape {
    pub registry: Registry,
    pub access: Option<RecordAccess>,
    /// Field indices to return; None: every visible field.
    pub only: Option<Vec<usize>>,
    /// Districts whose records are visible; None: all.
    pub rows: Option<HashSet<String>>,
    /// Names of the personal or sensitive fields these records are returned with.
    personal: Vec<&'static str>,
    /// The request's cancellation (the caller's).
    pub cancel: super::Cancel,
}

impl Shape {
    /// The personal or sensitive fields (and `id`, `extras`) records are returned with.
    pub fn personal(&self) -> &[&'static str] {
        &self.personal
    }

    /// Whether a record is among the rows the caller may see.
    pub fn sees(&self, record: &Record) -> bool {
        self.rows.as_ref().is_none_or(|rows| record.district().is_some_and(|d| rows.contains(d)))
    }

    /// Whether a key of a registry whose keys name their district is among the visible rows
    /// (credit records' and licences' keys do not: pass them, and check the record).
    pub fn sees_key(&self, key: &str) -> bool {
        match (&self.rows, self.registry.district_of_key(key)) {
            (None, _) => true,
            (Some(rows), Some(d)) => rows.contains(d),
            (Some(_), None) => !matches!(self.registry, Registry::Citizens | Registry::Entities | Registry::Parcels),
        }
    }

    /// The rule of a field by name (`id` included).
    pub fn rule(&self, field: &str) -> FieldRule {
        let Some(a) = &self.access else { return FieldRule::Full };
        if field == "id" {
            return a.id;
        }
        self.registry.schema().field_index(field).map_or(FieldRule::Hidden, |i| a.fields[i])
    }
}

fn rule(grant: &Grant, name: &str) -> FieldRule {
    grant.fields.get(name).map_or(FieldRule::Hidden, |a| FieldRule::from(*a))
}

impl Caller {
    /// The service's own reads: everything, in full.
    pub fn unrestricted() -> Caller {
        Caller::default()
    }

    pub fn is_admin(&self) -> bool {
        self.principal.as_ref().is_none_or(|p| p.department.role == crate::access::Role::Admin)
    }

    /// Whether the caller has a grant on a registry, and whether it sees only some rows.
    pub fn grant_on(&self, registry: Registry) -> Option<bool> {
        match &self.principal {
            None => Some(false),
            Some(p) => p.grants.get(&registry).map(|g| g.rows.is_some()),
        }
    }

    /// The caller's grant on a registry: Ok(None) when unrestricted.
    fn grant(&self, registry: Registry) -> QueryResult<Option<&Grant>> {
        match &self.principal {
            None => Ok(None),
            Some(p) => p
                .grants
                .get(&registry)
                .map(Some)
                .ok_or_else(|| QueryError::NotGranted(format!("{} has no grant on {registry}", p.department.name))),
        }
    }

    /// Checks that the caller may run `op` on `registry` and returning `fields` (None: every
    /// visible field) — a field it may not see is refused by name — and that a purpose it
    /// declared is given when personal values would be returned. `by_key`: the records are
    /// asked for by key, so the key is returned in full whatever the grant.
    pub fn shape<'a>(
        &self,
        registry: Registry,
        op: Operation,
        fields: Option<impl IntoIterator<Item = &'a str>>,
        by_key: bool,
    ) -> QueryResult<Shape> {
        let grant = self.grant(registry)?;
        if let Some(g) = grant
            && !g.operations.contains(&op)
        {
            return Err(QueryError::NotGranted(
                format!("the grant on {registry} does not allow {op:?}").to_lowercase(),
            ));
        }
        let only = super::records::projection(registry.schema(), fields)?;
        self.shape_with(registry, grant, only, by_key)
    }

    /// The shape of records linked to those asked for (relations, profiles): the registry's
    /// grant without an operation; None when the caller has no grant on it.
    pub fn related(&self, registry: Registry) -> QueryResult<Option<Shape>> {
        match self.grant(registry) {
            Ok(grant) => self.shape_with(registry, grant, None, false).map(Some),
            Err(QueryError::NotGranted(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn shape_with(
        &self,
        registry: Registry,
        grant: Option<&Grant>,
        only: Option<Vec<usize>>,
        by_key: bool,
    ) -> QueryResult<Shape> {
        let schema = registry.schema();
        let access = grant.map(|g| RecordAccess {
            id: if by_key { FieldRule::Full } else { rule(g, "id") },
            fields: schema.fields.iter().map(|f| rule(g, f.name)).collect(),
            extras: rule(g, "extras"),
        });
        if let (Some(a), Some(only)) = (&access, &only) {
            let refused: Vec<&str> =
                only.iter().filter(|&&i| a.fields[i] == FieldRule::Hidden).map(|&i| schema.fields[i].name).collect();
            if !refused.is_empty() {
                return Err(QueryError::FieldNotGranted(refused.into_iter().map(String::from).collect()));
            }
        }
        let returned = |i: usize| {
            only.as_ref().is_none_or(|o| o.contains(&i))
                && access.as_ref().is_none_or(|a| a.fields[i] != FieldRule::Hidden)
        };
        let mut personal: Vec<&'static str> = (0..schema.fields.len())
            .filter(|&i| returned(i) && schema.fields[i].sensitivity != Sensitivity::Public)
            .map(|i| schema.fields[i].name)
            .collect();
        if !by_key
            && schema.key.sensitivity != Sensitivity::Public
            && access.as_ref().is_none_or(|a| a.id != FieldRule::Hidden)
        {
            personal.push("id");
        }
        if only.is_none() && access.as_ref().is_none_or(|a| a.extras != FieldRule::Hidden) {
            personal.push("extras");
        }
        if !personal.is_empty() {
            self.check_purpose()?;
        }
        let rows = grant.and_then(|g| g.rows.as_ref()).map(|r| r.district.iter().cloned().collect());
        Ok(Shape { registry, access, only, rows, personal, cancel: self.cancel.clone() })
    }

    /// Personal values are read only for a purpose the department declared.
    pub fn check_purpose(&self) -> QueryResult<()> {
        let Some(p) = &self.principal else { return Ok(()) };
        match &self.purpose {
            None => Err(QueryError::PurposeRequired),
            Some(purpose) if p.department.purposes.iter().any(|d| d == purpose) => Ok(()),
            Some(purpose) => Err(QueryError::PurposeNotAllowed(format!(
                "{purpose:?} is not a purpose {} declared ({})",
                p.department.name,
                p.department.purposes.join(", ")
            ))),
        }
    }

    /// Refuses a search or filter on a field the caller does not see in full (it would be
    /// an oracle for a masked value).
    pub fn require_full(&self, shape: &Shape, fields: &[&str]) -> QueryResult<()> {
        let refused: Vec<String> =
            fields.iter().filter(|f| shape.rule(f) != FieldRule::Full).map(|f| f.to_string()).collect();
        if refused.is_empty() { Ok(()) } else { Err(QueryError::FieldNotGranted(refused)) }
    }

    /// A record as the caller may see it; its personal values are noted for the audit.
    pub fn render<'a>(&self, view: &'a View, shape: &'a Shape, record: &'a Record) -> RecordJson<'a> {
        self.render_in(view.lineage(record.load_id), shape, record)
    }

    /// [`Caller::render`] with the lineage of the record's load given.
    pub fn render_in<'a>(&self, lineage: Option<&'a Lineage>, shape: &'a Shape, record: &'a Record) -> RecordJson<'a> {
        if self.principal.is_some() && !shape.personal.is_empty() {
            let mut t = self.trace.lock().unwrap_or_else(|e| e.into_inner());
            if t.summary {
                t.counted += 1;
            } else {
                t.records.push(format!("{}:{}", record.registry, record.id));
            }
            t.fields.extend(shape.personal.iter().copied());
        }
        RecordJson { record, only: shape.only.as_deref(), lineage, access: shape.access.as_ref() }
    }

    /// The key of a linked record as the caller may see it (None: hidden).
    pub fn render_key(&self, shape: &Shape, key: &str) -> Option<String> {
        match shape.rule("id") {
            FieldRule::Full => {
                if self.principal.is_some() && shape.registry.schema().key.sensitivity != Sensitivity::Public {
                    let mut t = self.trace.lock().unwrap_or_else(|e| e.into_inner());
                    t.records.push(format!("{}:{key}", shape.registry));
                    t.fields.insert("id");
                }
                Some(key.to_string())
            }
            FieldRule::Masked => Some(shape.registry.schema().key.mask.text(key)),
            FieldRule::Hidden => None,
        }
    }

    /// The personal values this request returned.
    pub fn traced(&self) -> Trace {
        self.trace.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
