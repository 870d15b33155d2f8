//! The Chinese-aware analyzer: CJK bigrams, in the manner of Lucene's `CJKAnalyzer`.
//!
//! Text is cut into runs: a run of CJK characters (Han, kana, hangul), a run of letters and
//! digits, or a separator (anything else). Full-width forms are folded to half-width and
//! letters to lower case first, so `ＡＢＣ１２` and `abc12` are the same token.
//!
//! - A CJK run gives its overlapping character bigrams (`湖滨南路` → `湖滨 滨南 南路`); a
//!   one-character run gives that character. Indexed text ([`Grams::BiEdges`]) also keeps each
//!   run's first and last characters, so a query's lone character at a script boundary (`路`
//!   of `路88号`) matches. With [`Grams::UniAndBi`] (names) every character is also a token,
//!   so a surname alone finds its bearers.
//! - A letter/digit run is one token (`88`, `b2`).
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
    /// Bigrams, and each run's first and last characters: how text fields are indexed, so
    /// that a query's lone character at a script boundary (`路` of `路88号`) finds the end of
    /// a longer run (`湖滨南路88号`).
    BiEdges,
    /// Every character and every bigram. For names: 2–4 characters, searched by surname too.
    UniAndBi,
}

/// The tokenizer; see the module documentation.
#[derive(Clone, Debug)]
pub struct CjkTokenizer {
    grams: Grams,
    /// Byte offset and folded character of each character, and an end sentinel.
    chars: Vec<(usize, char)>,
    /// Token spans as character index ranges.
    spans: Vec<(usize, usize)>,
}

impl CjkTokenizer {
    pub fn new(grams: Grams) -> CjkTokenizer {
        CjkTokenizer { grams, chars: Vec::new(), spans: Vec::new() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Cjk,
    Word,
    Separator,
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
        self.chars.clear();
        self.chars.extend(text.char_indices().map(|(i, c)| (i, fold(c))));
        self.chars.push((text.len(), ' '));
        self.spans.clear();
        let n = self.chars.len() - 1;
        let mut i = 0;
        while i < n {
            let kind = class(self.chars[i].1);
            let mut end = i + 1;
            while end < n && class(self.chars[end].1) == kind {
                end += 1;
            }
            match kind {
                Class::Separator => {}
                Class::Word => self.spans.push((i, end)),
                Class::Cjk if end - i == 1 => self.spans.push((i, end)),
                Class::Cjk => {
                    if self.grams == Grams::BiEdges {
                        self.spans.push((i, i + 1));
                        self.spans.push((end - 1, end));
                    }
                    for j in i..end {
                        if self.grams == Grams::UniAndBi {
                            self.spans.push((j, j + 1));
                        }
                        if j + 1 < end {
                            self.spans.push((j, j + 2));
                        }
                    }
                }
            }
            i = end;
        }
        CjkTokenStream { chars: &self.chars, spans: &self.spans, next: 0, token: Token::default() }
    }
}

/// Tokens of one text, from the spans the tokenizer found; the token's buffer is reused.
#[derive(Debug)]
pub struct CjkTokenStream<'a> {
    chars: &'a [(usize, char)],
    spans: &'a [(usize, usize)],
    next: usize,
    token: Token,
}

impl TokenStream for CjkTokenStream<'_> {
    fn advance(&mut self) -> bool {
        let Some(&(from, to)) = self.spans.get(self.next) else { return false };
        self.token.text.clear();
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
    fn indexed_text_keeps_the_ends_of_each_run() {
        assert_eq!(tokens("湖滨南路88号", Grams::BiEdges), ["湖", "路", "湖滨", "滨南", "南路", "88", "号"]);
        // A query's lone characters at a script boundary are among the text's tokens.
        let text = tokens("福建省厦门市湖滨南路88号大厦A座", Grams::BiEdges);
        for q in ["路88号", "南路88号", "厦A座", "湖滨南路"] {
            assert!(tokens(q, Grams::Bi).iter().all(|t| text.contains(t)), "{q}");
        }
    }

    #[test]
    fn names_give_unigrams_and_bigrams() {
        assert_eq!(tokens("王秀英", Grams::UniAndBi), ["王", "王秀", "秀", "秀英", "英"]);
        assert_eq!(tokens("阿卜·热合曼", Grams::UniAndBi), ["阿", "阿卜", "卜", "热", "热合", "合", "合曼", "曼"]);
    }

    #[test]
    fn a_fragments_tokens_are_among_the_texts() {
        let text = tokens("厦门市思明区鹭江科技有限公司", Grams::Bi);
        for fragment in ["鹭江", "科技有限", "思明区鹭"] {
            assert!(tokens(fragment, Grams::Bi).iter().all(|t| text.contains(t)), "{fragment}");
        }
    }
}
