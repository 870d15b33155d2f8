//! The Chinese-aware analyzer: CJK bigrams, in the manner of Lucene's `CJKAnalyzer`.
//!
//! Text is cut into runs: a run of CJK characters (Han, kana, hangul), a run of letters and
//! digits, or a separator (anything else). Full-width forms are folded to half-width and
//! letters to lower case first, so `ＡＢＣ１２` and `abc12` are the same token.
//!
//! - A CJK run gives its overlapping character bigrams (`湖滨南路` → `湖滨 滨南 南路`); a
//!   one-character run gives that character. Indexed text ([`Grams::BiEdges`]) also keeps a
//!   run's first or last character where it meets a letter/digit run, so a query's lone
//!   character at a script boundary (`路` of `路88号`) matches. With [`Grams::UniAndBi`]
//!   (names) every character of a run of up to [`NAME_RUN`] characters (a person's name) is
//!   also a token, so a surname alone finds its bearers; a longer run (a company's name) is
//!   indexed as text is, bigrams and edges, as Lucene's `CJKAnalyzer` indexes every run: its
//!   characters were a quarter of the name field's postings (187 → 141 MiB at 10M
//!   citizens), and a one-character query part matching every company holding it ranks
//!   nothing.
//! - A letter/digit run is one token (`88`, `b2`).
//! - A CJK token is given once per text: a second one would only raise its term frequency,
//!   and every token costs the index writer a lookup in its postings hash (the largest part
//!   of indexing). A citizen's two addresses, indexed as one text, share their province, city
//!   and district: a quarter of their tokens.
//!
//! Why bigrams: a dictionary segmenter (jieba) cuts `湖滨南路` into `湖滨/南路` and then cannot
//! find the fragment `滨南`, nor a company-name fragment that straddles its words, and it needs
//! a dictionary per domain. Bigrams are dictionary-free and find every fragment of two or more
//! characters: a fragment's bigrams are a subset of the text's. Without positions a fragment
//! of three or more characters may match text holding its bigrams apart (`湖滨` … `滨南`);
//! the benchmark measures how often that happens on addresses.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Which n-grams a CJK run gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grams {
    /// Bigrams; a lone character stands for itself. For queries (and the kind of text fields).
    Bi,
    /// Bigrams, and a run's first or last character where it meets a letter/digit run
    /// (directly or across white space): how text fields are indexed, so that a query's lone
    /// character at a script boundary (`路` of `路88号`) finds the end of a longer run
    /// (`湖滨南路88号`). The ends of a text, or beside punctuation, give none: a query has no
    /// lone character there but a one-character query, which a bigram index answers only
    /// from one-character runs anyway.
    BiEdges,
    /// Every character and every bigram of a run of up to [`NAME_RUN`] characters; longer
    /// runs as `BiEdges`. For names: a person's, 2–4 characters, searched by surname too.
    UniAndBi,
}

/// The longest run of CJK characters [`Grams::UniAndBi`] gives each character of: a
/// person's name, a two-character surname and a two-character given name at most.
pub const NAME_RUN: usize = 4;

/// The tokenizer; see the module documentation.
#[derive(Clone, Debug)]
pub struct CjkTokenizer {
    grams: Grams,
    /// A text's first character is a tag that begins each of its tokens (a field sharing a
    /// tantivy field with others: `TextSpec::shared`).
    tagged: bool,
    /// Byte offset and folded character of each character, and an end sentinel.
    chars: Vec<(usize, char)>,
    /// Token spans as character index ranges.
    spans: Vec<(usize, usize)>,
    /// CJK tokens given so far, packed ([`packed`]): the set that drops repeats.
    seen: Seen,
}

impl CjkTokenizer {
    pub fn new(grams: Grams) -> CjkTokenizer {
        CjkTokenizer { grams, tagged: false, chars: Vec::new(), spans: Vec::new(), seen: Seen::default() }
    }

    /// The tokenizer of a shared field: as [`CjkTokenizer::new`], each token prefixed with
    /// the text's first character.
    pub fn tagged(grams: Grams) -> CjkTokenizer {
        CjkTokenizer { tagged: true, ..CjkTokenizer::new(grams) }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Cjk,
    Word,
    Separator,
}

/// A CJK token of one or two characters as one number (21 bits a character, and which of
/// the two lengths), to tell repeats apart without comparing strings.
fn packed(chars: &[(usize, char)]) -> u64 {
    chars.iter().fold(1, |key, c| key << 21 | c.1 as u64)
}

/// A set of packed tokens (never 0): open addressing in a table at most half full, cleared
/// for each text.
#[derive(Clone, Debug, Default)]
struct Seen {
    slots: Vec<u64>,
}

impl Seen {
    fn clear(&mut self, most: usize) {
        let size = (2 * most).next_power_of_two().max(16);
        self.slots.clear();
        self.slots.resize(size, 0);
    }

