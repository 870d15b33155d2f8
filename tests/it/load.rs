//! Loading the fixtures: every expected reject, every loaded value, idempotence, updates,
//! snapshots, references and spec errors.

use crate::common::{TestStore, expected_rejects, fixture, reject_lines, write_variant};
use jichu::model::Registry;
use jichu_ingest::{LoadReport, Value};
use std::path::PathBuf;

fn check_invariants(r: &LoadReport) {
    assert_eq!(r.read, r.accepted + r.rejected, "{r:?}");
    assert_eq!(r.accepted, r.inserted + r.updated + r.unchanged + r.duplicates, "{r:?}");
    assert_eq!(r.rejected, r.rejected_by_reason.values().sum::<u64>());
}

fn rejects_file(t: &TestStore, r: &LoadReport) -> PathBuf {
    t.dir.path().join("rejects").join(format!("load-{}.csv", r.load_id))
}

#[test]
fn every_fixture_rejects_exactly_its_bad_rows() {
    let t = TestStore::new();
    for stem in ["citizens", "citizens_gb18030", "entities", "parcels", "credit", "licences"] {
        let r = t.load_fixture(stem);
        check_invariants(&r);
        let want = if stem == "citizens" { vec![] } else { expected_rejects(stem) };
        assert_eq!(reject_lines(&rejects_file(&t, &r)), want, "{stem}");
    }
}

#[test]
fn gb18030_extract_is_normalised_on_load() {
    let t = TestStore::new();
    let r = t.load_fixture("citizens_gb18030");
    assert_eq!(r.read, 21);
    assert_eq!(r.rejected, 13);
    assert_eq!(r.duplicates, 1, "the identical repeat counts once");
    assert_eq!(r.inserted, 7);
    assert_eq!(t.store.count(Registry::Citizens), 7);

    // Full-width digits and Ｘ, surrounding spaces; phone folded to half-width.
    let wu = t.store.get(Registry::Citizens, "350205199004122026").unwrap().unwrap();
    assert_eq!(wu.text("name"), Some("吴丽"), "the padding between two characters is removed");
    assert_eq!(wu.text("phone"), Some("13950002222"));
    assert_eq!(wu.value("birth_date"), Some(&Value::Date(chrono::NaiveDate::from_ymd_opt(1990, 4, 12).unwrap())));
    assert_eq!(wu.text("gender"), Some("女"));

    // A lower-case x, a date written 1978年5月6日, GCJ-02 converted to WGS84 (hundreds of metres).
    let zheng = t.store.get(Registry::Citizens, "35021119780506301X").unwrap().unwrap();
    assert_eq!(zheng.value("birth_date"), Some(&Value::Date(chrono::NaiveDate::from_ymd_opt(1978, 5, 6).unwrap())));
    let Some(Value::Point(p)) = zheng.value("location") else { panic!("no location") };
    let shift_m = ((p.x() - 118.1012) * 101_000.0).hypot((p.y() - 24.5913) * 111_000.0);
    assert!((200.0..900.0).contains(&shift_m), "GCJ-02 shift {shift_m} m");
    let (gx, gy) = jichu_ingest::wgs84_to_gcj02(p.x(), p.y());
    assert!((gx - 118.1012).abs() < 1e-7 && (gy - 24.5913).abs() < 1e-7);

    // The old 15-digit number is upgraded; the remarks column is kept as an extra attribute.
    let upgraded = jichu::model::ids::parse_resident_id("350213680808051").unwrap().id;
    let cai = t.store.get(Registry::Citizens, &upgraded).unwrap();
    let cai = cai.expect("15-digit number upgraded and loaded");
    assert_eq!(cai.extras, vec![("备注".to_string(), "旧证号".to_string())]);
    assert_eq!(cai.value("birth_date"), Some(&Value::Date(chrono::NaiveDate::from_ymd_opt(1968, 8, 8).unwrap())));

    // Gender derived from the number when the column is empty.
    let huang = t.store.get(Registry::Citizens, "350213197202034060").unwrap().unwrap();
    assert_eq!(huang.text("gender"), Some("女"));

    // Neither of the conflicting rows was loaded.
    assert!(t.store.get(Registry::Citizens, "35020319660606607X").unwrap().is_none());
}

#[test]
fn rejects_carry_line_reason_message_and_raw_text() {
    let t = TestStore::new();
    let r = t.load_fixture("citizens_gb18030");
    let mut rdr = csv::Reader::from_path(rejects_file(&t, &r)).unwrap();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    let check = rows.iter().find(|r| &r[0] == "5").unwrap();
    assert_eq!(&check[1], "invalid_id");
    assert!(check[2].contains("check character"), "{}", &check[2]);
    assert!(check[3].starts_with("350203198001010011,陈错号"), "raw is decoded text: {}", &check[3]);
    let dup = rows.iter().find(|r| &r[0] == "20").unwrap();
    assert!(dup[2].contains("lines 20, 21"), "{}", &dup[2]);
    assert!(dup[3].contains("周一"));
}

