//! Spatial queries over the fixture store, each checked against a brute-force scan.

use crate::common::{Server, TestStore};
use jichu::model::Registry;
use jichu_indexes::spatial::sphere::haversine_m;
use jichu_ingest::Value;
use serde_json::{Value as Json, json};

/// Every (key, lon, lat) of a registry's current records with a location.
fn points(t: &TestStore, registry: Registry) -> Vec<(String, f64, f64)> {
    t.store
        .scan(registry)
        .map(|kv| {
            let (k, v) = kv.unwrap();
            let id = String::from_utf8(k.to_vec()).unwrap();
            jichu::store::codec::decode(registry, &id, &v).unwrap()
        })
        .filter(|r| !r.ended)
        .filter_map(|r| match r.value("location") {
            Some(Value::Point(p)) => Some((r.id.clone(), p.x(), p.y())),
            _ => None,
        })
        .collect()
}

/// Brute force: (key, distance) nearest first, ties by key.
fn by_distance(pts: &[(String, f64, f64)], lon: f64, lat: f64) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = pts.iter().map(|(k, x, y)| (k.clone(), haversine_m(lon, lat, *x, *y))).collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    v
}

fn hits(body: &Json) -> Vec<(String, f64)> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["id"].as_str().unwrap().to_string(), h["distance_m"].as_f64().unwrap_or(-1.0)))
        .collect()
}

fn same(got: &[(String, f64)], want: &[(String, f64)]) {
    assert_eq!(got.iter().map(|g| &g.0).collect::<Vec<_>>(), want.iter().map(|w| &w.0).collect::<Vec<_>>());
    for (g, w) in got.iter().zip(want) {
        assert!((g.1 - w.1).abs() <= 0.01, "{} m vs {} m", g.1, w.1);
    }
}

const QUERIES: [(f64, f64); 5] = [(118.08, 24.45), (118.1, 24.5), (118.2, 24.6), (117.9, 24.41), (118.1254, 24.5081)];

#[tokio::test]
async fn nearest_and_radius_match_brute_force() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    for registry in [Registry::Citizens, Registry::Entities] {
        let pts = points(&t, registry);
        assert!(pts.len() >= 3);
        for (lon, lat) in QUERIES {
            let all = by_distance(&pts, lon, lat);
            let (st, _, body) = s.post(&format!("/v1/{registry}/near"), &json!({"lon": lon, "lat": lat, "k": 5})).await;
            assert_eq!(st, 200, "{body}");
            same(&hits(&body), &all[..5.min(all.len())]);
            for r in [300.0, 2_000.0, 20_000.0] {
                let within: Vec<(String, f64)> = all.iter().filter(|(_, d)| *d <= r).cloned().collect();
                let (_, _, body) = s
                    .post(
                        &format!("/v1/{registry}/near"),
                        &json!({"lon": lon, "lat": lat, "radius_m": r, "limit": 1000}),
                    )
                    .await;
                same(&hits(&body), &within);
                let (_, _, body) = s
                    .post(
                        &format!("/v1/{registry}/near"),
                        &json!({"lon": lon, "lat": lat, "radius_m": r, "count_only": true}),
                    )
                    .await;
                assert_eq!(body["count"], within.len());
            }
        }
    }
}