    /// Adds `key`; false when it was there.
    fn insert(&mut self, key: u64) -> bool {
        let mask = self.slots.len() - 1;
        let mut i = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & mask;
        loop {
            match self.slots[i] {
                0 => {
                    self.slots[i] = key;
                    return true;
                }
                k if k == key => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }
}

/// Folds full-width ASCII and the ideographic space, and lower-cases ASCII letters.
pub fn fold(c: char) -> char {
    let c = match c {
        '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    };
    c.to_ascii_lowercase()
}

fn class(c: char) -> Class {
    if is_cjk(c) {
        Class::Cjk
    } else if c.is_alphanumeric() {
        Class::Word
    } else {
        Class::Separator
    }
}

/// Han ideographs (basic, extensions A–F, compatibility), `〇`, kana and hangul syllables.
pub fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}' | '\u{20000}'..='\u{2ebef}' | '\u{30000}'..='\u{3134f}'
        | '\u{f900}'..='\u{faff}' | '\u{3007}' | '\u{3040}'..='\u{30ff}' | '\u{ac00}'..='\u{d7af}')
}

impl Tokenizer for CjkTokenizer {
    type TokenStream<'a> = CjkTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CjkTokenStream<'a> {
        let mut tag = None;
        let mut text = text;
        if self.tagged {
            let mut chars = text.chars();
            tag = chars.next();
            text = chars.as_str();
        }
        self.chars.clear();
        self.chars.extend(text.char_indices().map(|(i, c)| (i, fold(c))));
        self.chars.push((text.len(), ' '));
        self.spans.clear();
        let n = self.chars.len() - 1;
        // At most two CJK tokens a character (a unigram and a bigram, or an edge).
        self.seen.clear(2 * n);
        let chars = &self.chars;
        let (spans, seen) = (&mut self.spans, &mut self.seen);
        // A CJK token is kept the first time only; letter/digit runs always.
        let cjk = |spans: &mut Vec<(usize, usize)>, seen: &mut Seen, from: usize, to: usize| {
            if seen.insert(packed(&chars[from..to])) {
                spans.push((from, to));
            }
        };
        // Whether the nearest character before `i` (`back`), or from `i` on, that is not
        // white space is a letter or digit.
        let meets_word = |mut i: usize, back: bool| loop {
            let c = if back {
                match i.checked_sub(1) {
                    Some(j) => {
                        i = j;
                        chars[j].1
                    }
                    None => return false,
                }
            } else if i < n {
                i += 1;
                chars[i - 1].1
            } else {
                return false;
            };
            if !c.is_whitespace() {
                return class(c) == Class::Word;
            }
        };
        let mut i = 0;
        while i < n {
            let kind = class(chars[i].1);
            let mut end = i + 1;
            while end < n && class(chars[end].1) == kind {
                end += 1;
            }
            match kind {
                Class::Separator => {}
                Class::Word => spans.push((i, end)),
                Class::Cjk if end - i == 1 => cjk(spans, seen, i, end),
                Class::Cjk => {
                    let unigrams = self.grams == Grams::UniAndBi && end - i <= NAME_RUN;
                    // Indexed text without its characters keeps its edges; queries need none.
                    if self.grams != Grams::Bi && !unigrams {
                        if meets_word(i, true) {
                            cjk(spans, seen, i, i + 1);
                        }
                        if meets_word(end, false) {
                            cjk(spans, seen, end - 1, end);
                        }
                    }
                    for j in i..end {
                        if unigrams {
                            cjk(spans, seen, j, j + 1);
                        }
                        if j + 1 < end {
                            cjk(spans, seen, j, j + 2);
                        }
                    }
                }
            }
            i = end;
        }
        CjkTokenStream { chars: &self.chars, spans: &self.spans, next: 0, tag, token: Token::default() }
    }
}

/// Tokens of one text, from the spans the tokenizer found; the token's buffer is reused.
#[derive(Debug)]
pub struct CjkTokenStream<'a> {
    chars: &'a [(usize, char)],
    spans: &'a [(usize, usize)],
    next: usize,
    tag: Option<char>,
    token: Token,
}

