//! The store: round trips, reopening, relation consistency under updates.

use crate::common::{TestStore, fixture};
use jichu::load::LoadOptions;
use jichu::model::{Registry, Relation};
use jichu::store::{Edge, Store, StoreOptions};
use jichu_ingest::Spec;

#[test]
fn records_survive_reopening() {
    let t = TestStore::loaded();
    let before: Vec<u64> = Registry::ALL.iter().map(|r| t.store.count(*r)).collect();
    let chen = t.store.get(Registry::Citizens, "35020319500110100X").unwrap();
    let t = t.reopen();
    let after: Vec<u64> = Registry::ALL.iter().map(|r| t.store.count(*r)).collect();
    assert_eq!(before, after);
    assert_eq!(before, vec![23, 4, 4, 5, 5], "the Fujian code failing its check is rejected");
    assert_eq!(t.store.get(Registry::Citizens, "35020319500110100X").unwrap(), chen);
    assert_eq!(t.store.loads().len(), 6);
}

#[test]
fn multi_get_answers_in_request_order() {
    let t = TestStore::loaded();
    let ids =
        vec!["350203195302111033".to_string(), "110105194912310021".to_string(), "35020319500110100X".to_string()];
    let got = t.store.get_many(Registry::Citizens, &ids).unwrap();
    assert_eq!(
        got.iter().map(|r| r.as_ref().map(|r| r.id.as_str())).collect::<Vec<_>>(),
        vec![Some(ids[0].as_str()), None, Some(ids[2].as_str())]
    );
}

#[test]
fn relations_are_navigable_both_ways() {
    let t = TestStore::loaded();
    let entity = std::fs::read_to_string(fixture("entities.csv"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let rep = "35020319500110100X";
    let from_entity = t.store.relations(Registry::Entities, &entity).unwrap();
    assert!(from_entity.contains(&Edge { relation: Relation::LegalRep, registry: Registry::Citizens, id: rep.into() }));
    assert!(from_entity.iter().any(|e| e.relation == Relation::Licences));
    assert!(from_entity.iter().any(|e| e.relation == Relation::CreditRecords));
    let from_citizen = t.store.relations(Registry::Citizens, rep).unwrap();
    assert!(from_citizen.contains(&Edge {
        relation: Relation::Represents,
        registry: Registry::Entities,
        id: entity.clone()
    }));
    assert!(from_citizen.contains(&Edge {
        relation: Relation::Licences,
        registry: Registry::Licences,
        id: "ZZ05000000000003".into()
    }));
}

#[test]
fn a_licence_changing_holder_moves_its_reverse_link() {
    let t = TestStore::loaded();
    let old_holder = "35020319500110100X";
    let new_holder = "350203195302111033";
    let text = std::fs::read_to_string(fixture("licences.csv")).unwrap().replace(
        &format!("ZZ05000000000003,机动车驾驶证,{old_holder}"),
        &format!("ZZ05000000000003,机动车驾驶证,{new_holder}"),
    );
    let path = t.dir.path().join("licences-moved.csv");
    std::fs::write(&path, text).unwrap();
    let r = t.load(&fixture("licences.toml"), &[path]);
    assert_eq!(r.updated, 1);
    let licence_edge =
        Edge { relation: Relation::Licences, registry: Registry::Licences, id: "ZZ05000000000003".into() };
    assert!(
        !t.store.relations(Registry::Citizens, old_holder).unwrap().contains(&licence_edge),
        "old reverse link gone"
    );
    assert!(t.store.relations(Registry::Citizens, new_holder).unwrap().contains(&licence_edge));
    let forward = t.store.relations(Registry::Licences, "ZZ05000000000003").unwrap();
    assert_eq!(forward, vec![Edge { relation: Relation::Holder, registry: Registry::Citizens, id: new_holder.into() }]);
}

/// A store written before locations were read from the records carries a `points` column
/// family; its first open empties it, and locations are read from the records as before.
#[test]
fn a_legacy_points_column_family_is_emptied_and_locations_come_from_the_records() {
    let t = TestStore::loaded();
    let located: Vec<_> = t.store.reader().points(Registry::Citizens).map(|p| p.unwrap()).collect();
    assert!(!located.is_empty());
    let ended_or_unlocated = t.store.count(Registry::Citizens) as usize - located.len();
    assert!(ended_or_unlocated > 0, "the fixtures hold ended or unlocated citizens");
    let t = t.reopen_after(|path| {
        let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), path, &names).unwrap();
        let points = db.cf_handle("points").unwrap();
        for (k, _, _) in &located {
            db.put_cf(points, [&[Registry::Citizens as u8][..], k].concat(), [0u8; 8]).unwrap();
        }
        db.flush_cf(points).unwrap();
    });
    let again: Vec<_> = t.store.reader().points(Registry::Citizens).map(|p| p.unwrap()).collect();
    assert_eq!(again, located);
    let bytes = t.store.disk_bytes_by_column_family();
    let points = bytes.iter().find(|(name, _)| *name == "points").map_or(0, |(_, b)| *b);
    assert_eq!(points, 0, "the legacy column family's files are given back");
}

