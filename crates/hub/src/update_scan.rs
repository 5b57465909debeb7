//! Reading an update's structure before yrs decodes it.
//!
//! Every update that reaches a live document (from a client, another node,
//! the log) is scanned here first, without building anything: the scan walks
//! the lib0 v1 encoding exactly as yrs's `Update::decode` does (same primitive
//! reads, through yrs's own `Cursor`, in the same order), so the two agree on
//! where every struct starts and ends, and it refuses what must never reach
//! yrs:
//!
//! - **Nesting that recurses.** yrs decodes, drops and encodes `Any` values
//!   recursively, and deletes and garbage-collects nested shared types
//!   recursively. A 20 KB update nesting an array 10,000 levels deep overflowed
//!   a worker's stack, which aborts the whole process. `Any` values deeper
//!   than [`MAX_NESTING`] are refused here; nested types are bounded by
//!   [`crate::item_index`], which needs the structure this scan returns (each
//!   struct's id, length and parent).
//! - **Client ids JavaScript cannot hold** (above 2^53 − 1): Yjs reads them as
//!   doubles and rounds them, while yrs keeps `u64`s (or, built without debug
//!   assertions, silently keeps the low 53 bits); one such id splits the
//!   server from every stock client for good.
//! - **What Yjs does not have or yrs misreads:** weak links (yrs-only, and
//!   their quoted ids escape these checks), sub-documents (each one a whole
//!   `Doc` in memory, never synced by Quire), legacy JSON content (yrs reads
//!   one string more than it writes), and two sections of structs for one
//!   client (Yjs keeps the last, yrs both; found by the `update_scan` fuzz
//!   target).
//!
//! It also estimates what each struct will cost in memory once decoded
//! ([`Struct::cost`]), because the encoded size says little: a million nulls
//! take 1 MB on the wire and about 24 MB in yrs.
//!
//! Counts read from the wire (structs, entries, lengths) are only ever
//! iterated, never reserved: a short update cannot claim a huge allocation.
//! Once this scan accepted an update, every count yrs reserves for is backed
//! by bytes that are really there.

use hashbrown::HashSet;
use quire_protocol::MAX_CLIENT_ID;
use smallvec::SmallVec;
use yrs::encoding::read::{Cursor, Read};

/// Deepest nesting allowed: of `Any` values (arrays and maps inside each
/// other) and of shared types (a `Y.Map` in a `Y.Map`, an element in an
/// element). A rich-text document nests a handful of levels (a table cell in
/// a list item in a quote is under 10); this leaves room for any real editor
/// while keeping yrs's recursion a few hundred frames deep.
pub const MAX_NESTING: usize = 256;

/// Why an update was refused before anything of it was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a lib0 v1 update.
    Undecodable,
    /// It mentions a client id above [`MAX_CLIENT_ID`].
    ClientIdTooLarge(u64),
    /// A yrs-only weak link.
    WeakLink,
    /// A sub-document.
    Subdocument,
    /// Legacy JSON content (`ContentJSON`), which yrs misreads.
    LegacyJson,
    /// Two sections of structs for one client: Yjs keeps only the last,
    /// yrs appends them, so the two would hold different documents.
    RepeatedClient(u64),
    /// `Any` values nested deeper than [`MAX_NESTING`].
    ValueTooDeep,
    /// Shared types nested deeper than [`MAX_NESTING`].
    TypesTooDeep,
    /// A nested item names as its parent an item that is not a shared type
    /// (yrs would fail half-way through applying it).
    InvalidParent,
    /// Applying it would make the document larger in memory than allowed.
    TooLargeInMemory,
    /// It depends on content the document does not have, and too much is
    /// already waiting for its dependencies.
    Unresolvable,
}

