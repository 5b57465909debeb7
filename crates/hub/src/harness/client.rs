//! A session's client: the yrs document it edits, and the frames it builds
//! from a script's [`Action`]s. It behaves like a Yjs client where the
//! script says so (edits made by its own document, which also applies what
//! the hub sends it) and like an attacker everywhere else.

use bytes::Bytes;
use quire_protocol::{
    encode_awareness, encode_awareness_update, encode_sync_step1, encode_sync_step2, encode_update,
    write_var_bytes, write_var_uint,
};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Any, Array, ArrayRef, ClientID, GetString, Map, MapPrelim, OffsetKind, Options, ReadTxn,
    StateVector, Text, TextRef, Transact, TransactionMut, Update, WriteTxn, XmlElementPrelim,
    XmlFragment,
};

use super::panics;
use super::script::{Action, ClientRef, Edit, Payload, Presence, ROLES, Role, SESSIONS, State};
use crate::{JoinOptions, Session};

/// The yrs client id of session `i`'s document.
pub(crate) fn client_id(session: usize) -> u64 {
    1000 + session as u64
}

pub(crate) struct Client {
    pub role: Role,
    doc: yrs::Doc,
    /// `None` once the hub closed it; the next step that uses it joins again.
    pub session: Option<Session>,
    /// Update-bearing messages sent on the current session (the count the
    /// hub's acknowledgements refer to).
    pub updates_sent: u64,
    /// The last acknowledgement received on the current session.
    pub acked: u64,
}

impl Client {
    pub fn new(session: usize) -> Client {
        let mut opts = Options::with_client_id(ClientID::new(client_id(session)));
        // As Yjs counts: text positions in UTF-16 code units.
        opts.offset_kind = OffsetKind::Utf16;
        Client {
            role: ROLES[session],
            doc: yrs::Doc::with_options(opts),
            session: None,
            updates_sent: 0,
            acked: 0,
        }
    }

    pub fn join_options(&self) -> JoinOptions {
        JoinOptions {
            durable_acks: self.role == Role::DurableWriter,
            can_write: self.role != Role::Reader,
            ..JoinOptions::default()
        }
    }

    /// A session was (re)joined: acknowledgements count from zero again.
    pub fn joined(&mut self, session: Session) {
        self.session = Some(session);
        self.updates_sent = 0;
        self.acked = 0;
    }

    /// The frame `action` sends from session `me` (`None` for
    /// [`Action::Reconnect`]).
    pub fn frame(&mut self, action: &Action, me: usize) -> Option<Bytes> {
        Some(match action {
            Action::Raw(b) => Bytes::copy_from_slice(b),
            Action::Step1Own => encode_sync_step1(&self.doc.transact().state_vector().encode_v1()),
            Action::Step1Raw(sv) => encode_sync_step1(sv),
            Action::Update(p) => encode_update(&self.payload(p)),
            Action::Step2(p) => encode_sync_step2(&self.payload(p)),
            Action::Awareness(entries) => {
                let states: Vec<(u64, u64, String)> = entries
                    .iter()
                    .map(|e| (presence_client(e, me), e.clock, state_json(&e.state)))
                    .collect();
                encode_awareness(&encode_awareness_update(
                    states.iter().map(|(c, k, s)| (*c, *k, s.as_str())),
                ))
            }
            Action::AwarenessRaw(b) => encode_awareness(b),
            Action::QueryAwareness => {
                Bytes::from_static(&[quire_protocol::MSG_QUERY_AWARENESS as u8])
            }
            Action::Reconnect => return None,
        })
    }

    /// Applies an update the hub sent, as a client would. The hub only ever
    /// sends what it accepted; a failure here is the client's business.
    pub fn receive_update(&mut self, update: &[u8]) {
        panics::in_client(|| {
            if let Ok(u) = Update::decode_v1(update) {
                let _ = self.doc.transact_mut().apply_update(u);
            }
        });
    }

    fn payload(&mut self, p: &Payload) -> Vec<u8> {
        match p {
            Payload::Raw(b) => b.clone(),
            Payload::Edit(e) => self.edit(e),
            Payload::Mutated(e, flips) => {
                let mut u = self.edit(e);
                if !u.is_empty() {
                    let n = u.len();
                    for &(at, xor) in flips {
                        u[at as usize % n] ^= xor;
                    }
                }
                u
            }
            // A client holding hostile updates yrs keeps pending can panic
            // merging them into its state (yrs's own `unwrap`): that is the
            // client's failure, and it then sends nothing.
            Payload::OwnState => panics::in_client(|| {
                self.doc
                    .transact()
                    .encode_state_as_update_v1(&StateVector::default())
            })
            .unwrap_or_default(),
        }
    }

