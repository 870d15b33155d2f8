//! Column families: their names, in one place, and the options each is opened with.

use crate::model::Registry;
use rocksdb::{BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Options};

/// Relation edges from the record a reference points at: `target → relation → holder`. The
/// other direction is read from the holder's record (stores written before hold it too).
pub const RELATIONS: &str = "relations";
/// No longer written: it held a copy of every current record's location, which the records
/// hold (5.7% of the data directory at 10M citizens). Declared because stores written before
/// hold it; the first open empties it ([`super::Store::open`]).
pub const POINTS: &str = "points";
/// Counts, the load table, the load-id sequence and bulk-load markers.
pub const META: &str = "meta";
/// The change log: `[load id][registry][key]` for every record a batch-path load wrote
/// (inserted, updated or ended), in the same batch as the record. What the full-text index
/// catches up from without scanning a registry; a feed of what each load changed.
pub const CHANGES: &str = "changes";

/// The change feed: position (u64 big-endian) → what changed ([`super::feed`]). One
/// store-wide order of every change, gap-free, written with the change.
pub const FEED: &str = "feed";

/// Relation edges a load removed (a reference changed): `[edge key][load id u32 BE]` → empty.
/// With the current edges, the candidates for a record's relations as of a past moment.
pub const UNLINKED: &str = "unlinked";

/// The values loads replaced: `[registry][key length][key][load id]` → the value the load
/// overwrote (empty: the load inserted the record). What undoes a load that did not finish
/// (a kill, a cancel, a failure), and a record's earlier versions.
pub const HISTORY: &str = "history";

/// The sources' latest contributions to a record that more than one source supplies:
/// `[registry][key length][key]` → each source and its contribution, encoded as a record
/// (`sources::encode_contributions`, `crate::golden`).
pub const CONTRIBUTIONS: &str = "contributions";

/// Identity conflicts for a data steward: `r[registry][key length][key][field]` → the item
/// (JSON), `#[item id u64 BE]` → its `r` key, `next` → the next item id.
pub const REVIEW: &str = "review";

/// Entities by their GB 11714 organisation code (characters 9–17 of the credit code):
/// `[organisation code][credit code]` → empty. What resolves rows and requests that name a
/// company by its pre-2015 code. May hold an entry of an insert that was undone: every use
/// checks the entity exists.
pub const ORGANISATION_CODES: &str = "organisation_codes";

/// The column family holding a registry's records (its name is the registry's name).
pub fn records(r: Registry) -> &'static str {
    r.as_str()
}

/// Whether a finished load's replaced values and removed edges are past the retention.
pub type Expired = std::sync::Arc<dyn Fn(u32) -> bool + Send + Sync>;

/// Every column family of the store.
pub fn all() -> impl Iterator<Item = &'static str> {
    Registry::ALL.into_iter().map(records).chain([
        RELATIONS,
        POINTS,
        META,
        CHANGES,
        HISTORY,
        FEED,
        UNLINKED,
        CONTRIBUTIONS,
        REVIEW,
        ORGANISATION_CODES,
    ])
}

/// Table options shared by every column family: one explicitly sized block cache holding
/// data, index and filter blocks; bloom filters (above the bottom level: [`options`]) so that
/// a point lookup of a key a level does not hold touches none of its data blocks. Records'
/// data blocks (`point_reads`) restart their key prefixes every 4 keys, others every 16
/// (RocksDB's default): a point read scans from a restart point to its key, which was 16% of
/// a server answering 100-key batches; every 4 made them 7–9% faster at 1M citizens for 2%
/// more of the citizens' store (ARCHITECTURE, *Decisions*: given back for the footprint
/// once, taken again when the footprint had room).
/// Blocks are 8 KiB, except in the column families read in order: 32 KiB in history and the
/// change log, 128 KiB in the feed (read in pages of entries; 32 KiB made it 22% smaller than
/// 8, 128 another 6%).
/// Larger blocks compress better but a point read of a block not in the cache decompresses
/// all of it (16 KiB record blocks: id lookups at 100M 2.6× slower, ARCHITECTURE,
/// *Decisions*; relations' edges in 16 KiB blocks were 3% smaller, not worth their reads).
fn table_options(cache: &Cache, bloom: bool, block_size: usize, point_reads: bool) -> BlockBasedOptions {
    let mut t = BlockBasedOptions::default();
    if point_reads {
        t.set_block_restart_interval(4);
    }
    t.set_block_cache(cache);
    t.set_block_size(block_size);
    t.set_cache_index_and_filter_blocks(true);
    t.set_pin_l0_filter_and_index_blocks_in_cache(true);
    t.set_index_type(BlockBasedIndexType::BinarySearch);
    t.set_format_version(5);
    if bloom {
        t.set_bloom_filter(10.0, false);
        t.set_optimize_filters_for_memory(true);
    }
    t
}

