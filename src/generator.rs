//! `jichu gen`: a consistent, deterministic set of the five extracts and their specs, for
//! benchmarks and the demo. About 2.2 records per citizen: 0.3 entities, 0.1 parcels,
//! 0.3 credit records and 0.5 licences. Identifiers are valid and unique (a bijective
//! scramble of the row index), legal representatives and subjects are generated citizens and
//! entities, points lie in Xiamen, parcels are disjoint polygons on a grid.

use crate::error::{Error, Result};
use crate::model::ids::{credit_check_char, org_check_char, resident_check_char};
use chrono::{Duration, NaiveDate};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

const CHUNK: u64 = 50_000;
/// Xiamen's extent `[min_lon, min_lat, max_lon, max_lat]`, used by the generated specs.
pub const EXTENT: [f64; 4] = [117.85, 24.40, 118.45, 24.80];
const DISTRICTS: [(&str, &str); 6] = [
    ("350203", "思明区"),
    ("350205", "海沧区"),
    ("350206", "湖里区"),
    ("350211", "集美区"),
    ("350212", "同安区"),
    ("350213", "翔安区"),
];
const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "罗",
    "高", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田", "董", "袁", "潘", "蔡",
    "蒋", "余", "叶", "杜", "苏", "魏", "程", "吕", "丁", "沈", "任", "姚", "卢", "傅", "钟", "姜", "崔", "谭", "廖",
    "范", "汪", "陆", "金", "石", "戴", "贾", "韦", "夏", "邱", "方", "侯", "邹", "熊", "孟", "秦", "白", "江", "阎",
    "薛", "尹", "段", "雷", "黎", "史", "龙", "陶", "贺", "顾", "毛", "郝", "龚", "邵", "万", "钱", "严", "洪", "欧阳",
    "司马",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "秀", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英",
    "霞", "平", "刚", "桂", "英", "华", "玉", "兰", "文", "建", "国", "志", "海", "金", "荣", "红", "春", "梅", "林",
    "斌", "燕", "辉", "鹏", "宇", "浩", "凯", "晨", "欣", "怡", "婷", "雪", "琳", "晓", "俊", "峰", "婧", "航", "博",
    "佳", "思", "嘉", "子", "睿", "泽", "昊", "梓", "诗", "雨", "涵", "萱", "轩", "宏", "德", "福", "安", "清", "永",
    "东", "南", "北", "山", "水", "云", "天", "星", "月", "光", "鸿", "毅",
];
const ROADS: &[&str] = &[
    "中山路",
    "湖滨南路",
    "湖滨北路",
    "嘉禾路",
    "厦禾路",
    "思明南路",
    "思明北路",
    "鹭江道",
    "环岛路",
    "莲前西路",
    "莲前东路",
    "仙岳路",
    "吕岭路",
    "金尚路",
    "湖里大道",
    "枋湖路",
    "江头北路",
    "县后路",
    "海沧大道",
    "新阳路",
    "翁角路",
    "马銮路",
    "集美大道",
    "杏林湾路",
    "银江路",
    "滨水路",
    "同安大道",
    "环城南路",
    "西柯街",
    "翔安南路",
    "新店路",
    "民安大道",
    "文屏路",
    "软件园二期观日路",
    "岭兜路",
    "松柏路",
    "槟榔路",
    "禾祥西路",
    "育秀路",
    "湖光路",
    "长青路",
    "何厝路",
    "前埔路",
    "洪莲路",
    "台东路",
    "会展路",
    "岭下路",
    "后埔路",
];
const INDUSTRY: &[&str] = &[
    "科技",
    "贸易",
    "信息技术",
    "建筑工程",
    "餐饮管理",
    "物流",
    "电子商务",
    "医药",
    "文化传媒",
    "新能源",
    "食品",
    "机械设备",
    "咨询服务",
    "房地产开发",
    "软件",
];
const WORDS: &[&str] = &[
    "鹭岛", "海峡", "嘉庚", "鼓浪", "金鹭", "华厦", "闽南", "海西", "白鹭", "同安", "翔鹭", "集美", "思明", "湖里",
    "海沧", "禾山", "东方", "宏达", "恒信", "万达", "盛世", "天成", "新创", "瑞丰", "远航",
];
const KINDS: &[&str] = &["有限责任公司", "股份有限公司", "个人独资企业", "合伙企业", "农民专业合作社", "个体工商户"];
const ETHNICITIES: &[&str] =
    &["汉", "汉", "汉", "汉", "汉", "汉", "汉", "汉", "汉", "回", "畲", "满", "壮", "苗", "土家", "高山"];
