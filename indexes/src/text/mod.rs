//! The full-text index: one tantivy index over every registry's searchable text.
//!
//! Documents carry a `uid` (the registry's byte and the key packed, a fast column; nothing is
//! stored, as the store holds the records), the registry and an `ended` flag as filter
//! fields, the text fields the service names (analysed by [`analyzer`], term frequencies
//! without positions) and keyword and date fields for filters. The service says which fields
//! exist ([`TextSpec`]), and which text fields share one tantivy field's length norms
//! ([`TextSpec::shared`]).
//!
//! The index never decides what is current: the service feeds it from the store and records
//! in each commit's payload what it has seen ([`TextWriter::commit`], [`TextIndex::payload`]).

pub mod analyzer;
mod query;
mod uids;

pub use analyzer::Grams;
pub use query::{Filter, Hit, Hits, Match, SearchQuery};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tantivy::directory::MmapDirectory;
use tantivy::indexer::UserOperation;
use tantivy::indexer::{LogMergePolicy, NoMergePolicy};
use tantivy::schema::{Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// Errors of the full-text index.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("full-text index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("full-text index directory: {0}")]
    Directory(String),
    #[error("unknown search field `{0}`")]
    UnknownField(String),
    #[error("the query has nothing to search for (no letters, digits or CJK characters)")]
    EmptyQuery,
    #[error("full-text index declaration: {0}")]
    Spec(String),
}

pub type Result<T> = std::result::Result<T, TextError>;

/// Tokenizer names carry the analyzer's version: a changed analyzer changes the schema, and
/// an index built with the old one is rebuilt rather than searched with mismatched tokens.
const TOKENIZER_BI: &str = "cjk_bi_v2";
const TOKENIZER_NAMES: &str = "cjk_names_v2";
/// The same analyzers for a field that hosts several text fields: a text's first character
/// is its field's tag, and every token of the text begins with it ([`TextSpec::shared`]).
const TOKENIZER_BI_TAGGED: &str = "cjk_bi_tagged_v1";
const TOKENIZER_NAMES_TAGGED: &str = "cjk_names_tagged_v2";

/// An analysed text field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextField {
    pub name: String,
    /// Unigrams too (in runs up to a person's name) make a surname searchable.
    pub grams: Grams,
    /// Length normalisation for BM25 (one byte per document of the whole index).
    pub norms: bool,
}

/// The fields an index has, as the service declares them.
#[derive(Clone, Debug, Default)]
pub struct TextSpec {
    pub text: Vec<TextField>,
    /// Exact-match fields: codes, statuses, identifiers of linked records.
    pub keywords: Vec<String>,
    /// Dates as days from the common era, for ranges.
    pub dates: Vec<String>,
    /// Groups of text fields (of the same grams and norms) that no document holds two of,
    /// e.g. each registry's main name. A group is one tantivy field: length norms are a byte
    /// per document of the whole index *per tantivy field*, whether the document has the
    /// field or not, so four name fields over 22M documents cost 4 bytes a record where one
    /// field costs 1. A member's tokens begin with its tag (a control character given by its
    /// place in the group), so its terms, document frequencies and matches stay its own; the
    /// field's name is its members' names joined by `|`, so another grouping is another
    /// schema (and the index is rebuilt rather than read with other tags).
    pub shared: Vec<Vec<String>>,
}

/// Memory and threads of an index writer. Defaults in one place.
#[derive(Clone, Copy, Debug)]
pub struct WriterOptions {
    pub threads: usize,
    /// Shared by the threads; a thread writes a segment when its share fills.
    pub memory_bytes: usize,
    /// Leave segments unmerged (bulk builds: merging costs more than it saves at query time).
    pub no_merge: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(8);
        WriterOptions { threads, memory_bytes: 1 << 30, no_merge: false }
    }
}

