//! Parcels (宗地): land parcels with their polygons, keyed by the parcel code.

use super::{Field, Mask, Registry, Schema};
use jichu_ingest::FieldKind;

pub static SCHEMA: Schema = Schema {
    registry: Registry::Parcels,
    key: Field::new("id", FieldKind::Text, "parcel code (宗地代码)"),
    fields: &[
        Field::new("land_use", FieldKind::Text, "land use (用途)").keyword(),
        Field::new("area_m2", FieldKind::Number, "area in square metres"),
        Field::new("address", FieldKind::Text, "location description (坐落)").text().masked_as(Mask::Address),
        Field::new("geometry", FieldKind::Geometry, "polygon or multipolygon (WGS84)").required(),
    ],
    row_check: None,
    doc: "land parcels with their polygons, keyed by the parcel code",
};