#[tokio::test]
async fn within_box_and_polygon_match_brute_force() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    let pts = points(&t, Registry::Citizens);
    let b = [118.09, 24.45, 118.13, 24.50];
    let mut want: Vec<String> = pts
        .iter()
        .filter(|(_, x, y)| *x >= b[0] && *x <= b[2] && *y >= b[1] && *y <= b[3])
        .map(|p| p.0.clone())
        .collect();
    want.sort();
    let (st, _, body) = s.post("/v1/citizens/within", &json!({"bbox": b, "fields": ["name"]})).await;
    assert_eq!(st, 200, "{body}");
    let got: Vec<String> =
        body["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(got, want);
    assert_eq!(body["count"], want.len());
    assert!(body["hits"][0]["record"]["name"].is_string());
    // A triangle: the points of the box under its diagonal.
    let tri = json!({"type": "Polygon", "coordinates": [[[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[1]]]]});
    let (_, _, body) = s.post("/v1/citizens/within", &json!({"polygon": tri})).await;
    let below = |x: f64, y: f64| (y - b[1]) * (b[2] - b[0]) <= (x - b[0]) * (b[3] - b[1]) + 1e-12;
    let mut want: Vec<String> = pts
        .iter()
        .filter(|(_, x, y)| *x >= b[0] && *x <= b[2] && *y >= b[1] && below(*x, *y))
        .map(|p| p.0.clone())
        .collect();
    want.sort();
    let got: Vec<String> =
        body["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(got, want);
    assert_eq!(body["count"], want.len());
    // A limit below the count: the count is still of every match; the hits are `limit` of
    // them, by key.
    let (_, _, body) = s.post("/v1/citizens/within", &json!({"polygon": tri, "limit": 2})).await;
    assert_eq!(body["count"], want.len());
    let got: Vec<String> =
        body["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(got.len(), 2.min(want.len()));
    assert!(got.iter().all(|k| want.contains(k)) && got.is_sorted(), "{got:?}");
    let (_, _, body) = s.post("/v1/parcels/within", &json!({"bbox": [118.085, 24.455, 118.14, 24.51]})).await;
    let parcels: Vec<&str> = body["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(parcels, vec!["350203001001GB00001", "350203001001GB00002", "350206002001GB00003"]);
}

#[tokio::test]
async fn containing_decides_boundaries_and_holes_exactly() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    let ids = |body: &Json| -> Vec<String> {
        body["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect()
    };
    let cases: [((f64, f64), &[&str]); 6] = [
        ((118.085, 24.455), &["350203001001GB00001"]),
        ((118.09, 24.455), &["350203001001GB00001"]),    // on the east edge
        ((118.11, 24.46), &[]),                          // inside the courtyard (hole)
        ((118.105, 24.46), &["350203001001GB00002"]),    // on the hole's edge
        ((118.102, 24.46), &["350203001001GB00002"]),    // between shell and hole
        ((118.0925, 24.5825), &["350211003001GB00004"]), // second part of a multipolygon? no: gap
    ];
    for ((lon, lat), want) in cases.iter().take(5) {
        let (st, _, body) = s.get(&format!("/v1/parcels/containing?lon={lon}&lat={lat}")).await;
        assert_eq!(st, 200);
        assert_eq!(ids(&body), want.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "({lon}, {lat})");
    }
    let (_, _, body) = s.get("/v1/parcels/containing?lon=118.1025&lat=24.5825").await;
    assert_eq!(ids(&body), vec!["350211003001GB00004"], "the multipolygon's second part");
    let (_, _, body) = s.get("/v1/parcels/containing?lon=118.0975&lat=24.5825").await;
    assert!(ids(&body).is_empty(), "between the multipolygon's parts");
}

#[tokio::test]
async fn geojson_on_request_and_profile_parcels() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    let r = s
        .client
        .post(s.url("/v1/citizens/near"))
        .header("accept", "application/geo+json")
        .json(&json!({"lon": 118.08, "lat": 24.45, "k": 2}))
        .send()
        .await
        .unwrap();
    let (st, ct, body) = Server::parts(r).await;
    assert_eq!((st, ct.as_str()), (200, "application/geo+json"));
    assert_eq!(body["type"], "FeatureCollection");
    assert_eq!(body["features"][0]["geometry"]["type"], "Point");
    assert!(body["features"][0]["properties"]["distance_m"].is_number());
    let r = s
        .client
        .get(s.url("/v1/parcels/containing?lon=118.085&lat=24.455"))
        .header("accept", "application/geo+json")
        .send()
        .await
        .unwrap();
    let (_, _, body) = Server::parts(r).await;
    assert_eq!(body["features"][0]["geometry"]["type"], "MultiPolygon");
    let (_, _, profile) = s.get("/v1/citizens/35020319500110100X/profile").await;
    assert_eq!(profile["parcels"][0]["id"], "350203001001GB00001", "the parcel at the citizen's location (a corner)");
}

#[tokio::test]
async fn bad_spatial_requests_are_problems() {
    let t = TestStore::loaded();
    let s = Server::start(t.store.clone()).await;
    let bad = [
        ("/v1/citizens/near", json!({"lon": 200.0, "lat": 24.5, "k": 3})),
        ("/v1/citizens/near", json!({"lon": 118.0, "lat": 24.5, "radius_m": 0})),
        ("/v1/citizens/near", json!({"lon": 118.0, "lat": 24.5, "radius_m": 1e9})),
        ("/v1/citizens/near", json!({"lon": 118.0, "lat": 24.5, "k": 3, "radius_m": 10})),
        ("/v1/citizens/near", json!({"lon": 118.0, "lat": 24.5})),
        ("/v1/citizens/near", json!({"lon": 118.0, "lat": 24.5, "k": 0})),
        ("/v1/parcels/near", json!({"lon": 118.0, "lat": 24.5, "k": 3})),
        ("/v1/citizens/within", json!({"bbox": [118.2, 24.5, 118.1, 24.6]})),
        (
            "/v1/citizens/within",
            json!({"polygon": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}}),
        ),
        ("/v1/citizens/within", json!({"polygon": {"type": "Point", "coordinates": [0, 0]}})),
        ("/v1/citizens/within", json!({})),
    ];
    for (path, body) in bad {
        let (st, ct, b) = s.post(path, &body).await;
        assert_eq!((st, ct.as_str()), (400, "application/problem+json"), "{path} {body} → {b}");
    }
    let (st, _, _) = s.get("/v1/parcels/containing?lon=118&lat=95").await;
    assert_eq!(st, 400);
    let (st, _, _) = s.get("/v1/parcels/containing?lon=abc&lat=24").await;
    assert_eq!(st, 400);
}

#[test]
fn the_saved_index_serves_only_an_unchanged_store() {
    use jichu::spatial::SpatialIndex;
    let t = TestStore::loaded();
    let built = SpatialIndex::open(&t.store).unwrap();
    assert!(!built.from_file);
    // Built, saved, and served from its files: the bases hold no heap.
    assert!(built.mapped_bytes() > 0);
    assert!(built.memory_bytes() < 1024, "{} heap bytes", built.memory_bytes());
    // What a save killed mid-write left (pid ffffffff is no process's): removed at the next
    // open, which still maps the whole files beside it.
    let dir = SpatialIndex::dir_of(&t.store);
    let stale = dir.join("citizens.idx.ffffffff.tmp");
    std::fs::write(&stale, b"half a file").unwrap();
    let read = SpatialIndex::open(&t.store).unwrap();
    assert!(read.from_file, "an unchanged store reads the saved file");
    assert!(!stale.exists(), "a stopped save's file is removed");
    assert!(dir.join("citizens.idx").exists());
    for (lon, lat) in QUERIES {
        assert_eq!(read.citizens.index.nearest(lon, lat, 8, None), built.citizens.index.nearest(lon, lat, 8, None));
        assert_eq!(read.parcels.index.containing(lon, lat), built.parcels.index.containing(lon, lat));
    }
    // A damaged file is refused (its checksum) and the layer is built again, answering the same.
    // The answers are taken first: damage written in place reaches every mapping of the file
    // (jichu itself only ever replaces a layer's file by renaming a new one over it).
    let expected: Vec<_> = QUERIES.iter().map(|&(lon, lat)| built.citizens.index.nearest(lon, lat, 8, None)).collect();
    drop((built, read));
    let file = dir.join("citizens.idx");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();
    let repaired = SpatialIndex::open(&t.store).unwrap();
    assert!(!repaired.from_file);
    for ((lon, lat), expected) in QUERIES.into_iter().zip(expected) {
        assert_eq!(repaired.citizens.index.nearest(lon, lat, 8, None), expected);
    }
    assert!(SpatialIndex::open(&t.store).unwrap().from_file, "the rebuilt layer was saved again");
    // A batch load changes the store (one citizen added, one moved): a start maps the stale
    // file and applies the load's keys over it, answering as a brute-force scan and a fresh
    // build do.
    let moved = points(&t, Registry::Citizens)[0].0.clone();
    let csv = t.dir.path().join("one.csv");
    let newcomer = jichu::generator::citizen_id(99_999_999);
    std::fs::write(
        &csv,
        format!("公民身份号码,姓名,经度,纬度\n{newcomer},新来者,118.30,24.70\n{moved},搬家者,117.95,24.42\n"),
    )
    .unwrap();
    let spec = t.dir.path().join("one.toml");
    std::fs::write(&spec, "registry = \"citizens\"\nsource = \"x\"\n[columns]\nid = \"公民身份号码\"\nname = \"姓名\"\nlon = \"经度\"\nlat = \"纬度\"\n").unwrap();
    let r = t.load(&spec, &[csv]);
    assert_eq!((r.inserted, r.updated), (1, 1));
    let stepped = SpatialIndex::open(&t.store).unwrap();
    assert!(stepped.from_file, "the stale file is mapped, not rebuilt");
    assert_eq!(stepped.applied_at_open, 2, "the load's two keys applied over it");
    let nearest = stepped.citizens.index.nearest(118.30, 24.70, 1, None)[0];
    assert_eq!(stepped.citizens.key(nearest.id), newcomer);
    let pts = points(&t, Registry::Citizens);
    assert!(pts.iter().any(|(k, x, _)| *k == moved && *x == 117.95));
    let keyed = |index: &SpatialIndex, lon, lat| -> Vec<(String, f64)> {
        let hits = index.citizens.index.nearest(lon, lat, pts.len() + 1, None);
        let mut v: Vec<_> = hits.iter().map(|h| (index.citizens.key(h.id).into_owned(), h.distance_m)).collect();
        // Ties as the brute-force scan orders them (by key; the index orders them by id).
        v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        v
    };
    std::fs::remove_dir_all(&dir).unwrap();
    let fresh = SpatialIndex::open(&t.store).unwrap();
    assert!(!fresh.from_file);
    for (lon, lat) in QUERIES.into_iter().chain([(117.95, 24.42)]) {
        let want = by_distance(&pts, lon, lat);
        same(&keyed(&stepped, lon, lat), &want);
        same(&keyed(&fresh, lon, lat), &want);
    }
    drop((stepped, fresh));
    let saved = SpatialIndex::open(&t.store).unwrap();
    assert!(saved.from_file && saved.applied_at_open == 0, "the fresh build was saved at the load's mark");
}

/// A build from the store gives up when the server stops (at 100M a fold read the store for
/// ~74 s, and a stop waited for it): it saves no layer file, and the next open builds one.
#[test]
fn a_build_the_stop_interrupts_saves_nothing() {
    use jichu::spatial::{SpatialIndex, Stop};
    let t = TestStore::loaded();
    let dir = SpatialIndex::dir_of(&t.store);
    let stopped = SpatialIndex::open_at(t.store.reader(), &Stop::new(true));
    assert!(matches!(stopped, Err(jichu::Error::Stopping)), "{stopped:?}");
    for layer in ["citizens.idx", "entities.idx", "parcels.idx"] {
        assert!(!dir.join(layer).exists(), "{layer} saved by a stopped build");
    }
    let built = SpatialIndex::open_at(t.store.reader(), &Stop::new(false)).unwrap();
    assert!(!built.from_file && !built.citizens.index.is_empty());
    assert!(SpatialIndex::open(&t.store).unwrap().from_file, "the build that ran saved its layers");
}

/// A start reads the saved spatial index on a thread of its own: a spatial read sent at once
/// waits for it and answers as a brute-force scan does; a stopped server has let go of its
/// store even if it stopped while that thread ran.
#[tokio::test]
async fn a_start_opens_the_spatial_index_in_the_background() {
    use jichu::spatial::SpatialIndex;
    let t = TestStore::loaded();
    drop(SpatialIndex::open(&t.store).unwrap());
    let pts = points(&t, Registry::Citizens);
    let (lon, lat) = QUERIES[0];
    let s = Server::start(t.store.clone()).await;
    let (st, _, body) = s.post("/v1/citizens/near", &json!({"lon": lon, "lat": lat, "k": 3})).await;
    assert_eq!(st, 200, "{body}");
    same(&hits(&body), &by_distance(&pts, lon, lat)[..3.min(pts.len())]);
    s.stop().await;
    // Stopped before its spatial index could be there: the store is still released.
    let s = Server::start(t.store.clone()).await;
    s.stop().await;
    let t = t.reopen();
    assert!(t.store.count(Registry::Citizens) > 0);
}

/// Every point of a layer as (key, distance) from (lon, lat), nearest first, ties by key.
fn all_by_distance(layer: &jichu::spatial::PointLayer, lon: f64, lat: f64) -> Vec<(String, f64)> {
    let hits = layer.index.nearest(lon, lat, layer.index.len() + 1, None);
    let mut v: Vec<_> = hits.iter().map(|h| (layer.key(h.id).into_owned(), h.distance_m)).collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    v
}

/// A bulk load feeds its registry's point layer as it writes its records, and saves it to the
/// layer's file once it has finished: the next open maps that file (it reads nothing back
/// from the store) and answers as a brute-force scan and a build from the store do. A load
/// into a registry that holds records feeds nothing: its keys are applied over the file.
#[test]
fn a_bulk_load_feeds_its_point_layer_and_the_next_open_maps_it() {
    use jichu::spatial::SpatialIndex;
    use std::os::unix::fs::MetadataExt;
    let t = TestStore::new();
    let text = jichu_indexes::text::WriterOptions { threads: 2, memory_bytes: 64 << 20, no_merge: false };
    let load_indexed = |stem: &str| {
        let spec_path = crate::common::fixture(&format!("{stem}.toml"));
        let spec = jichu_ingest::Spec::from_path(&spec_path).unwrap();
        let csv = crate::common::fixture(&format!("{stem}.csv"));
        jichu::load::load_indexed(&t.store, &spec, &spec_path, &[csv], &t.options(), text).unwrap().0
    };
    for stem in ["citizens", "entities", "parcels"] {
        let report = load_indexed(stem);
        // The parcels' layer is not fed: it is built at the open.
        assert_eq!(report.stage_seconds.contains_key("spatial_index"), stem != "parcels", "{stem}");
    }
    let dir = SpatialIndex::dir_of(&t.store);
    let inode = |r: Registry| std::fs::metadata(dir.join(format!("{r}.idx"))).map(|m| m.ino()).ok();
    let inodes = || [Registry::Citizens, Registry::Entities].map(inode);
    let saved = inodes();
    assert!(saved.iter().all(Option::is_some), "each point layer saved by its load: {saved:?}");
    let fed = SpatialIndex::open(&t.store).unwrap();
    assert_eq!(inodes(), saved, "the files mapped, not built again");
    assert_eq!(fed.applied_at_open, 0);
    std::fs::remove_dir_all(&dir).unwrap();
    let built = SpatialIndex::open(&t.store).unwrap();
    for registry in [Registry::Citizens, Registry::Entities] {
        let pts = points(&t, registry);
        assert!(!pts.is_empty());
        let (fed, built) = (fed.points(registry).unwrap(), built.points(registry).unwrap());
        assert_eq!((fed.index.len(), built.index.len()), (pts.len(), pts.len()), "{registry}");
        for (lon, lat) in QUERIES {
            let want = by_distance(&pts, lon, lat);
            same(&all_by_distance(fed, lon, lat), &want);
            same(&all_by_distance(built, lon, lat), &want);
        }
    }
    drop((fed, built));
    // The second citizens extract takes the batch path: no feed; the next open maps the file
    // and applies the load's keys over it.
    let before = inode(Registry::Citizens);
    let report = load_indexed("citizens_gb18030");
    assert!(report.updated + report.inserted > 0 && !report.stage_seconds.contains_key("spatial_index"));
    let stepped = SpatialIndex::open(&t.store).unwrap();
    assert_eq!(inode(Registry::Citizens), before);
    assert!(stepped.applied_at_open > 0);
    let pts = points(&t, Registry::Citizens);
    for (lon, lat) in QUERIES {
        same(&all_by_distance(&stepped.citizens, lon, lat), &by_distance(&pts, lon, lat));
    }
}

/// A running server's worker feeds the layer of a load into an empty registry and saves it
/// before the publication: the publication (`SpatialIndex::apply`) maps that file instead of
/// building the layer from the store, and answers as a brute-force scan does.
#[test]
fn a_publication_after_a_fed_bulk_load_maps_the_layer_the_load_saved() {
    use jichu::spatial::{BulkFeed, SpatialIndex};
    use std::os::unix::fs::MetadataExt;
    let t = TestStore::new();
    let before = SpatialIndex::open(&t.store).unwrap();
    assert_eq!(before.citizens.index.len(), 0);
    let spec_path = crate::common::fixture("citizens.toml");
    let spec = jichu_ingest::Spec::from_path(&spec_path).unwrap();
    let mut feed = BulkFeed::start(t.store.reader(), Registry::Citizens).unwrap().expect("an empty registry is fed");
    let csv = [crate::common::fixture("citizens.csv")];
    let report =
        jichu::load::load_feeding(&t.store, &spec, &spec_path, &csv, &t.options(), Some(&mut |k, v| feed.record(k, v)))
            .unwrap();
    assert!(feed.finish(t.store.reader(), report.load_id as u32), "the fed layer saved");
    let file = SpatialIndex::dir_of(&t.store).join("citizens.idx");
    let inode = || std::fs::metadata(&file).unwrap().ino();
    let saved = inode();
    let loads = t.store.reader().stored_loads().unwrap();
    let published = before.apply(t.store.reader(), &loads).unwrap();
    assert_eq!(inode(), saved, "the publication mapped the file the load saved");
    let pts = points(&t, Registry::Citizens);
    assert_eq!(published.citizens.index.len(), pts.len());
    for (lon, lat) in QUERIES {
        same(&all_by_distance(&published.citizens, lon, lat), &by_distance(&pts, lon, lat));
    }
    // A second load into the registry feeds nothing (it holds records).
    assert!(BulkFeed::start(t.store.reader(), Registry::Citizens).unwrap().is_none());
}