/// What one field of the index costs on disk ([`space_by_field`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSpace {
    pub field: String,
    /// The term dictionary.
    pub terms: u64,
    /// Document lists and term frequencies (no positions are kept).
    pub postings: u64,
    /// Length norms: a byte per document of the index.
    pub norms: u64,
    /// The fast column (uid, registry, dates).
    pub fast: u64,
}

impl FieldSpace {
    pub fn total(&self) -> u64 {
        self.terms + self.postings + self.norms + self.fast
    }
}

/// Field handles, resolved once.
#[derive(Clone, Debug)]
pub(crate) struct Fields {
    uid: Field,
    registry: Field,
    ended: Field,
    /// Each declared text field's tantivy field and, where it shares one, its tag.
    text: std::collections::HashMap<String, FieldId>,
    schema: Schema,
}

/// A handle to a declared field, for building documents without looking names up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldId {
    field: Field,
    /// The first character of the field's texts and of its terms, when its tantivy field
    /// hosts several ([`TextSpec::shared`]).
    tag: Option<char>,
}

impl FieldId {
    /// The term of one of the field's tokens.
    fn term(&self, token: &str) -> Term {
        match self.tag {
            None => Term::from_field_text(self.field, token),
            Some(tag) => {
                let mut text = String::with_capacity(token.len() + 1);
                text.push(tag);
                text.push_str(token);
                Term::from_field_text(self.field, &text)
            }
        }
    }
}

/// The tag of the `i`-th member of a shared field: a control character the analyzer never
/// gives (it cuts text at them), below [`VALUES_APART`].
fn tag(i: usize) -> Option<char> {
    u8::try_from(i + 1).ok().filter(|&b| b < VALUES_APART as u8).map(char::from)
}

/// How segments are written. The document store holds an empty document for each document
/// (the uid is a fast column; nothing is stored): what it costs is a 4-byte offset each, which
/// LZ4 cannot shorten and zstd takes to a fraction of a byte.
fn settings() -> tantivy::IndexSettings {
    let zstd = tantivy::store::ZstdCompressor { compression_level: Some(3) };
    tantivy::IndexSettings { docstore_compression: tantivy::store::Compressor::Zstd(zstd), ..Default::default() }
}

/// The index and its reader. Searches go through a [`TextSearcher`], one state of the index
/// that stays as it is whatever is committed later: what a published view holds.
pub struct TextIndex {
    index: Index,
    reader: IndexReader,
    fields: Arc<Fields>,
    dir: PathBuf,
}

/// The index as of one commit: searches through it see that commit, however many commits
/// follow (its segments stay readable while it is held).
#[derive(Clone)]
pub struct TextSearcher {
    searcher: tantivy::Searcher,
    fields: Arc<Fields>,
    /// Each segment's uid column, opened once (opening one parses its dictionary's index).
    uids: Arc<Vec<Option<tantivy::columnar::BytesColumn>>>,
    state: u64,
}

impl std::fmt::Debug for TextSearcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextSearcher").field("docs", &self.num_docs()).field("state", &self.state).finish()
    }
}

impl TextSearcher {
    /// Runs a query: hits in relevance order (ties in index order) and the exact total.
    pub fn search(&self, q: &SearchQuery) -> Result<Hits> {
        query::run(self, q)
    }

    /// Identifies the state searched: the commit's opstamp and the identities of its segments
    /// and their deletes (a rebuilt index can reach the same opstamp with other segments).
    pub fn state(&self) -> u64 {
        self.state
    }

    pub fn num_docs(&self) -> u64 {
        self.searcher.num_docs()
    }

    /// Documents of one registry (deleted ones excluded).
    pub fn count_registry(&self, registry: u8) -> Result<u64> {
        let q = tantivy::query::TermQuery::new(
            Term::from_field_u64(self.fields.registry, registry as u64),
            IndexRecordOption::Basic,
        );
        Ok(self.searcher.search(&q, &tantivy::collector::Count)? as u64)
    }
}

impl std::fmt::Debug for TextIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextIndex").field("docs", &self.num_docs()).finish_non_exhaustive()
    }
}