impl Refusal {
    /// The reason given with the close code.
    pub fn reason(&self) -> String {
        match self {
            Refusal::Undecodable => "undecodable update".to_owned(),
            Refusal::ClientIdTooLarge(id) => format!(
                "update refused: client id {id} is above 2^53 - 1, which JavaScript clients cannot represent"
            ),
            Refusal::WeakLink => "update refused: weak links are not part of Yjs".to_owned(),
            Refusal::Subdocument => "update refused: sub-documents are not supported".to_owned(),
            Refusal::LegacyJson => {
                "update refused: legacy JSON content is not supported".to_owned()
            }
            Refusal::RepeatedClient(id) => {
                format!("update refused: the structs of client {id} appear twice")
            }
            Refusal::ValueTooDeep => {
                format!("update refused: values nested deeper than {MAX_NESTING} levels")
            }
            Refusal::TypesTooDeep => {
                format!("update refused: shared types nested deeper than {MAX_NESTING} levels")
            }
            Refusal::InvalidParent => {
                "update refused: an item's parent is not a shared type".to_owned()
            }
            Refusal::TooLargeInMemory => {
                "update refused: the document would exceed its memory limit".to_owned()
            }
            Refusal::Unresolvable => {
                "update refused: it depends on content this document does not have".to_owned()
            }
        }
    }

    /// Stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Refusal::Undecodable => "undecodable",
            Refusal::ClientIdTooLarge(_) => "client_id_too_large",
            Refusal::WeakLink => "weak_link",
            Refusal::Subdocument => "subdocument",
            Refusal::LegacyJson => "legacy_json",
            Refusal::RepeatedClient(_) => "repeated_client",
            Refusal::ValueTooDeep => "value_too_deep",
            Refusal::TypesTooDeep => "types_too_deep",
            Refusal::InvalidParent => "invalid_parent",
            Refusal::TooLargeInMemory => "too_large_in_memory",
            Refusal::Unresolvable => "unresolvable",
        }
    }
}

/// An item id: a Yjs client and a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id {
    pub client: u64,
    pub clock: u32,
}

/// Where a struct hangs in the document, as far as the update says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent {
    /// A garbage-collected range: deleted content, attached to nothing.
    Gc,
    /// A root type, named.
    Root,
    /// The shared type created by this item.
    Type(Id),
    /// Not written: yrs takes the parent of the left origin, or else of the
    /// right origin (siblings share their parent).
    Sibling { left: Option<Id>, right: Option<Id> },
}

/// What a struct holds, as far as nesting is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Text, values, formatting, embeds.
    Value,
    /// Deleted content (for a deleted shared type too).
    Deleted,
    /// A shared type: its clock is a parent other items may name.
    Type,
    /// A garbage-collected range.
    Gc,
}

/// One struct of an update: a run of `len` clocks of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Struct {
    pub id: Id,
    pub len: u32,
    pub parent: Parent,
    pub content: Content,
    /// Estimated bytes it takes once decoded and integrated.
    pub cost: u64,
}

/// What an update holds, in the order it is encoded.
#[derive(Debug, Default)]
pub struct Scan {
    /// Inline for a keystroke's one or two structs.
    pub structs: SmallVec<[Struct; 2]>,
    /// The update deletes something.
    pub deletes: bool,
}

impl Scan {
    /// Estimated memory of every struct, whether new or not.
    pub fn cost(&self) -> u64 {
        self.structs.iter().map(|s| s.cost).sum()
    }

    /// The lowest clock of each client the update holds structs of.
    pub fn lower(&self) -> yrs::StateVector {
        let mut sv = yrs::StateVector::default();
        for s in &self.structs {
            sv.set_min(yrs::ClientID::new(s.id.client), s.id.clock);
        }
        sv
    }

    /// Whether the update holds anything at all (structs or deletions).
    pub fn is_empty(&self) -> bool {
        self.structs.is_empty() && !self.deletes
    }
}

// Struct kinds (the low 4 bits of the info byte) and flags, as in yrs/Yjs.
const GC: u8 = 0;
const DELETED: u8 = 1;
const JSON: u8 = 2;
const BINARY: u8 = 3;
const STRING: u8 = 4;
const EMBED: u8 = 5;
const FORMAT: u8 = 6;
const TYPE: u8 = 7;
const ANY: u8 = 8;
const DOC: u8 = 9;
const SKIP: u8 = 10;
const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;

// Type refs of shared types.
const TYPE_XML_ELEMENT: u8 = 3;
const TYPE_WEAK: u8 = 7;
const TYPE_DOC: u8 = 9;
const TYPE_UNDEFINED: u8 = 15;