const LICENCE_TYPES: &[(&str, &str)] = &[
    ("营业执照", "厦门市市场监督管理局"),
    ("食品经营许可证", "厦门市市场监督管理局"),
    ("道路运输经营许可证", "厦门市交通运输局"),
    ("建筑业企业资质证书", "厦门市建设局"),
    ("机动车驾驶证", "厦门市公安局交通警察支队"),
    ("教师资格证", "厦门市教育局"),
    ("医师执业证书", "厦门市卫生健康委员会"),
    ("卫生许可证", "厦门市卫生健康委员会"),
];
const CREDIT_CATEGORIES: &[&str] = &["行政许可", "行政许可", "行政处罚", "守信激励", "失信惩戒"];
const LAND_USES: &[&str] =
    &["住宅用地", "商业用地", "工业用地", "公共管理与公共服务用地", "交通运输用地", "物流仓储用地"];

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenOptions {
    pub citizens: u64,
    pub seed: u64,
}

/// Counts of generated rows per extract.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GenCounts {
    pub citizens: u64,
    pub entities: u64,
    pub parcels: u64,
    pub credit: u64,
    pub licences: u64,
    pub bytes: u64,
}

impl GenOptions {
    fn entities(&self) -> u64 {
        (self.citizens * 3 / 10).max(1)
    }
    fn parcels(&self) -> u64 {
        (self.citizens / 10).max(1)
    }
    fn credit(&self) -> u64 {
        self.citizens * 3 / 10
    }
    fn licences(&self) -> u64 {
        self.citizens / 2
    }
}

/// A large odd multiplier: `i ↦ i·P mod M` is a bijection on `0..M` when gcd(P, M) = 1.
const SCRAMBLE: u64 = 2_654_435_761;
const ID_SPACE: u64 = 6 * 25_000 * 1000; // districts × birth days × sequence numbers

/// The resident identity number of generated citizen `i` (unique for i < 150M).
pub fn citizen_id(i: u64) -> String {
    let j = (i % ID_SPACE) * SCRAMBLE % ID_SPACE;
    let seq = j % 1000;
    let day = (j / 1000) % 25_000;
    let district = DISTRICTS[(j / 25_000_000) as usize].0;
    let birth = NaiveDate::from_ymd_opt(1940, 1, 1).unwrap_or_default() + Duration::days(day as i64);
    let body = format!("{district}{}{seq:03}", birth.format("%Y%m%d"));
    let check = resident_check_char(body.as_bytes());
    format!("{body}{check}")
}

/// The unified social credit code of generated entity `i` (unique for i < 100M).
pub fn entity_id(i: u64) -> String {
    let district = DISTRICTS[(i % 6) as usize].0;
    // The organisation code's first eight characters: the scrambled index in decimal.
    let org8 = format!("{:08}", (i % 100_000_000) * 48_271 % 100_000_000);
    let org9 = org_check_char(org8.as_bytes());
    let category = [b'1', b'1', b'1', b'2', b'3'][(i % 5) as usize] as char;
    let body = format!("9{category}{district}{org8}{org9}");
    let check = credit_check_char(body.as_bytes());
    format!("{body}{check}")
}

/// The road names addresses are made of (workloads search them).
pub fn roads() -> &'static [&'static str] {
    ROADS
}

fn pick<'a>(rng: &mut SmallRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn name(rng: &mut SmallRng) -> String {
    let mut n = pick(rng, SURNAMES).to_string();
    n.push_str(pick(rng, GIVEN));
    if rng.random_bool(0.6) {
        n.push_str(pick(rng, GIVEN));
    }
    n
}

