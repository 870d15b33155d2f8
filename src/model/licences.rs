//! Licences: certificates and e-licences (GB/T 36901-36905) held by a citizen or an entity.

use super::{Field, Registry, Relation, Schema, Target, check_subject, codes};
use jichu_ingest::FieldKind;

pub static SCHEMA: Schema = Schema {
    registry: Registry::Licences,
    key: Field::new("id", FieldKind::Text, "licence number (opaque text)"),
    fields: &[
        Field::new("licence_type", FieldKind::Text, "licence type (证照类型)").required().text(),
        Field::new(
            "holder_id",
            FieldKind::Identifier(check_subject),
            "the holder: an identity number or a credit code",
        )
        .required()
        .sensitive()
        .link(Target::Subject, Relation::Holder, Relation::Licences),
        Field::new("holder_name", FieldKind::Name, "the holder's name").personal().name(),
        Field::new("issuer", FieldKind::Text, "issuing authority").text(),
        Field::new("issued_on", FieldKind::Date, "date of issue"),
        Field::new(
            "valid_until",
            FieldKind::EndOfValidity,
            "end of validity; null with `open_ended: true` when it has none (长期, 永久, 9999-12-31…)",
        ),
        Field::new("status", FieldKind::Code(&codes::LICENCE_STATUS), "status (有效, 注销, 吊销, 过期…)"),
    ],
    row_check: None,
    doc: "certificates and e-licences held by a citizen or an entity",
};