/// Estimated memory, in bytes, of the parts of a decoded document, measured
/// on yrs 0.28 (resident size after applying a million of each into a fresh
/// process): an item with its block-store entry ~200–300 B, a `Y.Map` or XML
/// element (item and branch) ~430–480 B, a scalar `Any` in a list 24 B, an
/// `Any` string or empty array ~56 B, an `Any` map of one entry ~360 B.
mod cost {
    pub const ITEM: u64 = 224;
    pub const GC: u64 = 32;
    pub const BRANCH: u64 = 256;
    pub const ANY: u64 = 24;
    pub const HEAP: u64 = 32;
    pub const MAP: u64 = 300;
    pub const MAP_ENTRY: u64 = 64;
}

/// Scans `update` (lib0 v1). See the module docs for what is refused.
pub fn scan(update: &[u8]) -> Result<Scan, Refusal> {
    let mut r = Cursor::new(update);
    let mut scan = Scan::default();
    let clients: u32 = var(&mut r)?;
    // Allocated only for updates of several clients (a keystroke has one).
    let mut seen: HashSet<u64> = HashSet::new();
    for _ in 0..clients {
        let structs: u32 = var(&mut r)?;
        let client = client(&mut r)?;
        if clients > 1 && !seen.insert(client) {
            return Err(Refusal::RepeatedClient(client));
        }
        let mut clock: u32 = var(&mut r)?;
        for _ in 0..structs {
            let info = r.read_u8().map_err(undecodable)?;
            let id = Id { client, clock };
            let (len, s) = match info {
                SKIP => (nonzero(var(&mut r)?)?, None),
                GC => {
                    let len = nonzero(var(&mut r)?)?;
                    let s = Struct {
                        id,
                        len,
                        parent: Parent::Gc,
                        content: Content::Gc,
                        cost: cost::GC,
                    };
                    (len, Some(s))
                }
                _ => match item(&mut r, id, info)? {
                    Some(s) => (s.len, Some(s)),
                    // yrs drops empty items (an old Yjs bug wrote some).
                    None => (0, None),
                },
            };
            scan.structs.extend(s);
            clock = clock.checked_add(len).ok_or(Refusal::Undecodable)?;
        }
    }
    // The delete set: per client, ranges of (clock, len).
    let clients: u32 = var(&mut r)?;
    for _ in 0..clients {
        client(&mut r)?;
        let ranges: u32 = var(&mut r)?;
        for _ in 0..ranges {
            let _clock: u32 = var(&mut r)?;
            let _len: u32 = var(&mut r)?;
            scan.deletes = true;
        }
    }
    Ok(scan)
}

/// One item (not a GC or skip struct), as yrs's `Update::decode_block` reads it.
fn item(r: &mut Cursor<'_>, id: Id, info: u8) -> Result<Option<Struct>, Refusal> {
    let cant_copy_parent_info = info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0;
    let left = if info & HAS_ORIGIN != 0 {
        Some(read_id(r)?)
    } else {
        None
    };
    let right = if info & HAS_RIGHT_ORIGIN != 0 {
        Some(read_id(r)?)
    } else {
        None
    };
    let mut cost = cost::ITEM;
    let parent = if cant_copy_parent_info {
        let named: u32 = var(r)?;
        if named == 1 {
            cost += string(r)?.len() as u64;
            Parent::Root
        } else {
            Parent::Type(read_id(r)?)
        }
    } else {
        Parent::Sibling { left, right }
    };
    if cant_copy_parent_info && info & HAS_PARENT_SUB != 0 {
        cost += string(r)?.len() as u64;
    }
    let mut content = Content::Value;
    let len: u32 = match info & 0b1111 {
        DELETED => {
            content = Content::Deleted;
            var(r)?
        }
        JSON => return Err(Refusal::LegacyJson),
        BINARY => {
            cost += cost::HEAP + buf(r)?.len() as u64;
            1
        }
        STRING => {
            let s = string(r)?;
            cost += s.len() as u64;
            u32::try_from(s.encode_utf16().count()).map_err(|_| Refusal::Undecodable)?
        }
        EMBED => {
            cost += json_cost(string(r)?);
            1
        }
        FORMAT => {
            cost += string(r)?.len() as u64;
            cost += json_cost(string(r)?);
            1
        }
        TYPE => {
            content = Content::Type;
            cost += cost::BRANCH;
            match r.read_u8().map_err(undecodable)? {
                TYPE_XML_ELEMENT => cost += string(r)?.len() as u64,
                TYPE_WEAK => return Err(Refusal::WeakLink),
                TYPE_DOC => return Err(Refusal::Subdocument),
                0..=6 | TYPE_UNDEFINED => {}
                _ => return Err(Refusal::Undecodable),
            }
            1
        }
        ANY => {
            let n: u32 = var(r)?;
            for _ in 0..n {
                cost += any(r, 1)?;
            }
            n
        }
        DOC => return Err(Refusal::Subdocument),
        _ => return Err(Refusal::Undecodable),
    };
    if len == 0 {
        return Ok(None);
    }
    Ok(Some(Struct {
        id,
        len,
        parent,
        content,
        cost,
    }))
}