/// A reference is stored once, as the edge from the record it points at; the holder's own edge
/// is read from its record. Stores written before also kept the holder's edge as a key: each
/// edge is still answered once, in order, and the first open that knows drops those keys.
#[test]
fn forward_edges_come_from_the_record_and_legacy_keys_are_not_doubled() {
    use jichu::store::keys;
    let t = TestStore::loaded();
    let licence = "ZZ05000000000003";
    let holder = "35020319500110100X";
    let expected = vec![Edge { relation: Relation::Holder, registry: Registry::Citizens, id: holder.into() }];
    assert_eq!(t.store.relations(Registry::Licences, licence).unwrap(), expected);
    let from_holder = t.store.relations(Registry::Citizens, holder).unwrap();
    assert!(from_holder.iter().any(|e| e.relation == Relation::Licences && e.id == licence));
    let t = t.reopen_after(|path| {
        let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), path, &names).unwrap();
        let relations = db.cf_handle("relations").unwrap();
        let owned = keys::edge_prefix(Registry::Licences, licence);
        let stored =
            db.prefix_iterator_cf(relations, &owned).map(|kv| kv.unwrap().0).take_while(|k| k.starts_with(&owned));
        assert_eq!(stored.count(), 0, "no key is written for the licence's own reference");
        let legacy = keys::edge(Registry::Licences, licence, Relation::Holder, Registry::Citizens, holder);
        db.put_cf(relations, legacy, []).unwrap();
        db.flush_cf(relations).unwrap();
    });
    assert_eq!(t.store.relations(Registry::Licences, licence).unwrap(), expected);
    assert_eq!(t.store.relations(Registry::Citizens, holder).unwrap(), from_holder);
    let mut sorted = from_holder.clone();
    sorted.sort();
    assert_eq!(from_holder, sorted, "grouped by relation, as the keys sort");
    // A store written before: holder keys in a registry nothing points at (licences) and in
    // one that is pointed at too (entities), and no marker. Its open drops exactly those.
    let holders_keys = |db: &rocksdb::DB| {
        let relations = db.cf_handle("relations").unwrap();
        let all: Vec<_> = db.iterator_cf(relations, rocksdb::IteratorMode::Start).map(|kv| kv.unwrap().0).collect();
        let held = [Relation::LegalRep, Relation::Subject, Relation::Holder];
        let n = all.iter().filter(|k| keys::decode_edge(k).is_some_and(|(r, _, _)| held.contains(&r))).count();
        (all.len(), n)
    };
    let entity = t.store.reader().scan(Registry::Entities).next().unwrap().unwrap().0;
    let entity = String::from_utf8(entity.to_vec()).unwrap();
    let mut before = (0, 0);
    let t = t.reopen_after(|path| {
        let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), path, &names).unwrap();
        let relations = db.cf_handle("relations").unwrap();
        let rep = keys::edge(Registry::Entities, &entity, Relation::LegalRep, Registry::Citizens, holder);
        db.put_cf(relations, rep, []).unwrap();
        db.delete_cf(db.cf_handle("meta").unwrap(), b"edges_one_way").unwrap();
        db.flush_cf(relations).unwrap();
        before = holders_keys(&db);
    });
    assert_eq!(before.1, 2, "a licence's and an entity's own edge");
    let mut after = (0, 0);
    let t = t.reopen_after(|path| {
        let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), path, &names).unwrap();
        after = holders_keys(&db);
    });
    assert_eq!(after, (before.0 - 2, 0), "only the holders' own edges were dropped");
    assert_eq!(t.store.relations(Registry::Licences, licence).unwrap(), expected);
    assert_eq!(t.store.relations(Registry::Citizens, holder).unwrap(), from_holder);
}