/// A record's own generator: its name is a function of the seed and its index, so other
/// extracts can name it too (a legal representative, a licence holder).
fn own_rng(seed: u64, what: u64, i: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ what.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// The name of generated citizen `i`.
pub fn citizen_name(seed: u64, i: u64) -> String {
    name(&mut own_rng(seed, 1, i))
}

/// The name and enterprise type of generated entity `i`.
pub fn entity_name(seed: u64, i: u64) -> (String, &'static str) {
    let rng = &mut own_rng(seed, 2, i);
    let kind = pick(rng, KINDS);
    let suffix = if kind.contains("公司") { "有限公司" } else { "经营部" };
    (format!("厦门{}{}{}{suffix}", pick(rng, WORDS), pick(rng, WORDS), pick(rng, INDUSTRY)), kind)
}

fn address(rng: &mut SmallRng, district: &str) -> String {
    format!("福建省厦门市{district}{}{}号{}室", pick(rng, ROADS), rng.random_range(1..400), rng.random_range(101..2800))
}

fn point(rng: &mut SmallRng) -> (f64, f64) {
    (rng.random_range(EXTENT[0] + 0.05..EXTENT[2] - 0.05), rng.random_range(EXTENT[1] + 0.05..EXTENT[3] - 0.05))
}

fn date(rng: &mut SmallRng, from_year: i32, years: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(from_year, 1, 1).unwrap_or_default() + Duration::days(rng.random_range(0..years * 365))
}

fn citizen_row(i: u64, seed: u64, rng: &mut SmallRng, out: &mut String) {
    let id = citizen_id(i);
    let district = DISTRICTS.iter().find(|d| id.starts_with(d.0)).map_or("思明区", |d| d.1);
    let birth = NaiveDate::parse_from_str(&id[6..14], "%Y%m%d").unwrap_or_default();
    let gender = if (id.as_bytes()[16] - b'0') % 2 == 1 { "男" } else { "女" };
    let (lon, lat) = point(rng);
    let _ = writeln!(
        out,
        "{id},{},{gender},{},{},{},{},1{}{:09},{lon:.6},{lat:.6}",
        citizen_name(seed, i),
        pick(rng, ETHNICITIES),
        birth.format("%Y-%m-%d"),
        address(rng, district),
        {
            let other = DISTRICTS[rng.random_range(0..DISTRICTS.len())].1;
            address(rng, other)
        },
        rng.random_range(3..10),
        rng.random_range(0..1_000_000_000u64),
    );
}

fn entity_row(i: u64, o: &GenOptions, rng: &mut SmallRng, out: &mut String) {
    let rep = rng.random_range(0..o.citizens);
    let district = DISTRICTS[(i % 6) as usize].1;
    let (lon, lat) = point(rng);
    let (name, kind) = entity_name(o.seed, i);
    let _ = writeln!(
        out,
        "{},{name},{},{},{},{}.{:02},{kind},{}、{}及相关技术咨询,{},{lon:.6},{lat:.6},{}",
        entity_id(i),
        citizen_name(o.seed, rep),
        citizen_id(rep),
        date(rng, 1990, 35).format("%Y-%m-%d"),
        rng.random_range(1..50_000),
        rng.random_range(0..100),
        pick(rng, INDUSTRY),
        pick(rng, INDUSTRY),
        address(rng, district),
        if rng.random_bool(0.92) { "存续" } else { "注销" },
    );
}

/// Parcels tile a grid over the extent: parcel `i` is a polygon inside cell `i`, so no two
/// overlap. Every tenth has a courtyard (a hole).
fn parcel_row(i: u64, total: u64, rng: &mut SmallRng, out: &mut String) {
    let side = (total as f64).sqrt().ceil() as u64;
    let (w, h) = ((EXTENT[2] - EXTENT[0]) / side as f64, (EXTENT[3] - EXTENT[1]) / side as f64);
    let (cx, cy) = (EXTENT[0] + (i % side) as f64 * w, EXTENT[1] + (i / side) as f64 * h);
    let m = |f: f64| 0.05 + f * 0.1;
    let (x0, y0) = (cx + w * m(rng.random()), cy + h * m(rng.random()));
    let (x1, y1) = (cx + w * (1.0 - m(rng.random())), cy + h * (1.0 - m(rng.random())));
    let xm = (x0 + x1) / 2.0;
    let mut wkt = format!(
        "POLYGON(({x0:.7} {y0:.7},{x1:.7} {y0:.7},{x1:.7} {y1:.7},{xm:.7} {:.7},{x0:.7} {y1:.7},{x0:.7} {y0:.7})",
        y1 + h * 0.02
    );
    if i.is_multiple_of(10) {
        let (hx0, hy0, hx1, hy1) =
            (x0 + (x1 - x0) * 0.4, y0 + (y1 - y0) * 0.4, x0 + (x1 - x0) * 0.6, y0 + (y1 - y0) * 0.6);
        let _ =
            write!(wkt, ",({hx0:.7} {hy0:.7},{hx0:.7} {hy1:.7},{hx1:.7} {hy1:.7},{hx1:.7} {hy0:.7},{hx0:.7} {hy0:.7})");
    }
    wkt.push(')');
    let (district_code, district) = DISTRICTS[(i % 6) as usize];
    let area = (x1 - x0) * 101_000.0 * (y1 - y0) * 111_000.0;
    let _ = writeln!(
        out,
        "{district_code}{:03}{:03}GB{:05},{},{area:.2},\"{}\",\"{wkt}\"",
        (i / 100_000) % 1000,
        (i / 1000) % 100,
        i % 100_000,
        pick(rng, LAND_USES),
        address(rng, district),
    );
}

/// A citizen or an entity: its key and its name.
fn subject(rng: &mut SmallRng, o: &GenOptions) -> (String, String) {
    if rng.random_bool(0.5) {
        let i = rng.random_range(0..o.citizens);
        (citizen_id(i), citizen_name(o.seed, i))
    } else {
        let i = rng.random_range(0..o.entities());
        (entity_id(i), entity_name(o.seed, i).0)
    }
}

fn credit_row(i: u64, o: &GenOptions, rng: &mut SmallRng, out: &mut String) {
    let category = pick(rng, CREDIT_CATEGORIES);
    let decided = date(rng, 2015, 11);
    let _ = writeln!(
        out,
        "XY{}{i:010},{},{category},{}{},{},{},已公示",
        decided.format("%Y"),
        subject(rng, o).0,
        if category == "行政处罚" { "违反" } else { "依据" },
        pick(
            rng,
            &[
                "《食品安全法》第一百二十二条",
                "《道路运输条例》第六十三条",
                "《安全生产法》第九十七条",
                "《税收征收管理法》第六十条",
                "诚信建设相关规定"
            ]
        ),
        decided.format("%Y-%m-%d"),
        LICENCE_TYPES[rng.random_range(0..LICENCE_TYPES.len())].1,
    );
}

fn licence_row(i: u64, o: &GenOptions, rng: &mut SmallRng, out: &mut String) {
    let (licence_type, issuer) = LICENCE_TYPES[rng.random_range(0..LICENCE_TYPES.len())];
    let issued = date(rng, 2010, 15);
    let (holder, holder_name) = subject(rng, o);
    let _ = writeln!(
        out,
        "ZZ{:02}{i:012},{licence_type},{holder},{holder_name},{issuer},{},{},{}",
        i % 97,
        issued.format("%Y-%m-%d"),
        (issued + Duration::days(365 * 5)).format("%Y-%m-%d"),
        if rng.random_bool(0.9) { "有效" } else { "注销" },
    );
}

/// Writes `rows` rows, generated in parallel chunks (each with its own seeded RNG, so the
/// output is the same for a seed whatever the thread count), in order.
fn write_csv(
    dir: &Path,
    name: &str,
    header: &str,
    rows: u64,
    seed: u64,
    row: impl Fn(u64, &mut SmallRng, &mut String) + Sync,
) -> Result<u64> {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).map_err(Error::io(&path))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    writeln!(w, "{header}").map_err(Error::io(&path))?;
    let mut bytes = header.len() as u64 + 1;
    let chunks: Vec<u64> = (0..rows.div_ceil(CHUNK)).collect();
    for group in chunks.chunks(16) {
        let texts: Vec<String> = group
            .par_iter()
            .map(|&c| {
                let mut rng = SmallRng::seed_from_u64(seed ^ c.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ name.len() as u64);
                let mut out = String::with_capacity(CHUNK as usize * 200);
                for i in c * CHUNK..((c + 1) * CHUNK).min(rows) {
                    row(i, &mut rng, &mut out);
                }
                out
            })
            .collect();
        for t in texts {
            bytes += t.len() as u64;
            w.write_all(t.as_bytes()).map_err(Error::io(&path))?;
        }
    }
    w.flush().map_err(Error::io(&path))?;
    Ok(bytes)
}

