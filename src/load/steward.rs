//! A data steward's decision on a review item (`POST /v1/review/{item}`): a contribution from
//! the source `steward` holding the chosen value of that one field, which the rules rank first
//! for it until a later load from the field's authority sends the same value. Written as a
//! load of its own (lineage, history and feed entries, undone whole if it fails).

use super::apply::{Written, write};
use super::golden::{Merged, Merger};
use crate::error::{Error, Result};
use crate::golden::{Rules, STEWARD};
use crate::model::Registry;
use crate::store::codec::{self, Header};
use crate::store::{Resolution, ReviewItem, ReviewStatus, Writer};
use jichu_ingest::{FieldKind, Value};

/// What the steward decided.
#[derive(Clone, Debug)]
pub enum Decision {
    /// That source's value (`source:NAME`, or the name).
    Choose(String),
    /// A value of the steward's own (text; a date as `YYYY-MM-DD`).
    Value(serde_json::Value),
}

/// Resolves review item `number` by `decision`, recorded as made `by` a department; the item
/// as it now stands. `Ok(None)`: no such item.
pub fn resolve(
    writer: &mut Writer<'_>,
    rules: &Rules,
    number: u64,
    decision: Decision,
    by: &str,
) -> Result<Option<ReviewItem>> {
    let store = writer.store();
    let Some((mut item, old_item)) = store.reader().review_item(number)? else { return Ok(None) };
    let registry: Registry = item.registry.parse().map_err(Error::Invalid)?;
    let schema = registry.schema();
    let field = schema.field_index(&item.field).ok_or_else(|| Error::Codec(format!("review field {}", item.field)))?;
    let id = item.id.clone();
    let old = store
        .reader()
        .get_raw(registry, &id)?
        .ok_or_else(|| Error::Codec("a review item without its record".into()))?;
    let load_id = writer.begin_load(None, registry, STEWARD, Vec::new(), "review")?;
    let merger = Merger {
        rules: rules.clone(),
        registry,
        load_id,
        source: STEWARD.into(),
        opened: Default::default(),
        coding: store.value_coding(),
    };
    let result = (|| {
        let (mut contributions, stored) = merger.contributions(writer, &id, &old)?;
        let value = match &decision {
            Decision::Choose(name) => {
                let name = name.strip_prefix("source:").unwrap_or(name);
                let (_, bytes) = contributions
                    .iter()
                    .find(|(s, _)| s == name && s != STEWARD)
                    .ok_or_else(|| Error::Invalid(format!("no source `{name}` contributes to this record")))?;
                codec::decode(registry, &id, bytes)?.values[field]
                    .clone()
                    .ok_or_else(|| Error::Invalid(format!("`{name}` has no value for {}", item.field)))?
            }
            Decision::Value(v) => own_value(schema.fields[field].kind, v)?,
        };
        let at = contributions.iter().position(|(s, _)| s == STEWARD);
        let mut values = match at {
            Some(i) => codec::decode(registry, &id, &contributions[i].1)?.values,
            None => vec![None; schema.fields.len()],
        };
        values[field] = Some(value);
        let bytes = codec::encode(Header { load_id, ..Header::default() }, &values, &[], merger.coding);
        match at {
            Some(i) => contributions[i].1 = bytes,
            None => contributions.push((STEWARD.into(), bytes)),
        }
        item.status = ReviewStatus::Resolved;
        item.resolution = Some(Resolution {
            by: by.to_string(),
            at: chrono::Utc::now(),
            load_id,
            choose: match &decision {
                Decision::Choose(name) => Some(format!("source:{}", name.strip_prefix("source:").unwrap_or(name))),
                Decision::Value(_) => None,
            },
            value: match &decision {
                Decision::Value(v) => Some(v.clone()),
                Decision::Choose(_) => None,
            },
        });
        writer.put_review(registry, id.as_bytes(), field as u8, &item, Some(&old_item), load_id)?;
        writer.commit()?;
        if let Merged::Rewritten(golden) = merger.rewrite(writer, &id, &contributions, stored.as_deref(), &old)? {
            let written = Written { value: &golden.value, targets: &golden.targets() };
            write(writer, registry, &id, written, Some(&old), load_id)?;
        }
        writer.commit()?;
        let report =
            serde_json::json!({ "review_item": number, "registry": registry.as_str(), "field": item.field, "by": by });
        writer.finish_load(load_id, report)
    })();
    if let Err(e) = result {
        writer.undo(load_id, &format!("failed: {e}"))?;
        return Err(e);
    }
    Ok(store.reader().review_item(number)?.map(|(item, _)| item))
}

/// A steward's own value for a field of `kind`.
fn own_value(kind: FieldKind, v: &serde_json::Value) -> Result<Value> {
    let text = v.as_str().map(str::trim).filter(|s| !s.is_empty());
    let text = text.ok_or_else(|| Error::Invalid("`value` must be a non-empty string".into()))?;
    let text = jichu_ingest::normalize_text(text);
    Ok(match kind {
        FieldKind::Date => Value::Date(
            chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .map_err(|_| Error::Invalid(format!("`{text}` is not a date (YYYY-MM-DD)")))?,
        ),
        FieldKind::Name => Value::Text(jichu_ingest::normalize_name(&text).into_owned()),
        FieldKind::Code(list) => Value::Text(
            jichu_ingest::parse_code(&text, list)
                .ok_or_else(|| Error::Invalid(format!("`{text}` is not in the field's code list")))?
                .into_owned(),
        ),
        FieldKind::Identifier(check) => Value::Text(
            check(&text).map_err(|r| Error::Invalid(format!("`{text}` is not a valid identifier: {}", r.message)))?.id,
        ),
        FieldKind::Text => Value::Text(text.into_owned()),
        _ => {
            return Err(Error::Invalid(
                "a steward's value is for identity fields (names, dates, codes, identifiers)".into(),
            ));
        }
    })
}