/// Options of one column family. Records are point-read (bloom filters); relations are only
/// prefix-scanned by owner, which a whole-key bloom filter cannot answer, so they have none.
/// LZ4 on the upper levels, zstd at the bottom where most bytes live: level 3 for records
/// (3% smaller than level 1, an entities' file recompressed by `sst_dump`; decompression,
/// what reads pay, costs the same; levels above cost loads more than they save), level 1
/// elsewhere (the feed and relations grew at 3).
///
/// Records' filters are kept off the bottom level (`optimize_filters_for_hits`): a present
/// key's lookup reads its data block there anyway, so a filter only spares a lookup of an
/// absent key one data block, at 10 bits a record of the bottom level: 1.25 bytes a record,
/// 1% of the data directory at 10M citizens, and as much block cache. The upper levels, where
/// a key that lives below would otherwise cost a data block in each, keep theirs.
pub fn options(name: &str, cache: &Cache) -> Options {
    options_for(name, cache, true)
}

/// The options an SST file of a bulk load is written with: a bulk load fills a registry with
/// no records, so its files are ingested into the bottom level, and records' files are written
/// without filters ([`options`]). Above the tombstones of an undone load they land on an upper
/// level instead, and do without filters there until a compaction rewrites them.
pub fn bulk_file_options(name: &str, cache: &Cache) -> Options {
    options_for(name, cache, false)
}

fn options_for(name: &str, cache: &Cache, upper_levels: bool) -> Options {
    let mut o = Options::default();
    o.set_level_compaction_dynamic_level_bytes(true);
    o.set_compression_type(DBCompressionType::Lz4);
    o.set_bottommost_compression_type(DBCompressionType::Zstd);
    let point_reads = Registry::ALL.iter().any(|r| records(*r) == name);
    o.set_bottommost_compression_options(-14, if point_reads { 3 } else { 1 }, 0, 0, true);
    o.set_write_buffer_size(64 << 20);
    o.set_target_file_size_base(64 << 20);
    let bloom = !matches!(
        name,
        RELATIONS | META | CHANGES | HISTORY | FEED | UNLINKED | CONTRIBUTIONS | REVIEW | ORGANISATION_CODES
    );
    o.set_optimize_filters_for_hits(bloom);
    o.set_block_based_table_factory(&table_options(
        cache,
        bloom && upper_levels,
        match name {
            FEED => 128 * 1024,
            HISTORY | CHANGES | UNLINKED => 32 * 1024,
            _ => 8 * 1024,
        },
        point_reads,
    ));
    if point_reads {
        o.set_memtable_whole_key_filtering(true);
        o.set_memtable_prefix_bloom_ratio(0.02);
    }
    o
}

/// The column families with their options; with a retention, `history` and `unlinked` drop
/// in compaction the entries of loads it has expired (the last four bytes of their keys are the
/// load id), except insert markers (empty values: they tell an insert from an update whose
/// earlier versions were dropped). Their files are compacted at least daily, so old entries go.
pub fn descriptors(cache: &Cache, expired: Option<Expired>) -> Vec<ColumnFamilyDescriptor> {
    all()
        .map(|name| {
            let mut o = options(name, cache);
            if let (Some(expired), HISTORY | UNLINKED) = (&expired, name) {
                let expired = expired.clone();
                o.set_compaction_filter("jichu-retention", move |_level, key: &[u8], value: &[u8]| {
                    let load = key
                        .len()
                        .checked_sub(4)
                        .map(|i| u32::from_be_bytes([key[i], key[i + 1], key[i + 2], key[i + 3]]));
                    let marker = name == HISTORY && value.is_empty();
                    match load {
                        Some(id) if !marker && expired(id) => rocksdb::CompactionDecision::Remove,
                        _ => rocksdb::CompactionDecision::Keep,
                    }
                });
                o.set_periodic_compaction_seconds(24 * 3600);
            }
            ColumnFamilyDescriptor::new(name, o)
        })
        .collect()
}