    fn edit(&mut self, e: &Edit) -> Vec<u8> {
        match *e {
            Edit::NestedMaps {
                client,
                from,
                count,
            } => nested_maps(client, from, count),
            Edit::Delete { client, clock, len } => deletion(client, clock, len),
            Edit::NestedAny { client, depth } => nested_any(client, depth),
            Edit::Nulls { client, count } => nulls(client, count),
            Edit::InsertBy { client } => insert_by(client),
            Edit::WeakLink { client } => typed(client, 7),
            Edit::Subdocument { client } => item(client, 9, &[]),
            // The rest are made by the client's own document. A yrs panic
            // there says nothing about the hub: the edit becomes empty.
            _ => panics::in_client(|| {
                let mut txn = self.doc.transact_mut();
                local_edit(&mut txn, e);
                txn.encode_update_v1()
            })
            .unwrap_or_else(|| Update::EMPTY_V1.to_vec()),
        }
    }
}

fn local_edit(txn: &mut TransactionMut, e: &Edit) {
    match e {
        Edit::InsertText { index, text } => {
            let t = txn.get_or_insert_text("text");
            let at = utf16_offset(&t, txn, *index, true);
            t.insert(txn, at, text);
        }
        Edit::DeleteText { index, len } => {
            let t = txn.get_or_insert_text("text");
            let (at, n) = utf16_range(&t, txn, *index, *len);
            t.remove_range(txn, at, n);
        }
        Edit::Format { index, len, bold } => {
            let t = txn.get_or_insert_text("text");
            let (at, n) = utf16_range(&t, txn, *index, *len);
            let attrs = yrs::types::Attrs::from([(
                "bold".into(),
                if *bold { Any::Bool(true) } else { Any::Null },
            )]);
            t.format(txn, at, n, attrs);
        }
        Edit::Paragraph { text } => {
            let f = txn.get_or_insert_xml_fragment("default");
            let n = f.len(txn);
            let p = f.insert(txn, n, XmlElementPrelim::empty("paragraph"));
            p.insert(txn, 0, yrs::XmlTextPrelim::new(text.as_str()));
        }
        Edit::SetKey { key, value } => {
            txn.get_or_insert_map("m")
                .insert(txn, key.as_str(), Any::from(*value));
        }
        Edit::InsertMap { key } => {
            txn.get_or_insert_map("m")
                .insert(txn, key.as_str(), MapPrelim::default());
        }
        Edit::NestedValue { depth } => {
            let mut v = Any::Null;
            for _ in 0..*depth {
                v = Any::from(vec![v]);
            }
            let a = txn.get_or_insert_array("a");
            let n = a.len(txn);
            a.insert(txn, n, v);
        }
        Edit::Numbers { count } => {
            let a = txn.get_or_insert_array("a");
            let n = a.len(txn);
            a.insert_range(txn, n, (0..*count).map(|i| Any::from(f64::from(i))));
        }
        Edit::DeleteRange { index, len } => {
            let a: ArrayRef = txn.get_or_insert_array("a");
            let n = a.len(txn);
            let at = index % (n + 1);
            a.remove_range(txn, at, (*len).min(n - at));
        }
        Edit::NestedMaps { .. }
        | Edit::Delete { .. }
        | Edit::NestedAny { .. }
        | Edit::Nulls { .. }
        | Edit::InsertBy { .. }
        | Edit::WeakLink { .. }
        | Edit::Subdocument { .. } => {}
    }
}

/// The UTF-16 offset of the `index`-th character (modulo the length), so
/// that no edit splits a character.
fn utf16_offset(t: &TextRef, txn: &TransactionMut, index: u32, inclusive: bool) -> u32 {
    let s = t.get_string(txn);
    let chars = s.chars().count() as u32 + u32::from(inclusive);
    let k = if chars == 0 { 0 } else { index % chars };
    s.chars()
        .take(k as usize)
        .map(|c| c.len_utf16() as u32)
        .sum()
}

fn utf16_range(t: &TextRef, txn: &TransactionMut, index: u32, len: u32) -> (u32, u32) {
    let s = t.get_string(txn);
    let chars: Vec<char> = s.chars().collect();
    let start = if chars.is_empty() {
        0
    } else {
        index as usize % chars.len()
    };
    let end = start.saturating_add(len as usize).min(chars.len());
    let off = |k: usize| chars[..k].iter().map(|c| c.len_utf16() as u32).sum::<u32>();
    (off(start), off(end) - off(start))
}