/// Field norms (one byte per document *per field*, whether the document has the field or
/// not) are kept only where BM25 needs them: the scored text fields, a group of them sharing
/// one field's ([`TextSpec::shared`]).
fn build_schema(spec: &TextSpec) -> Result<Schema> {
    let mut b = Schema::builder();
    let keyword = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let number = NumericOptions::default().set_indexed();
    // The uid is a fast column only: hits read it there, deletes look it up there (`uids`).
    b.add_bytes_field(uids::UID, tantivy::schema::BytesOptions::default().set_fast());
    b.add_u64_field("registry", number.clone().set_fast());
    b.add_u64_field("ended", number.clone());
    let declared = |name: &str| spec.text.iter().find(|t| t.name == name);
    for (i, group) in spec.shared.iter().enumerate() {
        let first = group.first().and_then(|n| declared(n));
        let alike = group
            .iter()
            .all(|n| declared(n).is_some_and(|t| Some((t.grams, t.norms)) == first.map(|f| (f.grams, f.norms))));
        let elsewhere = |n: &String| spec.shared.iter().enumerate().any(|(j, g)| j != i && g.contains(n));
        let repeated = group.iter().enumerate().any(|(j, n)| group[..j].contains(n));
        let fits = !group.is_empty() && tag(group.len() - 1).is_some();
        if !alike || !fits || repeated || group.iter().any(|n| n.contains('|') || elsewhere(n)) {
            return Err(TextError::Spec(format!(
                "a shared field needs declared text fields alike, each in one group once: {group:?}"
            )));
        }
    }
    for field in &spec.text {
        let (name, tagged) = match group_of(spec, &field.name) {
            Some((_, place)) if place > 0 => continue, // added with its group's first member
            Some((group, _)) => (shared_name(group), true),
            None => (field.name.clone(), false),
        };
        let tokenizer = match (field.grams == Grams::UniAndBi, tagged) {
            (true, false) => TOKENIZER_NAMES,
            (false, false) => TOKENIZER_BI,
            (true, true) => TOKENIZER_NAMES_TAGGED,
            (false, true) => TOKENIZER_BI_TAGGED,
        };
        // Term frequencies in every scored field: with them tantivy stores each posting
        // block's best score, which block-max pruning needs. Without them (document ids
        // only, as addresses had for 7–10% less indexing time) a block's best reads as
        // zero and the pruned top hits skip every full block after the first: wrong hits.
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(tokenizer)
            .set_index_option(IndexRecordOption::WithFreqs)
            .set_fieldnorms(field.norms);
        b.add_text_field(&name, TextOptions::default().set_indexing_options(indexing));
    }
    for name in &spec.keywords {
        b.add_text_field(name, keyword.clone());
    }
    // Dates only as fast columns: a range filter reads the column (tantivy's `RangeQuery`
    // prefers it whenever a field is fast), so their terms and postings were never read —
    // 2 bytes a record, 4% of the index, at 2M citizens.
    for name in &spec.dates {
        b.add_i64_field(name, NumericOptions::default().set_fast());
    }
    Ok(b.build())
}

/// The shared group holding a text field, and the field's place in it.
fn group_of<'a>(spec: &'a TextSpec, name: &str) -> Option<(&'a [String], usize)> {
    spec.shared.iter().find_map(|g| Some((g.as_slice(), g.iter().position(|n| n == name)?)))
}

/// The tantivy field of a shared group: its members' names joined, so that another grouping
/// is another schema.
fn shared_name(group: &[String]) -> String {
    group.join("|")
}

/// Each declared text field's handle in `schema` (as [`build_schema`] laid them out).
fn text_fields(spec: &TextSpec, schema: &Schema) -> Result<std::collections::HashMap<String, FieldId>> {
    let mut out = std::collections::HashMap::new();
    for field in &spec.text {
        let id = match group_of(spec, &field.name) {
            Some((group, place)) => FieldId { field: schema.get_field(&shared_name(group))?, tag: tag(place) },
            None => FieldId { field: schema.get_field(&field.name)?, tag: None },
        };
        out.insert(field.name.clone(), id);
    }
    Ok(out)
}