fn write_spec(dir: &Path, name: &str, registry: &str, source: &str, columns: &[(&str, &str)]) -> Result<()> {
    let path = dir.join(name);
    let mut s = format!(
        "registry = \"{registry}\"\nsource = \"{source}\"\nencoding = \"utf-8\"\nmode = \"delta\"\ncrs = \"wgs84\"\nextent = {EXTENT:?}\n\n[columns]\n"
    );
    for (field, header) in columns {
        let _ = writeln!(s, "{field} = \"{header}\"");
    }
    std::fs::write(&path, s).map_err(Error::io(&path))
}

/// The header of the citizens extract.
const CITIZENS_HEADER: &str = "公民身份号码,姓名,性别,民族,出生日期,户籍地址,现住址,联系电话,经度,纬度";

/// A citizens delta for a store generated with `citizens` citizens (same seed): `changed` of
/// them, spread over the key space, moved to new addresses and locations (`round` makes each
/// delta's moves its own), then `new` citizens numbered from `first_new` on. Same header as
/// `citizens.csv`, so the same spec loads it. Returns the bytes written.
pub fn citizens_delta(
    path: &Path,
    citizens: u64,
    seed: u64,
    round: u64,
    changed: u64,
    first_new: u64,
    new: u64,
) -> Result<u64> {
    let mut out = String::with_capacity(((changed + new) * 200) as usize);
    let _ = writeln!(out, "{CITIZENS_HEADER}");
    let stride = (citizens / changed.max(1)).max(1);
    let mut rng = SmallRng::seed_from_u64(seed ^ round.wrapping_mul(0x517c_c1b7_2722_0a95));
    for k in 0..changed.min(citizens) {
        let i = (k * stride + round) % citizens;
        citizen_row(i, seed, &mut rng, &mut out);
    }
    for i in first_new..first_new + new {
        citizen_row(i, seed, &mut rng, &mut out);
    }
    std::fs::write(path, &out).map_err(Error::io(path))?;
    Ok(out.len() as u64)
}