/// A presence probe answers as the store does for keys asked in ascending order: each stored
/// key, keys between them, repeats, keys before the first and after the last, and keys far
/// apart (more stored keys between two asked than a probe steps over before it seeks).
#[test]
fn presence_answers_keys_asked_in_ascending_order() {
    let t = TestStore::loaded();
    let stored: Vec<Vec<u8>> = t.store.scan(Registry::Citizens).map(|kv| kv.unwrap().0.to_vec()).collect();
    assert!(stored.len() > 20, "{} citizens", stored.len());
    let mut dense = vec![b"0".to_vec()];
    for k in &stored {
        let mut below = k.clone();
        below.pop();
        dense.extend([below, k.clone(), k.clone(), [k.as_slice(), b"0"].concat()]);
    }
    dense.push(b"9999".to_vec());
    let sparse: Vec<Vec<u8>> = stored.iter().step_by(10).cloned().chain([b"9999".to_vec()]).collect();
    let far: Vec<Vec<u8>> = vec![stored[0].clone(), [stored[15].as_slice(), b"0"].concat(), stored[20].clone()];
    for asked in [dense, sparse, far] {
        let mut probe = t.store.presence(Registry::Citizens);
        for key in &asked {
            assert_eq!(probe.contains(key).unwrap(), stored.contains(key), "{}", String::from_utf8_lossy(key));
        }
    }
}

