//! Extracts as departments really send them: Windows line ends, open-ended validity, code
//! lists, typo'd credit codes, padded names and what spreadsheets do to cells.

use crate::common::{TestStore, expected_rejects, fixture, reject_lines};
use jichu::model::Registry;
use jichu_ingest::{LoadReport, OPEN_END, Value};
use std::path::{Path, PathBuf};

fn check_invariants(r: &LoadReport) {
    assert_eq!(r.read, r.accepted + r.rejected, "{r:?}");
    assert_eq!(r.accepted, r.inserted + r.updated + r.unchanged + r.duplicates, "{r:?}");
    assert_eq!(r.rejected, r.rejected_by_reason.values().sum::<u64>());
}

fn rejects_of(t: &TestStore, r: &LoadReport) -> PathBuf {
    t.dir.path().join("rejects").join(format!("load-{}.csv", r.load_id))
}

/// The rejects file's rows for `line`: `(reason, message)`.
fn reject_message(path: &Path, line: u64) -> (String, String) {
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let row = rdr.records().map(Result::unwrap).find(|r| r[0].parse::<u64>().unwrap() == line).unwrap();
    (row[1].to_string(), row[2].to_string())
}

fn spec_with(t: &TestStore, stem: &str, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(fixture(&format!("{stem}.toml"))).unwrap();
    let (head, columns) = text.split_once("[columns]").unwrap();
    let path = t.dir.path().join(format!("{stem}-{}.toml", extra.len()));
    std::fs::write(&path, format!("{head}{extra}\n[columns]{columns}")).unwrap();
    path
}

#[test]
fn windows_extracts_reject_exactly_their_bad_rows_at_the_right_lines() {
    let t = TestStore::new();
    t.load_fixture("entities");
    for stem in ["citizens_crlf", "licences_crlf"] {
        let r = t.load_fixture(stem);
        check_invariants(&r);
        assert_eq!(reject_lines(&rejects_of(&t, &r)), expected_rejects(stem), "{stem}");
    }
}

/// The licences fixture in every line-end style, with and without a final line end: a
/// quoted field with a line break inside, bad rows at the start, the middle and the end.
#[test]
fn line_numbers_are_physical_lines_whatever_the_line_ends() {
    let crlf = std::fs::read(fixture("licences_crlf.csv")).unwrap();
    let text = String::from_utf8(crlf).unwrap();
    let want = expected_rejects("licences_crlf");
    assert_eq!(want.last().unwrap().0, 12, "the last line is a bad row");
    for (style, end) in [("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")] {
        for final_end in [true, false] {
            let t = TestStore::new();
            let mut body = text.replace("\r\n", end);
            if !final_end {
                body.truncate(body.len() - end.len());
            }
            let path = t.dir.path().join(format!("licences-{style}-{final_end}.csv"));
            std::fs::write(&path, body).unwrap();
            let r = t.load(&fixture("licences_crlf.toml"), &[path]);
            check_invariants(&r);
            assert_eq!(r.read, 10, "{style} final_end={final_end}");
            assert_eq!(reject_lines(&rejects_of(&t, &r)), want, "{style} final_end={final_end}");
        }
    }
}