/// One `Any` value at nesting `depth` (1 for a top-level value), as yrs's
/// `Any::decode` reads it; returns its estimated cost.
fn any(r: &mut Cursor<'_>, depth: usize) -> Result<u64, Refusal> {
    if depth > MAX_NESTING {
        return Err(Refusal::ValueTooDeep);
    }
    let cost = match r.read_u8().map_err(undecodable)? {
        // undefined, null, false, true
        127 | 126 | 121 | 120 => cost::ANY,
        // integer
        125 => {
            let _: i64 = var(r)?;
            cost::ANY
        }
        // float32
        124 => {
            r.read_exact(4).map_err(undecodable)?;
            cost::ANY
        }
        // float64, bigint
        123 | 122 => {
            r.read_exact(8).map_err(undecodable)?;
            cost::ANY
        }
        // string
        119 => cost::ANY + cost::HEAP + string(r)?.len() as u64,
        // map
        118 => {
            let n: usize = var(r)?;
            let mut cost = cost::ANY + cost::MAP;
            for _ in 0..n {
                cost += cost::MAP_ENTRY + string(r)?.len() as u64;
                cost += any(r, depth + 1)?;
            }
            cost
        }
        // array
        117 => {
            let n: usize = var(r)?;
            let mut cost = cost::ANY + cost::HEAP;
            for _ in 0..n {
                cost += any(r, depth + 1)?;
            }
            cost
        }
        // buffer
        116 => cost::ANY + cost::HEAP + buf(r)?.len() as u64,
        _ => return Err(Refusal::Undecodable),
    };
    Ok(cost)
}

/// A JSON value (format attributes, embeds) becomes an `Any` tree: roughly
/// one value per structural character, plus the text. (yrs parses it with
/// serde_json, whose recursion limit of 128 bounds its depth.)
fn json_cost(json: &str) -> u64 {
    let values = json
        .bytes()
        .filter(|b| matches!(b, b'[' | b'{' | b',' | b':'))
        .count() as u64;
    json.len() as u64 + cost::ANY * (values + 1)
}

fn read_id(r: &mut Cursor<'_>) -> Result<Id, Refusal> {
    let client = client(r)?;
    let clock: u32 = var(r)?;
    Ok(Id { client, clock })
}

fn client(r: &mut Cursor<'_>) -> Result<u64, Refusal> {
    let client: u64 = var(r)?;
    if client > MAX_CLIENT_ID {
        return Err(Refusal::ClientIdTooLarge(client));
    }
    Ok(client)
}

fn var<T: yrs::encoding::varint::VarInt>(r: &mut Cursor<'_>) -> Result<T, Refusal> {
    r.read_var().map_err(undecodable)
}

/// A length-prefixed string, as yrs's `read_string` (which must be UTF-8).
fn string<'a>(r: &mut Cursor<'a>) -> Result<&'a str, Refusal> {
    std::str::from_utf8(buf(r)?).map_err(|_| Refusal::Undecodable)
}

/// A length-prefixed byte string, as yrs's `read_buf`.
fn buf<'a>(r: &mut Cursor<'a>) -> Result<&'a [u8], Refusal> {
    let len: u32 = var(r)?;
    let start = r.next;
    r.read_exact(len as usize).map_err(undecodable)?;
    let whole: &'a [u8] = r.buf;
    Ok(&whole[start..start + len as usize])
}