fn presence_client(e: &Presence, me: usize) -> u64 {
    match e.client {
        ClientRef::Own => client_id(me),
        ClientRef::Session(i) => client_id(i % SESSIONS),
        ClientRef::Id(id) => id,
    }
}

fn state_json(s: &State) -> String {
    match s {
        State::User { name, color } => {
            serde_json::json!({ "user": { "name": name, "color": color } }).to_string()
        }
        State::Removed => "null".to_owned(),
        State::Text(t) => t.clone(),
        State::Padding { len } => format!("\"{}\"", "x".repeat(*len as usize)),
    }
}

// Updates written byte by byte (lib0 v1), for what a yrs document cannot or
// must not build. Struct info bytes as in `update_scan`.
const INFO_TYPE: u8 = 7;
const INFO_ANY: u8 = 8;
const INFO_STRING: u8 = 4;
const HAS_PARENT_SUB: u8 = 0b0010_0000;
const TYPE_MAP: u8 = 1;

/// One client's run of `structs` structs from `clock`.
fn header(client: u64, clock: u32, structs: u32) -> Vec<u8> {
    let mut u = vec![1];
    write_var_uint(&mut u, u64::from(structs));
    write_var_uint(&mut u, client);
    write_var_uint(&mut u, u64::from(clock));
    u
}

/// The parent of an item with no origins: a root type by name.
fn root(u: &mut Vec<u8>, name: &str) {
    u.push(1);
    write_var_bytes(u, name.as_bytes());
}

/// One item of `client` at clock 0 in the root array "a" with `info`
/// content and `rest` after the info's first fields.
fn item(client: u64, info: u8, rest: &[u8]) -> Vec<u8> {
    let mut u = header(client, 0, 1);
    u.push(info);
    root(&mut u, "a");
    u.extend_from_slice(rest);
    u.push(0);
    u
}

fn typed(client: u64, type_ref: u8) -> Vec<u8> {
    item(client, INFO_TYPE, &[type_ref])
}

pub(crate) fn nested_maps(client: u64, from: u32, count: u32) -> Vec<u8> {
    let mut u = header(client, from, count);
    for clock in from..from.saturating_add(count) {
        u.push(INFO_TYPE | HAS_PARENT_SUB);
        if clock == 0 {
            root(&mut u, "m");
        } else {
            u.push(0);
            write_var_uint(&mut u, client);
            write_var_uint(&mut u, u64::from(clock - 1));
        }
        write_var_bytes(&mut u, b"k");
        u.push(TYPE_MAP);
    }
    u.push(0);
    u
}

pub(crate) fn deletion(client: u64, clock: u32, len: u32) -> Vec<u8> {
    let mut u = vec![0, 1];
    write_var_uint(&mut u, client);
    u.push(1);
    write_var_uint(&mut u, u64::from(clock));
    write_var_uint(&mut u, u64::from(len));
    u
}

pub(crate) fn nested_any(client: u64, depth: u32) -> Vec<u8> {
    let mut rest = vec![1];
    for _ in 0..depth {
        rest.extend_from_slice(&[117, 1]);
    }
    rest.push(126);
    item(client, INFO_ANY, &rest)
}

pub(crate) fn nulls(client: u64, count: u32) -> Vec<u8> {
    let mut rest = Vec::with_capacity(count as usize + 5);
    write_var_uint(&mut rest, u64::from(count));
    rest.resize(rest.len() + count as usize, 126);
    item(client, INFO_ANY, &rest)
}

pub(crate) fn insert_by(client: u64) -> Vec<u8> {
    let mut u = header(client, 0, 1);
    u.push(INFO_STRING);
    root(&mut u, "text");
    write_var_bytes(&mut u, b"a");
    u.push(0);
    u
}

/// The updates `edits` make, in order, each by the client of session `i`;
/// every client applies every update, as if the hub had relayed it, so
/// later edits build on each other's content.
pub fn updates(edits: &[(usize, Payload)]) -> Vec<Vec<u8>> {
    panics::install();
    let mut clients: Vec<Client> = (0..SESSIONS).map(Client::new).collect();
    let mut out = Vec::with_capacity(edits.len());
    for (i, payload) in edits {
        let update = clients[i % SESSIONS].payload(payload);
        for c in &mut clients {
            c.receive_update(&update);
        }
        out.push(update);
    }
    out
}