fn register_tokenizers(index: &Index) {
    let t = index.tokenizers();
    t.register(TOKENIZER_BI, TextAnalyzer::from(analyzer::CjkTokenizer::new(Grams::BiEdges)));
    t.register(TOKENIZER_NAMES, TextAnalyzer::from(analyzer::CjkTokenizer::new(Grams::UniAndBi)));
    t.register(TOKENIZER_BI_TAGGED, TextAnalyzer::from(analyzer::CjkTokenizer::tagged(Grams::BiEdges)));
    t.register(TOKENIZER_NAMES_TAGGED, TextAnalyzer::from(analyzer::CjkTokenizer::tagged(Grams::UniAndBi)));
}

impl TextIndex {
    /// Opens the index in `dir`, creating it when absent. An index whose fields or analyzers
    /// differ from `spec` is discarded and created empty: its payload is then `None`, and the
    /// service rebuilds it from the store.
    pub fn open(dir: &Path, spec: &TextSpec) -> Result<TextIndex> {
        let schema = build_schema(spec)?;
        let dir_err = |e: std::io::Error| TextError::Directory(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(dir_err)?;
        let open = |dir: &Path| -> Result<Index> {
            let mmap = MmapDirectory::open(dir).map_err(|e| TextError::Directory(e.to_string()))?;
            let mut index = Index::builder().schema(schema.clone()).settings(settings()).open_or_create(mmap)?;
            // An index made before keeps its older segments as they are; new ones (commits and
            // merges) are written with these settings.
            index.settings_mut().docstore_compression = settings().docstore_compression;
            Ok(index)
        };
        let index = match open(dir) {
            Ok(index) => index,
            Err(TextError::Tantivy(tantivy::TantivyError::SchemaError(_))) => {
                std::fs::remove_dir_all(dir).map_err(dir_err)?;
                std::fs::create_dir_all(dir).map_err(dir_err)?;
                open(dir)?
            }
            Err(e) => return Err(e),
        };
        register_tokenizers(&index);
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let fields = Arc::new(Fields {
            uid: schema.get_field(uids::UID)?,
            registry: schema.get_field("registry")?,
            ended: schema.get_field("ended")?,
            text: text_fields(spec, &schema)?,
            schema,
        });
        Ok(TextIndex { index, reader, fields, dir: dir.into() })
    }

    /// The handle of a declared field.
    pub fn field(&self, name: &str) -> Result<FieldId> {
        if let Some(id) = self.fields.text.get(name) {
            return Ok(*id);
        }
        let field = self.fields.schema.get_field(name).map_err(|_| TextError::UnknownField(name.into()))?;
        Ok(FieldId { field, tag: None })
    }

    /// The payload of the last commit (what the service recorded it had seen).
    pub fn payload(&self) -> Result<Option<String>> {
        Ok(self.index.load_metas()?.payload)
    }

    /// The last commit made visible ([`TextIndex::reload`]), as a searcher to hold.
    pub fn searcher(&self) -> Result<TextSearcher> {
        use std::hash::{Hash, Hasher};
        let searcher = self.reader.searcher();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.index.load_metas()?.opstamp.hash(&mut h);
        for r in searcher.segment_readers() {
            r.segment_id().uuid_string().hash(&mut h);
            r.num_deleted_docs().hash(&mut h);
        }
        let uids = searcher
            .segment_readers()
            .iter()
            .map(|r| r.fast_fields().bytes(uids::UID))
            .collect::<tantivy::Result<_>>()?;
        Ok(TextSearcher { searcher, fields: self.fields.clone(), uids: Arc::new(uids), state: h.finish() })
    }

    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Documents of one registry in the last commit made visible.
    pub fn count_registry(&self, registry: u8) -> Result<u64> {
        self.searcher()?.count_registry(registry)
    }

    /// A writer; only one exists at a time (tantivy's lock file).
    pub fn writer(&self, options: WriterOptions) -> Result<TextWriter> {
        let threads = options.threads.max(1);
        let per_thread = (options.memory_bytes / threads).clamp(16 << 20, 4000 << 20);
        let writer: IndexWriter = self.index.writer_with_num_threads(threads, per_thread * threads)?;
        if options.no_merge {
            writer.set_merge_policy(Box::new(NoMergePolicy));
        } else {
            // Small commits (a delta's documents) are merged among themselves, never into the
            // large segments of a bulk build: a commit must not wait for a merge of millions.
            let mut policy = LogMergePolicy::default();
            policy.set_max_docs_before_merge(MAX_MERGED_DOCS);
            writer.set_merge_policy(Box::new(policy));
        }
        Ok(TextWriter { writer, fields: Fields::clone(&self.fields), batch: Vec::with_capacity(BATCH) })
    }

    /// Makes the last commit visible to later [`TextIndex::searcher`]s (held ones keep theirs).
    pub fn reload(&self) -> Result<()> {
        self.reader.reload()?;
        Ok(())
    }

    /// Bytes of the index's files on disk.
    pub fn disk_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|entries| entries.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    }