impl TokenStream for CjkTokenStream<'_> {
    fn advance(&mut self) -> bool {
        let Some(&(from, to)) = self.spans.get(self.next) else { return false };
        self.token.text.clear();
        self.token.text.extend(self.tag);
        self.token.text.extend(self.chars[from..to].iter().map(|c| c.1));
        self.token.offset_from = self.chars[from].0;
        self.token.offset_to = self.chars[to].0;
        self.token.position = self.next;
        self.next += 1;
        true
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

/// The tokens of `text`, as strings (queries, tests).
pub fn tokens(text: &str, grams: Grams) -> Vec<String> {
    let mut t = CjkTokenizer::new(grams);
    let mut stream = t.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigrams_of_a_cjk_run_words_whole_and_lone_characters_kept() {
        assert_eq!(tokens("湖滨南路88号", Grams::Bi), ["湖滨", "滨南", "南路", "88", "号"]);
        assert_eq!(tokens("厦门ＡＢＣ科技（有限）", Grams::Bi), ["厦门", "abc", "科技", "有限"]);
        assert_eq!(tokens("王", Grams::Bi), ["王"]);
        assert_eq!(tokens("", Grams::Bi), Vec::<String>::new());
    }

    #[test]
    fn indexed_text_keeps_the_ends_of_runs_that_meet_letters_or_digits() {
        assert_eq!(tokens("湖滨南路88号", Grams::BiEdges), ["路", "湖滨", "滨南", "南路", "88", "号"]);
        assert_eq!(tokens("a座大厦", Grams::BiEdges), ["a", "座", "座大", "大厦"]);
        // Across white space too; not beside punctuation, nor at the ends of the text.
        assert_eq!(tokens("南路 8", Grams::BiEdges), ["路", "南路", "8"]);
        assert_eq!(tokens("南路，8", Grams::BiEdges), ["南路", "8"]);
        assert_eq!(tokens("思明区", Grams::BiEdges), ["思明", "明区"]);
        // A query's lone characters at a script boundary are among the text's tokens.
        for text in ["福建省厦门市湖滨南路88号大厦A座", "福建省厦门市湖滨南路 88 号大厦 A座"]
        {
            let text = tokens(text, Grams::BiEdges);
            for q in ["路88号", "南路88号", "厦A座", "湖滨南路"] {
                assert!(tokens(q, Grams::Bi).iter().all(|t| text.contains(t)), "{q}");
            }
        }
    }

    #[test]
    fn a_cjk_token_is_given_once_a_text() {
        // Two addresses indexed as one text share their city and district.
        let both = tokens("厦门市思明区1号\u{1f}厦门市湖里区1号", Grams::BiEdges);
        assert_eq!(both, ["区", "厦门", "门市", "市思", "思明", "明区", "1", "号", "市湖", "湖里", "里区", "1"]);
        assert_eq!(tokens("王王", Grams::UniAndBi), ["王", "王王"]);
        assert_eq!(tokens("批发零售批发", Grams::Bi), ["批发", "发零", "零售", "售批"]);
    }

    #[test]
    fn a_tagged_texts_tokens_begin_with_its_tag() {
        let mut t = CjkTokenizer::tagged(Grams::UniAndBi);
        let mut stream = t.token_stream("\u{2}王秀 a1");
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        assert_eq!(out, ["\u{2}王", "\u{2}王秀", "\u{2}秀", "\u{2}a1"]);
        assert!(CjkTokenizer::tagged(Grams::Bi).token_stream("").token().text.is_empty());
    }

    #[test]
    fn names_give_unigrams_and_bigrams() {
        assert_eq!(tokens("王秀英", Grams::UniAndBi), ["王", "王秀", "秀", "秀英", "英"]);
        assert_eq!(tokens("阿卜·热合曼", Grams::UniAndBi), ["阿", "阿卜", "卜", "热", "热合", "合", "合曼", "曼"]);
        assert_eq!(tokens("欧阳秀英", Grams::UniAndBi), ["欧", "欧阳", "阳", "阳秀", "秀", "秀英", "英"]);
    }

    /// A run longer than a person's name (a company's) gives what indexed text gives: its
    /// bigrams, and its edges beside letters or digits.
    #[test]
    fn long_runs_in_names_give_bigrams_and_edges() {
        assert_eq!(tokens("鹭江科技公司", Grams::UniAndBi), ["鹭江", "江科", "科技", "技公", "公司"]);
        assert_eq!(tokens("鹭江科技公司", Grams::UniAndBi), tokens("鹭江科技公司", Grams::BiEdges));
        assert_eq!(tokens("3d打印科技有限", Grams::UniAndBi), ["3d", "打", "打印", "印科", "科技", "技有", "有限"]);
        assert_eq!(tokens("3d打印", Grams::UniAndBi), ["3d", "打", "打印", "印"]);
    }

    #[test]
    fn a_fragments_tokens_are_among_the_texts() {
        let text = tokens("厦门市思明区鹭江科技有限公司", Grams::Bi);
        for fragment in ["鹭江", "科技有限", "思明区鹭"] {
            assert!(tokens(fragment, Grams::Bi).iter().all(|t| text.contains(t)), "{fragment}");
        }
    }
}
