//! Fuzzed inputs on stable Rust (proptest): the mapping-spec parser, extracts of random bytes
//! under every fixture spec, identifiers, geometry, cursors and request bodies. Nothing may
//! panic or hang; every refusal is an error or a 4xx. CI runs a short campaign (the default
//! number of cases below, about ten seconds); a long one:
//! `FUZZ_CASES=1000000 cargo test --release --test it fuzz`.

use crate::common::{Server, TestStore, fixture};
use jichu::model::Registry;
use jichu_ingest::{Crs, FieldKind, Spec};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Cases per property: `FUZZ_CASES`, or a short campaign.
fn cases(short: u32) -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(short)
}

fn runner(short: u32) -> TestRunner {
    TestRunner::new(Config { cases: cases(short), failure_persistence: None, ..Config::default() })
}

/// Text made of what extracts and requests are made of: separators, quotes, line ends, digits,
/// CJK, full-width forms, a BOM, an invalid byte sequence's replacement, and anything else.
fn texty() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just(",".to_string()),
        Just("\"".to_string()),
        Just("\r\n".to_string()),
        Just("\n".to_string()),
        Just("\r".to_string()),
        Just("\u{feff}".to_string()),
        Just("长期".to_string()),
        Just("POLYGON((".to_string()),
        Just("))".to_string()),
        "[0-9Xx]{1,20}",
        "[\\u4e00-\\u9fff]{1,6}",
        "[０-９Ａ-Ｚ　]{1,4}",
        any::<String>(),
    ];
    prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
}

#[test]
fn the_spec_parser_refuses_nonsense_without_panicking() {
    let valid = std::fs::read_to_string(fixture("citizens_gb18030.toml")).unwrap();
    runner(20_000)
        .run(&(texty(), 0usize..4000), |(noise, at)| {
            let _ = Spec::parse(&noise);
            // A valid spec with noise spliced in somewhere.
            let mut spliced = valid.clone();
            let at = (0..=at.min(spliced.len())).rev().find(|i| spliced.is_char_boundary(*i)).unwrap_or(0);
            spliced.insert_str(at, &noise);
            let _ = Spec::parse(&spliced);
            Ok(())
        })
        .unwrap();
}

#[test]
fn identifiers_and_geometry_refuse_nonsense_without_panicking() {
    let checks: Vec<_> = Registry::ALL
        .iter()
        .filter_map(|r| match r.schema().key.kind {
            FieldKind::Identifier(check) => Some(check),
            _ => None,
        })
        .collect();
    assert!(!checks.is_empty());
    runner(20_000)
        .run(&texty(), |s| {
            for check in &checks {
                let _ = jichu::model::canonical_id(*check, &s);
            }
            for crs in [Crs::Wgs84, Crs::Gcj02] {
                let _ = jichu_ingest::parse_geometry(&s, crs);
                let _ = jichu_ingest::parse_geometry(&format!("POLYGON(({s}))"), crs);
            }
            let _ = jichu::query::search::parse_cursor(&s, 1);
            Ok(())
        })
        .unwrap();
}

/// Random bytes under every fixture's header (and a GB18030 one, whose bytes decode
/// differently): each load ends with every row read either accepted or rejected, or with an
/// error that says why; the store stays consistent.
#[test]
fn extracts_of_random_bytes_load_or_are_refused_row_by_row() {
    let t = TestStore::loaded();
    let dir = t.dir.path().join("fuzz");
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = prop_oneof![texty().prop_map(String::into_bytes), prop::collection::vec(any::<u8>(), 0..400),];
    let stems = ["citizens", "citizens_gb18030", "entities", "parcels", "credit", "licences"];
    let n = std::cell::Cell::new(0u32);
    let (accepted, rejected) = (std::cell::Cell::new(0u64), std::cell::Cell::new(0u64));
    runner(5_000)
        .run(&(prop::collection::vec(bytes, 1..6), 0..stems.len()), |(parts, which)| {
            let stem = stems[which];
            let original = std::fs::read(fixture(&format!("{stem}.csv"))).unwrap();
            let header_end = original.iter().position(|&b| b == b'\n').map_or(original.len(), |i| i + 1);
            let mut data = original[..header_end].to_vec();
            // Random rows between real ones.
            let real: Vec<&[u8]> = original[header_end..].split(|&b| b == b'\n').take(parts.len()).collect();
            for (p, row) in parts.iter().zip(real) {
                data.extend_from_slice(p);
                data.push(b'\n');
                data.extend_from_slice(row);
                data.push(b'\n');
            }
            n.set(n.get() + 1);
            let path = dir.join(format!("{stem}-{}.csv", n.get()));
            std::fs::write(&path, &data).unwrap();
            match t.try_load(&fixture(&format!("{stem}.toml")), &[path], &t.options()) {
                Ok(r) => {
                    accepted.set(accepted.get() + r.accepted);
                    rejected.set(rejected.get() + r.rejected);
                    prop_assert_eq!(r.read, r.accepted + r.rejected, "{:?}", r)
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            Ok(())
        })
        .unwrap();
    assert!(accepted.get() > 0 && rejected.get() > 0, "rows were loaded and refused: {accepted:?} {rejected:?}");
    for r in Registry::ALL {
        assert_eq!(t.store.count(r), t.store.count_keys(r).unwrap(), "{r}: counts agree with the records");
    }
}

/// Random JSON bodies to the routes that take one: never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_of_any_shape_are_answered_without_a_server_error() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
        texty().prop_map(serde_json::Value::from),
    ];
    let keys = prop_oneof![
        Just("q"),
        Just("in"),
        Just("name"),
        Just("filters"),
        Just("limit"),
        Just("cursor"),
        Just("ids"),
        Just("fields"),
        Just("lon"),
        Just("lat"),
        Just("k"),
        Just("radius_m"),
        Just("bbox"),
        Just("polygon"),
        Just("type"),
        Just("coordinates"),
        Just("birth_date"),
        Just("district"),
        Just("from"),
        Just("to"),
    ];
    let value = leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|kv| {
                serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    });
    let routes =
        ["/v1/citizens/search", "/v1/search", "/v1/citizens/near", "/v1/parcels/within", "/v1/citizens/lookup"];
    let bodies = std::cell::RefCell::new(Vec::new());
    runner(5_000)
        .run(&value, |v| {
            bodies.borrow_mut().push(v);
            Ok(())
        })
        .unwrap();
    let bodies = bodies.into_inner();
    for (i, body) in bodies.iter().enumerate() {
        let route = routes[i % routes.len()];
        let (status, _, answer) = s.post(route, body).await;
        assert!(status < 500, "{route} {body} → {status} {answer}");
    }
}