    /// Runs a query on the last commit made visible (tools and tests; a service searches
    /// through the searcher its view holds).
    pub fn search(&self, q: &SearchQuery) -> Result<Hits> {
        self.searcher()?.search(q)
    }
}

/// A document being built: its uid, registry and ended flag are set; add its fields.
#[derive(Debug)]
pub struct TextDoc {
    doc: TantivyDocument,
    /// Text fields' values, those of one field joined into one text (see [`TextDoc::text`]),
    /// a shared field's text beginning with its tag.
    texts: Vec<(FieldId, String)>,
}

/// Joins the values of one text field: a separator that is not white space, so that no
/// run's end meets a letter or digit of the next value across it (the analyzer's edges).
const VALUES_APART: char = '\u{1f}';

impl TextDoc {
    /// Adds a value to a text field. The values of one field are analysed as one text, so
    /// that a token they share is indexed once (a citizen's two addresses share most of
    /// theirs); a query part matches within one field either way.
    pub fn text(&mut self, field: FieldId, value: &str) {
        match self.texts.iter_mut().find(|(f, _)| *f == field) {
            Some((_, text)) => {
                text.push(VALUES_APART);
                text.push_str(value);
            }
            None => {
                let mut text = String::with_capacity(value.len() + 4);
                text.extend(field.tag);
                text.push_str(value);
                self.texts.push((field, text));
            }
        }
    }
    pub fn keyword(&mut self, field: FieldId, value: &str) {
        self.doc.add_text(field.field, value);
    }
    pub fn date(&mut self, field: FieldId, days: i32) {
        self.doc.add_i64(field.field, days as i64);
    }

    fn into_document(self) -> TantivyDocument {
        let mut doc = self.doc;
        for (field, text) in &self.texts {
            doc.add_text(field.field, text);
        }
        doc
    }
}

/// Adds, replaces and deletes documents; [`TextWriter::commit`] makes them durable together.
/// Operations go to tantivy's indexing threads in small batches: with a message a document,
/// 6% of the CPU went to the channel (perf); batches of 16 rebuild 2.2M documents in 12.2 s
/// instead of 13.1 s (medians of 4). tantivy's channel holds 10,000 messages, so the batch
/// size also bounds what waits in memory (160k documents; 1,000 a batch doubled peak RSS).
pub struct TextWriter {
    writer: IndexWriter,
    fields: Fields,
    batch: Vec<UserOperation>,
}

/// Segments with more documents than this are not merged by incremental commits.
const MAX_MERGED_DOCS: usize = 500_000;

/// Operations per message to the indexing threads.
const BATCH: usize = 16;