fn nonzero(len: u32) -> Result<u32, Refusal> {
    if len == 0 {
        Err(Refusal::Undecodable)
    } else {
        Ok(len)
    }
}

fn undecodable(_: yrs::encoding::read::Error) -> Refusal {
    Refusal::Undecodable
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use quire_protocol::write_var_uint;
    use yrs::updates::decoder::Decode;
    use yrs::{
        Array, ClientID, Doc, GetString, ReadTxn, StateVector, Text, Transact, Update, WriteTxn,
    };

    /// One client's insert of "a" into the root text "text": what Yjs writes
    /// for `doc.clientID = client; doc.getText('text').insert(0, 'a')`.
    fn insert_by(client: u64) -> Vec<u8> {
        let mut u = vec![1, 1];
        write_var_uint(&mut u, client);
        // clock 0; info 4 (a string, no origins); parent: the root named
        // "text"; the string "a"; an empty delete set
        u.extend_from_slice(&[0, 4, 1, 4, b't', b'e', b'x', b't', 1, b'a', 0]);
        u
    }

    /// An update with no structs whose delete set deletes one item of `client`.
    fn deletion_by(client: u64) -> Vec<u8> {
        let mut u = vec![0, 1];
        write_var_uint(&mut u, client);
        u.extend_from_slice(&[1, 0, 1]);
        u
    }

    /// An insert by client 1 whose left origin is an item of `client`.
    fn insert_after(client: u64) -> Vec<u8> {
        // structs: 1 client; 1 block; client 1, clock 0;
        // info 0x84 (has origin, content string); origin (client, 0); "b"
        let mut u = vec![1, 1, 1, 0, 0x84];
        write_var_uint(&mut u, client);
        u.extend_from_slice(&[0, 1, b'b', 0]);
        u
    }

    /// One `Any` item in the root array "a": `arrays` arrays nested in each
    /// other around a null.
    pub(crate) fn nested_any(arrays: usize) -> Vec<u8> {
        let mut u = vec![1, 1, 1, 0, ANY, 1, 1, b'a', 1];
        for _ in 0..arrays {
            u.extend_from_slice(&[117, 1]);
        }
        u.push(126);
        u.push(0);
        u
    }

    #[test]
    fn the_insert_fixture_is_what_yrs_writes() {
        let doc = Doc::with_client_id(1);
        let mut txn = doc.transact_mut();
        txn.get_or_insert_text("text").insert(&mut txn, 0, "a");
        assert_eq!(txn.encode_update_v1(), insert_by(1));
    }

    #[test]
    fn accepts_client_ids_up_to_2_pow_53_minus_1() {
        for id in [1, 1 << 32, MAX_CLIENT_ID] {
            let s = scan(&insert_by(id)).unwrap();
            assert_eq!(
                s.structs[0].id,
                Id {
                    client: id,
                    clock: 0
                }
            );
            assert!(scan(&deletion_by(id)).unwrap().deletes);
            assert!(scan(&insert_after(id)).is_ok());
        }
    }

    #[test]
    fn refuses_client_ids_javascript_cannot_represent_wherever_they_are() {
        for id in [MAX_CLIENT_ID + 1, 1 << 60, u64::MAX] {
            for update in [insert_by(id), deletion_by(id), insert_after(id)] {
                assert_eq!(scan(&update).unwrap_err(), Refusal::ClientIdTooLarge(id));
            }
        }
    }

    #[test]
    fn values_nest_up_to_the_limit_and_no_deeper() {
        // A scalar at the top is one level; each array around it adds one.
        assert!(scan(&nested_any(MAX_NESTING - 1)).is_ok());
        assert_eq!(
            scan(&nested_any(MAX_NESTING)).unwrap_err(),
            Refusal::ValueTooDeep
        );
        // The payload of issue 12: 10,000 levels in 20 KB.
        assert_eq!(
            scan(&nested_any(10_000)).unwrap_err(),
            Refusal::ValueTooDeep
        );
    }

    #[test]
    fn what_yjs_lacks_or_yrs_misreads_is_refused() {
        // A type item whose type ref is a weak link (7) or a sub-document (9).
        let typed = |type_ref: u8| vec![1, 1, 1, 0, TYPE, 1, 1, b'a', type_ref, 0];
        assert_eq!(scan(&typed(7)).unwrap_err(), Refusal::WeakLink);
        assert_eq!(scan(&typed(9)).unwrap_err(), Refusal::Subdocument);
        assert!(scan(&typed(1)).is_ok());
        // Sub-document content, and legacy JSON content.
        assert_eq!(
            scan(&[1, 1, 1, 0, DOC, 1, 1, b'a', 0]).unwrap_err(),
            Refusal::Subdocument
        );
        assert_eq!(
            scan(&[1, 1, 1, 0, JSON, 1, 1, b'a', 0, 0]).unwrap_err(),
            Refusal::LegacyJson
        );
        // Two sections of structs for one client (found by fuzzing: yrs
        // appends the second to the first, out of clock order, where Yjs
        // keeps only the second); two clients are fine.
        let section = |client: u8, clock: u8| [1, client, clock, STRING, 1, 1, b'a', 1, b'x'];
        let two = |a: [u8; 9], b: [u8; 9]| [&[2][..], &a, &b, &[0]].concat();
        assert_eq!(
            scan(&two(section(1, 5), section(1, 0))).unwrap_err(),
            Refusal::RepeatedClient(1)
        );
        assert_eq!(
            scan(&two(section(1, 0), section(2, 0)))
                .unwrap()
                .structs
                .len(),
            2
        );
    }

    #[test]
    fn short_input_claiming_huge_counts_is_undecodable() {
        for bytes in [
            &[][..],
            &[0xff, 0xff],
            // 2^32 - 1 clients, then nothing
            &[0xff, 0xff, 0xff, 0xff, 0x0f],
            // an Any list claiming 2^32 - 1 values
            &[1, 1, 1, 0, ANY, 1, 1, b'a', 0xff, 0xff, 0xff, 0xff, 0x0f],
            // an Any map claiming a huge number of entries
            &[
                1, 1, 1, 0, ANY, 1, 1, b'a', 1, 118, 0xff, 0xff, 0xff, 0xff, 0x0f,
            ],
            // invalid UTF-8 in a string
            &[1, 1, 1, 0, STRING, 1, 1, b'a', 1, 0xff, 0],
        ] {
            assert_eq!(scan(bytes).unwrap_err(), Refusal::Undecodable, "{bytes:?}");
        }
    }

    /// The scan finds exactly the structs yrs decodes: the same clocks, and
    /// each client's lowest clock agrees with yrs's own.
    fn agrees_with_yrs(update: &[u8]) {
        let s = scan(update).expect("scans");
        let u = Update::decode_v1(update).expect("yrs decodes");
        assert_eq!(s.lower(), u.state_vector_lower(), "lowest clocks");
        let mut ranges = yrs::IdSet::default();
        for st in &s.structs {
            ranges.insert(
                yrs::ID::new(ClientID::new(st.id.client), st.id.clock),
                st.len,
            );
        }
        assert_eq!(ranges, u.insertions(true), "every struct's clocks");
        assert_eq!(s.deletes, !u.delete_set().is_empty());
    }

    #[test]
    fn reads_real_updates_as_yrs_does() {
        let (doc, updates) = crate::fixtures::editing_session(MAX_CLIENT_ID);
        let text = doc.get_or_insert_text("text");
        for u in &updates {
            agrees_with_yrs(u);
        }
        // The whole state, with garbage-collected deletions.
        let state = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        agrees_with_yrs(&state);
        let copy = Doc::new();
        copy.transact_mut()
            .apply_update(Update::decode_v1(&state).unwrap())
            .unwrap();
        assert_eq!(
            copy.get_or_insert_text("text").get_string(&copy.transact()),
            text.get_string(&doc.transact())
        );
    }

    #[test]
    fn a_million_nulls_are_priced_as_what_they_cost_in_memory() {
        let doc = Doc::with_client_id(1);
        let mut txn = doc.transact_mut();
        let a = txn.get_or_insert_array("a");
        a.insert_range(&mut txn, 0, vec![yrs::Any::Null; 1_000_000]);
        let update = txn.encode_update_v1();
        assert!(update.len() < 1_100_000);
        // Measured: about 24 bytes each once applied.
        assert!(scan(&update).unwrap().cost() >= 24_000_000);
    }
}