#[test]
fn open_ended_validity_loads_as_no_end_and_only_where_a_validity_ends() {
    let t = TestStore::new();
    let r = t.load_fixture("licences_crlf");
    assert_eq!(r.inserted, 6);
    for id in ["LC0000000002", "LC0000000003", "LC0000000004", "LC0000000005", "LC0000000006"] {
        let l = t.store.get(Registry::Licences, id).unwrap().unwrap();
        assert_eq!(l.value("valid_until"), Some(&Value::Date(OPEN_END)), "{id}");
        let json = l.to_json(None, None);
        assert_eq!(json["valid_until"], serde_json::Value::Null, "{id}: {json}");
        assert_eq!(json["open_ended"], true, "{id}");
    }
    let dated = t.store.get(Registry::Licences, "LC0000000007").unwrap().unwrap();
    assert_eq!(dated.to_json(None, None)["valid_until"], "2026-01-02");
    assert!(dated.to_json(None, None).get("open_ended").is_none());
    // `长期` as a date of issue is refused, and the message says why.
    let (reason, message) = reject_message(&rejects_of(&t, &r), 10);
    assert_eq!(reason, "invalid_date");
    assert!(message.contains("issued_on") && message.contains("no end"), "{message}");
    // Midnight date-times are dates; status synonyms are made canonical; the apostrophe goes.
    let doctor = t.store.get(Registry::Licences, "LC0000000006").unwrap().unwrap();
    assert_eq!(doctor.value("issued_on"), Some(&Value::Date(chrono::NaiveDate::from_ymd_opt(2016, 3, 1).unwrap())));
    let trade = t.store.get(Registry::Licences, "LC0000000003").unwrap().unwrap();
    assert_eq!(trade.text("status"), Some("有效"));
    let teacher = t.store.get(Registry::Licences, "LC0000000005").unwrap().unwrap();
    assert_eq!(teacher.text("holder_id"), Some("350203195302111033"));
    assert_eq!(teacher.text("holder_name"), Some("林秀英"), "padding inside a name is removed");

    // A spec may add its own words.
    let t = TestStore::new();
    let path = t.dir.path().join("own-words.csv");
    std::fs::write(
        &path,
        "证照编号,证照类型,持证主体代码,持证主体名称,发证机关,发证日期,有效期至,证照状态\n\
         OW1,教师资格证,350203195302111033,林秀英,厦门市教育局,2012-09-01,终身,有效\n",
    )
    .unwrap();
    let r = t.load(&fixture("licences_crlf.toml"), std::slice::from_ref(&path));
    assert_eq!(r.rejected, 1, "终身 is not a default word");
    let r = t.load(&spec_with(&t, "licences_crlf", "open_ended_values = [\"终身\"]"), &[path]);
    assert_eq!(r.inserted, 1);
    let l = t.store.get(Registry::Licences, "OW1").unwrap().unwrap();
    assert_eq!(l.value("valid_until"), Some(&Value::Date(OPEN_END)));
}

#[test]
fn coded_fields_hold_one_canonical_value() {
    let t = TestStore::new();
    let r = t.load_fixture("citizens_crlf");
    check_invariants(&r);
    let ethnicity =
        |id: &str| t.store.get(Registry::Citizens, id).unwrap().unwrap().text("ethnicity").map(String::from);
    let mut by_value = std::collections::BTreeMap::new();
    for kv in t.store.scan(Registry::Citizens) {
        let (k, _) = kv.unwrap();
        let id = String::from_utf8(k.to_vec()).unwrap();
        *by_value.entry(ethnicity(&id).unwrap()).or_insert(0) += 1;
    }
    // `01`, `汉` and `1` are all 汉族; `22` is 畲族; `回族` stays.
    assert_eq!(by_value.get("汉族"), Some(&3), "{by_value:?}");
    assert_eq!(by_value.get("畲族"), Some(&1), "{by_value:?}");
    assert_eq!(by_value.get("回族"), Some(&1), "{by_value:?}");
    assert_eq!(by_value.len(), 3, "no raw code is stored: {by_value:?}");
    let (reason, message) = reject_message(&rejects_of(&t, &r), 7);
    assert_eq!(reason, "invalid_value");
    assert!(message.contains("ethnicity") && message.contains("GB 3304"), "{message}");
    // Gender 9 (unspecified) gives way to the identity number's.
    let ma = t.store.scan(Registry::Citizens).map(|kv| kv.unwrap()).find_map(|(k, v)| {
        let r = jichu::store::codec::decode(Registry::Citizens, std::str::from_utf8(&k).unwrap(), &v).unwrap();
        (r.text("name") == Some("马丽")).then_some(r)
    });
    assert_eq!(ma.unwrap().text("gender"), Some("男"));
}