/// Writes the five extracts and their specs into `dir`.
pub fn generate(dir: &Path, o: &GenOptions) -> Result<GenCounts> {
    let mut c = GenCounts {
        citizens: o.citizens,
        entities: o.entities(),
        parcels: o.parcels(),
        credit: o.credit(),
        licences: o.licences(),
        bytes: 0,
    };
    for name in LOAD_ORDER {
        c.bytes += generate_one(dir, o, name)?;
    }
    Ok(c)
}

/// Writes one registry's extract (`NAME.csv`) and its spec (`NAME.toml`) into `dir`, the same
/// as [`generate`] writes them: each extract depends only on the options, so a large run can
/// generate, load and delete one registry at a time. Returns the CSV's bytes.
pub fn generate_one(dir: &Path, o: &GenOptions, name: &str) -> Result<u64> {
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let seed = o.seed;
    match name {
        "citizens" => {
            write_spec(
                dir,
                "citizens.toml",
                "citizens",
                "市公安局",
                &[
                    ("id", "公民身份号码"),
                    ("name", "姓名"),
                    ("gender", "性别"),
                    ("ethnicity", "民族"),
                    ("birth_date", "出生日期"),
                    ("household_address", "户籍地址"),
                    ("address", "现住址"),
                    ("phone", "联系电话"),
                    ("lon", "经度"),
                    ("lat", "纬度"),
                ],
            )?;
            write_csv(dir, "citizens.csv", CITIZENS_HEADER, o.citizens, seed, |i, r, out| citizen_row(i, seed, r, out))
        }
        "entities" => {
            write_spec(
                dir,
                "entities.toml",
                "entities",
                "市市场监督管理局",
                &[
                    ("id", "统一社会信用代码"),
                    ("name", "企业名称"),
                    ("legal_rep_name", "法定代表人"),
                    ("legal_rep_id", "法定代表人身份证号"),
                    ("founded_on", "成立日期"),
                    ("registered_capital", "注册资本"),
                    ("kind", "企业类型"),
                    ("business_scope", "经营范围"),
                    ("address", "住所"),
                    ("lon", "经度"),
                    ("lat", "纬度"),
                    ("status", "登记状态"),
                ],
            )?;
            write_csv(
                dir,
                "entities.csv",
                "统一社会信用代码,企业名称,法定代表人,法定代表人身份证号,成立日期,注册资本,企业类型,经营范围,住所,经度,纬度,登记状态",
                o.entities(),
                seed,
                |i, r, out| entity_row(i, o, r, out),
            )
        }
        "parcels" => {
            write_spec(
                dir,
                "parcels.toml",
                "parcels",
                "市自然资源和规划局",
                &[
                    ("id", "宗地代码"),
                    ("land_use", "用途"),
                    ("area_m2", "面积"),
                    ("address", "坐落"),
                    ("geometry", "宗地范围"),
                ],
            )?;
            let parcels = o.parcels();
            write_csv(
                dir,
                "parcels.csv",
                "宗地代码,用途,面积,坐落,宗地范围",
                parcels,
                seed,
                move |i, r, out| parcel_row(i, parcels, r, out),
            )
        }
        "credit" => {
            write_spec(
                dir,
                "credit.toml",
                "credit",
                "市发展和改革委员会",
                &[
                    ("id", "信用记录编号"),
                    ("subject_id", "主体代码"),
                    ("category", "类别"),
                    ("reason", "事由"),
                    ("decided_on", "决定日期"),
                    ("authority", "决定机关"),
                    ("status", "公示状态"),
                ],
            )?;
            write_csv(
                dir,
                "credit.csv",
                "信用记录编号,主体代码,类别,事由,决定日期,决定机关,公示状态",
                o.credit(),
                seed,
                |i, r, out| credit_row(i, o, r, out),
            )
        }
        "licences" => {
            write_spec(
                dir,
                "licences.toml",
                "licences",
                "市政务服务中心",
                &[
                    ("id", "证照编号"),
                    ("licence_type", "证照类型"),
                    ("holder_id", "持证主体代码"),
                    ("holder_name", "持证主体名称"),
                    ("issuer", "发证机关"),
                    ("issued_on", "发证日期"),
                    ("valid_until", "有效期至"),
                    ("status", "证照状态"),
                ],
            )?;
            write_csv(
                dir,
                "licences.csv",
                "证照编号,证照类型,持证主体代码,持证主体名称,发证机关,发证日期,有效期至,证照状态",
                o.licences(),
                seed,
                |i, r, out| licence_row(i, o, r, out),
            )
        }
        other => Err(Error::Invalid(format!("no generator for registry `{other}`"))),
    }
}

/// The extracts in load order: holders before what they hold.
pub const LOAD_ORDER: [&str; 5] = ["citizens", "entities", "parcels", "credit", "licences"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids::{parse_credit_code, parse_resident_id};
    use std::collections::HashSet;

    #[test]
    fn generated_ids_are_valid_and_unique() {
        let mut seen = HashSet::new();
        for i in 0..20_000 {
            let id = citizen_id(i);
            assert_eq!(parse_resident_id(&id).unwrap().id, id);
            assert!(seen.insert(id));
            let e = entity_id(i);
            assert_eq!(parse_credit_code(&e).as_deref(), Ok(e.as_str()), "{e}");
            assert!(seen.insert(e));
        }
    }
}
