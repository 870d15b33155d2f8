//! Public credit records about a citizen or an entity (GB/T 39440-39444).

use super::{Field, Registry, Relation, Schema, Target, check_subject};
use jichu_ingest::FieldKind;

pub const CATEGORIES: &[(&str, &[&str])] = &[
    ("行政许可", &["administrative_licence", "licence"]),
    ("行政处罚", &["administrative_penalty", "penalty"]),
    ("守信激励", &["红名单", "red_list", "trust_incentive"]),
    ("失信惩戒", &["黑名单", "black_list", "dishonesty_sanction"]),
];

pub static SCHEMA: Schema = Schema {
    registry: Registry::Credit,
    key: Field::new("id", FieldKind::Text, "credit record number"),
    fields: &[
        Field::new(
            "subject_id",
            FieldKind::Identifier(check_subject),
            "the subject: an identity number or a credit code",
        )
        .required()
        .sensitive()
        .link(Target::Subject, Relation::Subject, Relation::CreditRecords),
        Field::new("category", FieldKind::Code(CATEGORIES), "行政许可, 行政处罚, 守信激励 or 失信惩戒").required(),
        Field::new("reason", FieldKind::Text, "the facts and grounds of the decision").text(),
        Field::new("decided_on", FieldKind::Date, "date of the decision"),
        Field::new("authority", FieldKind::Text, "the deciding authority").text(),
        Field::new("status", FieldKind::Text, "publication status").keyword(),
    ],
    row_check: None,
    doc: "public credit records about a citizen or an entity",
};