#[test]
fn names_lose_padding_between_han_characters_only() {
    let t = TestStore::new();
    t.load_fixture("citizens_crlf");
    let names: Vec<String> = t
        .store
        .scan(Registry::Citizens)
        .map(|kv| {
            let (k, v) = kv.unwrap();
            let r = jichu::store::codec::decode(Registry::Citizens, std::str::from_utf8(&k).unwrap(), &v).unwrap();
            r.text("name").unwrap().to_string()
        })
        .collect();
    for want in ["王磊", "李娜", "欧阳娜娜"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    assert!(names.iter().all(|n| !n.contains(' ')), "{names:?}");
}

#[test]
fn spreadsheet_damage_is_repaired_or_explained() {
    let t = TestStore::new();
    let r = t.load_fixture("citizens_crlf");
    let rejects = rejects_of(&t, &r);
    let (reason, message) = reject_message(&rejects, 2);
    assert_eq!(reason, "invalid_id");
    assert!(message.contains("scientific notation") && message.contains("digits are lost"), "{message}");
    let (reason, message) = reject_message(&rejects, 9);
    assert_eq!(reason, "invalid_date");
    assert!(message.contains("not midnight"), "{message}");
    // The apostrophe-marked number loaded without its apostrophe; the midnight date-time loaded.
    assert!(t.store.get(Registry::Citizens, "35020319850811222X").unwrap().is_some());
    let wang = t.store.get(Registry::Citizens, "350203198508111112").unwrap().unwrap();
    assert_eq!(wang.value("birth_date"), Some(&Value::Date(chrono::NaiveDate::from_ymd_opt(1985, 8, 11).unwrap())));
}

#[test]
fn a_typo_in_a_fujian_credit_code_is_rejected_and_pilot_codes_are_allowed_on_purpose() {
    let pilot = "91350211M0000XUF46";
    // By default a code failing its check is rejected, even in Fujian, with a way out named.
    let t = TestStore::new();
    t.load_fixture("citizens");
    let r = t.load_fixture("entities");
    assert_eq!(r.flagged_for_review, 0);
    assert!(t.store.get(Registry::Entities, pilot).unwrap().is_none());
    let (reason, message) = reject_message(&rejects_of(&t, &r), 5);
    assert_eq!(reason, "invalid_id");
    assert!(message.contains("check character") && message.contains("pilot_codes_file"), "{message}");
    let r = t.load_fixture("licences_crlf");
    let (reason, message) = reject_message(&rejects_of(&t, &r), 11);
    assert_eq!(reason, "invalid_id", "two swapped characters of a Xiamen code: {message}");

    // An allow-listed pilot code loads, unflagged (it is known to be genuine).
    let t = TestStore::new();
    t.load_fixture("citizens");
    let mut opts = t.options();
    opts.pilot_codes = std::sync::Arc::new([pilot.to_string()].into_iter().collect());
    let r = t.try_load(&fixture("entities.toml"), &[fixture("entities.csv")], &opts).unwrap();
    assert_eq!((r.rejected, r.flagged_for_review), (3, 0));
    assert!(!t.store.get(Registry::Entities, pilot).unwrap().unwrap().needs_review);

    // `accept_fujian_pilot_codes = true`: the old behaviour, loaded and flagged for review.
    let t = TestStore::new();
    t.load_fixture("citizens");
    let r = t.load(&spec_with(&t, "entities", "accept_fujian_pilot_codes = true"), &[fixture("entities.csv")]);
    assert_eq!((r.rejected, r.flagged_for_review), (3, 1));
    assert!(t.store.get(Registry::Entities, pilot).unwrap().unwrap().needs_review);
}

#[test]
fn the_pilot_codes_file_is_read_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = jichu::config::Config { data_dir: dir.path().into(), ..Default::default() };
    assert!(config.pilot_codes().unwrap().is_empty(), "no file, no codes");
    std::fs::write(dir.path().join("pilot_codes.txt"), "# genuine early Xiamen codes\n91350211m0000xuf46\n\n").unwrap();
    assert_eq!(config.pilot_codes().unwrap().into_iter().collect::<Vec<_>>(), ["91350211M0000XUF46"]);
    let other = dir.path().join("other.txt");
    std::fs::write(&other, "91350211M0000XUF46\nnot a code\n").unwrap();
    config.pilot_codes_file = Some(other);
    let err = config.pilot_codes().unwrap_err().to_string();
    assert!(err.contains("line 2"), "{err}");
}

/// `jichu load` itself, on the Windows extract: its report and rejects files.
#[test]
fn jichu_load_reports_a_windows_extract() {
    let dir = tempfile::tempdir().unwrap();
    let (report, rejects) = (dir.path().join("report.json"), dir.path().join("rejects.csv"));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_jichu"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--log", "warn", "load", "--spec"])
        .arg(fixture("citizens_crlf.toml"))
        .arg(fixture("citizens_crlf.csv"))
        .arg("--report")
        .arg(&report)
        .arg("--rejects")
        .arg(&rejects)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!((r["read"].as_u64(), r["accepted"].as_u64(), r["rejected"].as_u64()), (Some(9), Some(5), Some(4)));
    assert_eq!(r["rejected_by_reason"], serde_json::json!({"invalid_date": 1, "invalid_id": 2, "invalid_value": 1}));
    assert_eq!(reject_lines(&rejects), expected_rejects("citizens_crlf"));
}
