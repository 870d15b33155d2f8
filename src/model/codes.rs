//! The registries' code lists, as data: each coded field stores one canonical value, whatever
//! form an extract used (the standard's code, a short name, an English word). Filters accept
//! every form too. Closed lists (a national standard's table) reject an unknown value; open
//! lists (no code list in national use) make known synonyms canonical and keep other values.

use jichu_ingest::CodeList;

/// Gender, GB/T 2261.1-2003. A citizen's gender is also encoded in the identity number; `0` and
/// `9` (unknown, unspecified) give way to it.
pub static GENDER: CodeList = CodeList {
    standard: "GB/T 2261.1",
    entries: &[
        ("男", &["1", "M", "male", "男性"]),
        ("女", &["2", "F", "female", "女性"]),
        ("未知的性别", &["0", "未知"]),
        ("未说明的性别", &["9", "未说明"]),
    ],
    closed: true,
};

/// Ethnicity, GB 3304-1991: the 56 two-digit codes (also written without the leading zero, as
/// spreadsheets do), the names, and their short forms (`汉` for 汉族); 97 other, 98 foreign
/// origin (外国血统中国籍人士).
pub static ETHNICITY: CodeList = CodeList {
    standard: "GB 3304",
    entries: &[
        ("汉族", &["01", "1", "汉"]),
        ("蒙古族", &["02", "2", "蒙古"]),
        ("回族", &["03", "3", "回"]),
        ("藏族", &["04", "4", "藏"]),
        ("维吾尔族", &["05", "5", "维吾尔"]),
        ("苗族", &["06", "6", "苗"]),
        ("彝族", &["07", "7", "彝"]),
        ("壮族", &["08", "8", "壮"]),
        ("布依族", &["09", "9", "布依"]),
        ("朝鲜族", &["10", "朝鲜"]),
        ("满族", &["11", "满"]),
        ("侗族", &["12", "侗"]),
        ("瑶族", &["13", "瑶"]),
        ("白族", &["14", "白"]),
        ("土家族", &["15", "土家"]),
        ("哈尼族", &["16", "哈尼"]),
        ("哈萨克族", &["17", "哈萨克"]),
        ("傣族", &["18", "傣"]),
        ("黎族", &["19", "黎"]),
        ("傈僳族", &["20", "傈僳"]),
        ("佤族", &["21", "佤"]),
        ("畲族", &["22", "畲"]),
        ("高山族", &["23", "高山"]),
        ("拉祜族", &["24", "拉祜"]),
        ("水族", &["25", "水"]),
        ("东乡族", &["26", "东乡"]),
        ("纳西族", &["27", "纳西"]),
        ("景颇族", &["28", "景颇"]),
        ("柯尔克孜族", &["29", "柯尔克孜"]),
        ("土族", &["30", "土"]),
        ("达斡尔族", &["31", "达斡尔"]),
        ("仫佬族", &["32", "仫佬"]),
        ("羌族", &["33", "羌"]),
        ("布朗族", &["34", "布朗"]),
        ("撒拉族", &["35", "撒拉"]),
        ("毛南族", &["36", "毛南"]),
        ("仡佬族", &["37", "仡佬"]),
        ("锡伯族", &["38", "锡伯"]),
        ("阿昌族", &["39", "阿昌"]),
        ("普米族", &["40", "普米"]),
        ("塔吉克族", &["41", "塔吉克"]),
        ("怒族", &["42", "怒"]),
        ("乌孜别克族", &["43", "乌孜别克"]),
        ("俄罗斯族", &["44", "俄罗斯"]),
        ("鄂温克族", &["45", "鄂温克"]),
        ("德昂族", &["46", "德昂"]),
        ("保安族", &["47", "保安"]),
        ("裕固族", &["48", "裕固"]),
        ("京族", &["49", "京"]),
        ("塔塔尔族", &["50", "塔塔尔"]),
        ("独龙族", &["51", "独龙"]),
        ("鄂伦春族", &["52", "鄂伦春"]),
        ("赫哲族", &["53", "赫哲"]),
        ("门巴族", &["54", "门巴"]),
        ("珞巴族", &["55", "珞巴"]),
        ("基诺族", &["56", "基诺"]),
        ("其他", &["97", "其他民族", "其它"]),
        ("外国血统中国籍人士", &["98", "外国血统"]),
    ],
    closed: true,
};

/// Public credit categories (GB/T 39441 and the platform's catalogue).
pub static CREDIT_CATEGORY: CodeList = CodeList {
    standard: "GB/T 39441",
    entries: &[
        ("行政许可", &["administrative_licence", "licence"]),
        ("行政处罚", &["administrative_penalty", "penalty"]),
        ("守信激励", &["红名单", "red_list", "trust_incentive"]),
        ("失信惩戒", &["黑名单", "black_list", "dishonesty_sanction"]),
    ],
    closed: true,
};

/// Registration status of a market entity, as the national enterprise credit information
/// publicity system shows it. Open: no numeric code list is in use in extracts.
pub static ENTITY_STATUS: CodeList = CodeList {
    standard: "the enterprise credit publicity system's statuses",
    entries: &[
        ("存续", &["在营", "开业", "在册", "在业", "存续(在营、开业、在册)", "正常"]),
        ("吊销", &["吊销,未注销", "吊销未注销", "已吊销"]),
        ("注销", &["已注销", "吊销,已注销"]),
        ("撤销", &["已撤销"]),
        ("迁出", &["已迁出"]),
        ("停业", &["歇业"]),
        ("清算", &["清算中"]),
    ],
    closed: false,
};

/// Status of a licence. Open: e-licence standards (GB/T 36901–36905) leave it to the issuer.
pub static LICENCE_STATUS: CodeList = CodeList {
    standard: "common licence statuses",
    entries: &[
        ("有效", &["正常", "在用", "有效期内"]),
        ("注销", &["已注销"]),
        ("吊销", &["已吊销"]),
        ("撤销", &["已撤销"]),
        ("过期", &["已过期", "失效", "已失效"]),
        ("暂扣", &["已暂扣"]),
    ],
    closed: false,
};

/// Publication status of a credit record. Open.
pub static CREDIT_STATUS: CodeList = CodeList {
    standard: "common publication statuses",
    entries: &[
        ("已公示", &["公示", "公示中", "公开"]),
        ("已撤销", &["撤销"]),
        ("已修复", &["信用修复", "修复"]),
        ("已过期", &["期满", "过期", "公示期满"]),
    ],
    closed: false,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gb3304_has_56_ethnic_groups_and_every_form_resolves() {
        assert_eq!(ETHNICITY.entries.iter().filter(|(name, _)| name.ends_with('族')).count(), 56);
        for (code, want) in
            [("01", "汉族"), ("1", "汉族"), ("汉", "汉族"), ("汉族", "汉族"), ("56", "基诺族"), ("22", "畲族")]
        {
            assert_eq!(ETHNICITY.canonical(code), Some(want), "{code}");
        }
        assert_eq!(ETHNICITY.canonical("57"), None);
    }

    #[test]
    fn no_form_names_two_values() {
        for list in [&GENDER, &ETHNICITY, &CREDIT_CATEGORY, &ENTITY_STATUS, &LICENCE_STATUS, &CREDIT_STATUS] {
            let mut seen = std::collections::HashMap::new();
            for (canonical, forms) in list.entries {
                for f in std::iter::once(canonical).chain(forms.iter()) {
                    if let Some(other) = seen.insert(f.to_ascii_lowercase(), canonical) {
                        panic!("{}: {f} names both {other} and {canonical}", list.standard);
                    }
                }
            }
        }
    }
}