#[test]
fn loading_the_same_file_twice_changes_nothing() {
    let t = TestStore::new();
    let first = t.load_fixture("citizens");
    assert_eq!((first.inserted, first.path.as_str()), (16, "bulk"));
    let seq = t.store.sequence();
    let second = t.load_fixture("citizens");
    check_invariants(&second);
    assert_eq!((second.inserted, second.updated, second.unchanged), (0, 0, 16));
    assert_eq!(second.path, "batch");
    assert_eq!(t.store.count(Registry::Citizens), 16);
    // Only the load's own bookkeeping was written, no record.
    assert!(t.store.sequence() - seq < 5);
}

#[test]
fn a_newer_extract_updates_only_what_changed_and_records_lineage() {
    let t = TestStore::new();
    let first = t.load_fixture("citizens");
    let newer = write_variant(&t, "citizens", |l| {
        Some(if l.contains("陈志强") { l.replace("中山路1号", "中山路99号") } else { l.to_string() })
    });
    let r = t.load(&fixture("citizens.toml"), &[newer]);
    assert_eq!((r.inserted, r.updated, r.unchanged), (0, 1, 15));
    let chen = t.store.get(Registry::Citizens, "35020319500110100X").unwrap().unwrap();
    assert_eq!(chen.text("household_address"), Some("福建省厦门市思明区中山路99号"));
    assert_eq!(chen.load_id as u64, r.load_id);
    let lin = t.store.get(Registry::Citizens, "350203195302111033").unwrap().unwrap();
    assert_eq!(lin.load_id as u64, first.load_id, "unchanged records keep their lineage");
    let lineage = t.store.lineage(chen.load_id).unwrap();
    assert_eq!(lineage.source, "市公安局");
    assert!(lineage.report.is_some());
}

#[test]
fn a_snapshot_ends_what_its_source_no_longer_holds() {
    let t = TestStore::new();
    t.load_fixture("citizens");
    t.load_fixture("citizens_gb18030"); // another source: never ended by the first one's snapshot
    // 陈志强 and 吴海峰 are gone; 林秀英's row is there but rejected (a bad date): not ended.
    let subset = write_variant(&t, "citizens", |l| {
        (!l.contains("陈志强") && !l.contains("吴海峰"))
            .then(|| l.replace("林秀英,男,汉,1953-02-11", "林秀英,男,汉,1953-02-31"))
    });
    let spec_text = std::fs::read_to_string(fixture("citizens.toml"))
        .unwrap()
        .replace("encoding = \"utf-8\"", "encoding = \"utf-8\"\nmode = \"snapshot\"");
    let spec = t.dir.path().join("snapshot.toml");
    std::fs::write(&spec, spec_text).unwrap();
    let r = t.load(&spec, &[subset]);
    check_invariants(&r);
    assert_eq!((r.ended, r.unchanged, r.rejected), (2, 13, 1));
    let chen = t.store.get(Registry::Citizens, "35020319500110100X").unwrap().unwrap();
    assert!(chen.ended, "ended, not erased");
    let lin = t.store.get(Registry::Citizens, "350203195302111033").unwrap().unwrap();
    assert!(!lin.ended, "a rejected row still says its record is in the extract");
    assert_eq!(t.store.count(Registry::Citizens), 23);
    let other = t.store.get(Registry::Citizens, "350213197202034060").unwrap().unwrap();
    assert!(!other.ended);
    // Sent again, an ended record comes back.
    let r = t.load_fixture("citizens");
    assert_eq!(r.updated, 2);
    assert!(!t.store.get(Registry::Citizens, "35020319500110100X").unwrap().unwrap().ended);
}

#[test]
fn references_to_absent_records_are_kept_and_resolve_later() {
    let t = TestStore::new();
    let r = t.load_fixture("licences");
    assert_eq!(r.dangling_references, 5, "no holder is loaded yet");
    let holder = "35020319500110100X";
    let edges = t.store.relations(Registry::Citizens, holder).unwrap();
    assert_eq!(edges.len(), 1, "the reverse link exists before the holder does");
    t.load_fixture("citizens");
    let citizen = t.store.get(Registry::Citizens, holder).unwrap();
    assert!(citizen.is_some());
    assert_eq!(t.store.relations(Registry::Citizens, holder).unwrap()[0].registry, Registry::Licences);
}