impl std::fmt::Debug for TextWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextWriter").finish_non_exhaustive()
    }
}

/// The unique id of a record in the index: the registry's byte, then the key packed
/// ([`crate::digits`]: a uid column 4.4 instead of 5.9 bytes a record at 1M citizens), in
/// key order within a registry, as a bulk build adds them.
pub(crate) fn uid(registry: u8, key: &str) -> Vec<u8> {
    let mut u = Vec::with_capacity(key.len() / 2 + 3);
    u.push(registry);
    crate::digits::pack(key.as_bytes(), &mut u);
    u
}

/// The registry and key of a uid; None when the bytes are not one.
pub(crate) fn registry_and_key(uid: &[u8]) -> Option<(u8, String)> {
    let (&registry, packed) = uid.split_first()?;
    let mut key = Vec::with_capacity(packed.len() * 2);
    crate::digits::unpack(packed, &mut key).then_some(())?;
    Some((registry, String::from_utf8(key).ok()?))
}

impl TextWriter {
    /// A new document for a record.
    pub fn doc(&self, registry: u8, key: &str, ended: bool) -> TextDoc {
        let mut d = TantivyDocument::new();
        d.add_bytes(self.fields.uid, &uid(registry, key));
        d.add_u64(self.fields.registry, registry as u64);
        d.add_u64(self.fields.ended, ended as u64);
        TextDoc { doc: d, texts: Vec::new() }
    }

    fn push(&mut self, op: UserOperation) -> Result<()> {
        self.batch.push(op);
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.writer.run(batch)?;
        Ok(())
    }

    /// Queues a document. It is searchable after the next commit.
    pub fn add(&mut self, doc: TextDoc) -> Result<()> {
        self.push(UserOperation::Add(doc.into_document()))
    }

    /// Deletes the documents of records of a registry (before adding their new versions) as
    /// one operation: each segment's uid dictionary is searched for them and its ordinals are
    /// scanned once, so a delete is worth making in bulk (thousands of keys). Operations
    /// queued before keep their order; the keys are held until the commit.
    pub fn delete_many<K: AsRef<str>>(&mut self, registry: u8, keys: &[K]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.flush()?;
        let uids = keys.iter().map(|k| uid(registry, k.as_ref())).collect();
        self.writer.delete_query(Box::new(uids::UidSet::new(uids)))?;
        Ok(())
    }

    /// Deletes every document of a registry (before rebuilding it).
    pub fn delete_registry(&mut self, registry: u8) -> Result<()> {
        self.push(UserOperation::Delete(Term::from_field_u64(self.fields.registry, registry as u64)))
    }

    /// Commits everything queued, with the payload that says what the index has seen.
    pub fn commit(&mut self, payload: &str) -> Result<()> {
        self.flush()?;
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(payload);
        prepared.commit()?;
        Ok(())
    }

    /// Waits for background merges and releases the writer.
    pub fn finish(self) -> Result<()> {
        self.writer.wait_merging_threads()?;
        Ok(())
    }
}

/// Bytes of the index in `dir` as its last commit left it, field by field: terms, postings,
/// field norms and fast column over every segment, largest first. The index is opened as it
/// is, whatever its schema (nothing is checked, rebuilt or written); what is left of its files
/// (deletes, the document store, metadata) is not attributed to a field.
pub fn space_by_field(dir: &Path) -> Result<Vec<FieldSpace>> {
    let usage = searcher_as_is(dir)?.space_usage().map_err(|e| TextError::Directory(e.to_string()))?;
    let mut fields: std::collections::BTreeMap<String, FieldSpace> = Default::default();
    for segment in usage.segments() {
        let parts = [
            (segment.termdict(), 0),
            (segment.postings(), 1),
            (segment.positions(), 1),
            (segment.fieldnorms(), 2),
            (segment.fast_fields(), 3),
        ];
        for (per_field, part) in parts {
            for f in per_field.fields() {
                let entry = fields
                    .entry(f.field_name().to_string())
                    .or_insert_with(|| FieldSpace { field: f.field_name().to_string(), ..FieldSpace::default() });
                let bytes = f.total().get_bytes();
                match part {
                    0 => entry.terms += bytes,
                    1 => entry.postings += bytes,
                    2 => entry.norms += bytes,
                    _ => entry.fast += bytes,
                }
            }
        }
    }
    let mut fields: Vec<FieldSpace> = fields.into_values().filter(|f| f.total() > 0).collect();
    fields.sort_by_key(|f| std::cmp::Reverse(f.total()));
    Ok(fields)
}