/// A store created empty writes values in the compact format with grid coordinates; a store
/// created before keeps its coding (postcard values with grid steps, or with `f64` pairs), so
/// that a re-sent, unchanged row still compares equal byte for byte with what it holds. All
/// three answer the same records and locations, the newer codings in fewer bytes.
#[test]
fn a_new_store_writes_the_newest_coding_and_an_older_one_keeps_its_own() {
    use jichu::store::codec::{self, ValueCoding};
    let compact = TestStore::new();
    // Stores earlier versions created: they had reserved a load id, and lack the markers of
    // the codings that came after them.
    let older = |markers: &'static [&'static [u8]]| {
        TestStore::new().reopen_after(move |path| {
            let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap();
            let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), path, &names).unwrap();
            let meta = db.cf_handle("meta").unwrap();
            for m in markers {
                db.delete_cf(meta, m).unwrap();
            }
            db.put_cf(meta, b"next_load", 1u32.to_le_bytes()).unwrap();
        })
    };
    let grid = older(&[b"values_compact"]);
    let float = older(&[b"values_compact", b"points_on_grid"]);
    // A store an earlier version created and never loaded takes the newest coding.
    let unused = TestStore::new().reopen_after(|path| {
        let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), path, &names).unwrap();
        db.delete_cf(db.cf_handle("meta").unwrap(), b"values_compact").unwrap();
    });
    assert_eq!(unused.store.value_coding(), ValueCoding::Compact);
    let stores = [&compact, &grid, &float];
    let codings = [ValueCoding::Compact, ValueCoding::Grid, ValueCoding::Float];
    assert_eq!(stores.map(|t| t.store.value_coding()), codings);
    for t in stores {
        for stem in ["citizens", "parcels"] {
            t.load_fixture(stem);
        }
    }
    // Each keeps its coding across a reopen, loads or not.
    let (compact, grid, float) = (compact.reopen(), grid.reopen(), float.reopen());
    let stores = [&compact, &grid, &float];
    assert_eq!(stores.map(|t| t.store.value_coding()), codings);
    let raw = |t: &TestStore, r: Registry| -> Vec<jichu::store::KeyValue> {
        t.store.reader().scan(r).map(|kv| kv.unwrap()).collect()
    };
    for r in [Registry::Citizens, Registry::Parcels] {
        let all = stores.map(|t| raw(t, r));
        let mut bytes = [0usize; 3];
        for (i, kvs) in all.iter().enumerate() {
            assert_eq!(kvs.len(), all[0].len());
            for ((k, v), (k0, v0)) in kvs.iter().zip(&all[0]) {
                assert_eq!(k, k0);
                let id = std::str::from_utf8(k).unwrap();
                let (a, b) = (codec::decode(r, id, v).unwrap(), codec::decode(r, id, v0).unwrap());
                assert_eq!(a.values, b.values, "{r} {id}");
                bytes[i] += v.len();
            }
        }
        assert!(bytes[0] < bytes[1] && bytes[1] < bytes[2], "{r}: compact, grid, f64: {bytes:?}");
    }
    let points =
        |t: &TestStore| -> Vec<_> { t.store.reader().points(Registry::Citizens).map(|p| p.unwrap()).collect() };
    assert_eq!(points(&grid), points(&float));
    assert_eq!(points(&compact), points(&float));
    // `jichu stats` says which, and what re-creating an f64 store would save.
    let f = stores.map(|t| jichu::footprint::Footprint::measure(&t.store));
    assert_eq!(f.each_ref().map(|f| f.value_coding), codings);
    assert!(f[2].markdown().contains("coordinates as f64 pairs") && !f[1].markdown().contains("f64 pairs"));
    assert!(f[1].markdown().contains("value format 1") && !f[0].markdown().contains("value format 1"));
    // The same extracts again: nothing changed, in any store.
    for t in stores {
        for stem in ["citizens", "parcels"] {
            let report = t.load_fixture(stem);
            assert_eq!((report.inserted, report.updated), (0, 0), "{stem}: {report:?}");
            assert!(report.unchanged > 0);
        }
    }
}

/// A batch is answered in memory only when it is there: reading it from the files is for the
/// query pool, and fills the block cache so that the next batch over the same blocks is.
#[test]
fn a_batch_in_memory_reads_no_file_and_one_read_from_files_is_then_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let x = tmp.path().join("x");
    jichu::generator::generate(&x, &jichu::generator::GenOptions { citizens: 20_000, seed: 5 }).unwrap();
    let options = StoreOptions { block_cache_bytes: 64 << 20, history_retention_days: None };
    let dir = tmp.path().join("store");
    let store = Store::open(&dir, &options).unwrap();
    let spec = x.join("citizens.toml");
    let parsed = Spec::from_path(&spec).unwrap();
    jichu::load::load(&store, &parsed, &spec, &[x.join("citizens.csv")], &LoadOptions::new(tmp.path())).unwrap();
    drop(store);
    // Reopened: nothing of the records in the cache.
    let store = Store::open(&dir, &options).unwrap();
    let r = Registry::Citizens;
    let batches: Vec<Vec<String>> =
        (0..3).map(|b| (0..100).map(|i| jichu::generator::citizen_id(b * 2_000 + i * 20)).collect()).collect();
    // Keys spread over the store: 3 batches touch well under its ~450 blocks.
    for batch in &batches {
        let cache = store.memory().block_cache_bytes;
        assert_eq!(store.reader().get_many_cached(r, batch).unwrap().map(|v| v.len()), None, "answered from files");
        assert_eq!(store.memory().block_cache_bytes, cache, "the in-memory attempt read blocks");
        let read = store.reader().get_many(r, batch).unwrap();
        assert_eq!(read.iter().flatten().count(), 100);
        let cached = store.reader().get_many_cached(r, batch).unwrap().expect("in memory after a read");
        assert_eq!(
            cached.iter().map(|c| c.as_ref().map(|c| &c.id)).collect::<Vec<_>>(),
            read.iter().map(|c| c.as_ref().map(|c| &c.id)).collect::<Vec<_>>()
        );
    }
}