/// A load's references are checked on several threads, in batches: each reference to a
/// record the store lacks is counted once, a repeated one each time, across batch edges.
#[test]
fn every_reference_to_an_absent_record_is_counted_by_the_parallel_check() {
    let t = TestStore::new();
    let dir = t.dir.path().join("gen");
    jichu::generator::generate(&dir, &jichu::generator::GenOptions { citizens: 12_000, seed: 11 }).unwrap();
    let csv = |name: &str| std::fs::read_to_string(dir.join(format!("{name}.csv"))).unwrap();
    // Every fifth citizen and every third entity are left out of their loads.
    let mut loaded = std::collections::HashSet::new();
    for (name, skip) in [("citizens", 5), ("entities", 3)] {
        let text = csv(name);
        let mut lines = text.lines();
        let mut kept = vec![lines.next().unwrap().to_string()];
        for (i, line) in lines.enumerate() {
            if i % skip != 0 {
                loaded.insert(line.split(',').next().unwrap().to_string());
                kept.push(line.to_string());
            }
        }
        let path = dir.join(format!("{name}-kept.csv"));
        std::fs::write(&path, kept.join("\n") + "\n").unwrap();
        let mut opts = t.options();
        opts.threads = 2;
        t.try_load(&dir.join(format!("{name}.toml")), &[path], &opts).unwrap();
    }
    for (name, column) in [("licences", "持证主体代码"), ("credit", "主体代码")] {
        let text = csv(name);
        let mut lines = text.lines();
        let at = lines.next().unwrap().split(',').position(|c| c == column).unwrap();
        let targets: Vec<String> = lines.map(|l| l.split(',').nth(at).unwrap().to_string()).collect();
        let absent = targets.iter().filter(|id| !loaded.contains(*id)).count() as u64;
        let distinct: std::collections::HashSet<&String> = targets.iter().collect();
        assert!(targets.len() > 3 * 1024 && distinct.len() < targets.len(), "several batches, repeated targets");
        assert!(absent > 100 && absent < targets.len() as u64 / 2);
        let mut opts = t.options();
        opts.threads = 2;
        let r = t.try_load(&dir.join(format!("{name}.toml")), &[dir.join(format!("{name}.csv"))], &opts).unwrap();
        assert_eq!(r.path, "bulk");
        assert_eq!((r.accepted, r.dangling_references), (targets.len() as u64, absent), "{name}");
        // Sent again, every row is unchanged and every reference is checked again, by the
        // batch path's sorted check.
        let r = t.try_load(&dir.join(format!("{name}.toml")), &[dir.join(format!("{name}.csv"))], &opts).unwrap();
        assert_eq!(r.path, "batch");
        assert_eq!((r.unchanged, r.dangling_references), (targets.len() as u64, absent), "{name} again");
    }
}

#[test]
fn entities_load_with_their_references_and_exact_capital() {
    let t = TestStore::new();
    t.load_fixture("citizens");
    let r = t.load_fixture("entities");
    assert_eq!(r.dangling_references, 1, "one legal representative is not a loaded citizen");
    let capital = t.store.get(Registry::Entities, &r_first_entity()).unwrap().unwrap();
    assert_eq!(capital.value("registered_capital").map(|v| format!("{v:?}")), Some("Decimal(1000.50)".into()));
}

fn r_first_entity() -> String {
    let text = std::fs::read_to_string(fixture("entities.csv")).unwrap();
    text.lines().nth(1).unwrap().split(',').next().unwrap().to_string()
}

#[test]
fn spec_errors_stop_before_any_row_is_loaded() {
    let t = TestStore::new();
    let cases = [
        (
            "registry = \"citizenz\"\nsource = \"x\"\n[columns]\nid = \"公民身份号码\"\nname = \"姓名\"\n",
            "unknown registry `citizenz`",
        ),
        (
            "registry = \"citizens\"\nsource = \"x\"\n[columns]\nid = \"公民身份号码\"\nname = \"姓名\"\nshoe_size = \"鞋码\"\n",
            "unknown field `shoe_size`",
        ),
        (
            "registry = \"citizens\"\nsource = \"x\"\n[columns]\nid = \"公民身份号码\"\nname = \"名字\"\n",
            "column `名字`",
        ),
        ("registry = \"citizens\"\nsource = \"x\"\n[columns]\nid = \"公民身份号码\"\n", "required field `name`"),
        (
            "registry = \"citizens\"\nsource = \"x\"\n[columns]\nid = \"公民身份号码\"\nname = \"姓名\"\nlon = \"经度\"\n",
            "both `lon` and `lat`",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let spec = t.dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&spec, text).unwrap();
        let err = t.try_load(&spec, &[fixture("citizens.csv")], &t.options()).unwrap_err().to_string();
        assert!(err.contains(want), "{err} should contain {want}");
        assert!(err.contains(&format!("bad-{i}.toml")) || err.contains("citizens.csv"), "says where: {err}");
    }
    assert_eq!(t.store.count(Registry::Citizens), 0);
    assert!(t.store.loads().is_empty(), "no load was started");
}

#[test]
fn multi_run_external_sort_gives_the_same_result() {
    let t = TestStore::new();
    let mut opts = t.options();
    opts.sort_budget = 2048; // forces many spilled runs
    let r = t.try_load(&fixture("citizens_gb18030.toml"), &[fixture("citizens_gb18030.csv")], &opts).unwrap();
    assert_eq!((r.inserted, r.rejected, r.duplicates), (7, 13, 1));
}