/// The index in `dir` as its last commit left it, whatever its schema: nothing is checked,
/// rebuilt or written (for measuring it).
fn searcher_as_is(dir: &Path) -> Result<tantivy::Searcher> {
    let mmap = MmapDirectory::open(dir).map_err(|e| TextError::Directory(e.to_string()))?;
    let reader: IndexReader = Index::open(mmap)?.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
    Ok(reader.searcher())
}

/// A segment of the index as its last commit left it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentShape {
    pub docs: u32,
    /// Ordinal `o` of the uid column at document `o` (see `uids::in_uid_order`): a filter on
    /// records found elsewhere checks them in place instead of reading every uid.
    pub in_uid_order: bool,
}

/// The segments of the index in `dir` as its last commit left it, opened as it is (as
/// [`space_by_field`]).
pub fn segment_shapes(dir: &Path) -> Result<Vec<SegmentShape>> {
    let searcher = searcher_as_is(dir)?;
    let mut out = Vec::new();
    for r in searcher.segment_readers() {
        let in_uid_order = match r.fast_fields().bytes(uids::UID)? {
            Some(column) => uids::in_uid_order(&column, r.max_doc()),
            None => false,
        };
        out.push(SegmentShape { docs: r.num_docs(), in_uid_order });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::store::Compressor;

    /// An index written before with LZ4 document stores opens as it is, writes its new
    /// segments with zstd, and merges the two kinds into one that answers for both.
    #[test]
    fn an_index_with_lz4_document_stores_takes_zstd_for_new_segments_and_merges() {
        let dir = tempfile::tempdir().unwrap();
        let spec = TextSpec {
            text: vec![TextField { name: "r.name".into(), grams: Grams::UniAndBi, norms: true }],
            ..TextSpec::default()
        };
        let add = |index: &TextIndex, key: &str, name: &str| {
            let mut w = index.writer(WriterOptions { threads: 1, memory_bytes: 20 << 20, no_merge: true }).unwrap();
            let mut doc = w.doc(1, key, false);
            doc.text(index.field("r.name").unwrap(), name);
            w.add(doc).unwrap();
            w.commit("").unwrap();
            w.finish().unwrap();
        };
        let saved = || Index::open_in_dir(dir.path()).unwrap().settings().docstore_compression;
        // A segment as an index made before this setting wrote it.
        let mut before = TextIndex::open(dir.path(), &spec).unwrap();
        before.index.settings_mut().docstore_compression = Compressor::Lz4;
        add(&before, "a", "张伟");
        drop(before);
        assert_eq!(saved(), Compressor::Lz4);
        let index = TextIndex::open(dir.path(), &spec).unwrap();
        add(&index, "b", "张伟明");
        assert!(matches!(saved(), Compressor::Zstd(_)), "{:?}", saved());
        let mut writer: IndexWriter = index.index.writer_with_num_threads(1, 20 << 20).unwrap();
        let segments = index.index.searchable_segment_ids().unwrap();
        assert_eq!(segments.len(), 2);
        writer.merge(&segments).wait().unwrap();
        writer.wait_merging_threads().unwrap();
        index.reload().unwrap();
        let searcher = index.searcher().unwrap();
        assert_eq!((searcher.num_docs(), searcher.searcher.segment_readers().len()), (2, 1));
        assert_eq!(searcher.count_registry(1).unwrap(), 2);
    }
}
