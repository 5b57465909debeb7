//! What a [`Rig`](super::Rig) run does: which session sends which frame.
//!
//! Every byte string decodes to a script, so the fuzzer's mutations always
//! mean something; and a script encodes to bytes that decode back to it, so
//! the seed corpus is written as scripts (`fuzz_seeds`). Frames are well-formed
//! messages around generated or fuzzed payloads, or raw bytes: the fuzzer gets
//! past the outer decode without having to discover lib0.
//!
//! Payloads a real client cannot build (values nested 10,000 deep, 20,000
//! nested maps, client ids above 2^53 − 1) are written byte by byte: they are
//! described by a few numbers here, so a script stays small while its frames
//! are large.

use quire_protocol::{write_var_bytes, write_var_uint};

/// Sessions a script drives besides the probe: see [`Role`].
pub const SESSIONS: usize = 3;

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A writer that opted in to durable acks.
    DurableWriter,
    /// A writer without acks, as a stock y-websocket client.
    Writer,
    /// A viewer: every update it sends is refused.
    Reader,
}

/// Session `i` of a script has role `ROLES[i]`.
pub const ROLES: [Role; SESSIONS] = [Role::DurableWriter, Role::Writer, Role::Reader];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Index into [`ROLES`].
    pub session: usize,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// These bytes as one frame.
    Raw(Vec<u8>),
    /// Sync step 1 with the state vector of the session's own document.
    Step1Own,
    /// Sync step 1 carrying these bytes as its state vector.
    Step1Raw(Vec<u8>),
    /// A sync update message.
    Update(Payload),
    /// A sync step 2 message.
    Step2(Payload),
    /// A well-formed awareness update.
    Awareness(Vec<Presence>),
    /// An awareness message carrying these bytes as its update.
    AwarenessRaw(Vec<u8>),
    QueryAwareness,
    /// The session leaves and joins again; its client keeps its document.
    Reconnect,
}

/// The update inside a sync message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Raw(Vec<u8>),
    Edit(Edit),
    /// An edit whose encoded bytes are then altered: each `(at, xor)` flips
    /// bits of the byte at `at` modulo the length.
    Mutated(Edit, Vec<(u32, u8)>),
    /// Everything the session's client holds, as a client re-sends it after
    /// a reconnect.
    OwnState,
}

/// A change to the session's document. The first group is made by the
/// session's own yrs document (positions are taken modulo what it holds), the
/// second is written byte by byte by an arbitrary client id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Into the root text "text".
    InsertText {
        index: u32,
        text: String,
    },
    DeleteText {
        index: u32,
        len: u32,
    },
    /// Bold on or off over a range of the text.
    Format {
        index: u32,
        len: u32,
        bold: bool,
    },
    /// A paragraph holding `text` at the end of the XML fragment "default".
    Paragraph {
        text: String,
    },
    /// `key` = `value` in the root map "m".
    SetKey {
        key: String,
        value: i64,
    },
    /// A new `Y.Map` at `key` in the root map "m".
    InsertMap {
        key: String,
    },
    /// A value of `depth` arrays nested in each other appended to the root
    /// array "a" (yrs builds it, so keep it shallow: see the cap in decode).
    NestedValue {
        depth: u32,
    },
    /// `count` integers appended to the root array "a".
    Numbers {
        count: u32,
    },
    DeleteRange {
        index: u32,
        len: u32,
    },

    /// `count` `Y.Map`s of `client`, clocks `from..from + count`, each under
    /// key "k" of the one before (clock 0 in the root map "m").
    NestedMaps {
        client: u64,
        from: u32,
        count: u32,
    },
    /// A delete set removing `len` clocks of `client` from `clock` (clock 0
    /// of a [`Edit::NestedMaps`] chain is its outermost map).
    Delete {
        client: u64,
        clock: u32,
        len: u32,
    },
    /// One `Any` value of `depth` arrays nested around a null, by `client`
    /// at clock 0, in the root array "a" (issue 12: 10,000 deep).
    NestedAny {
        client: u64,
        depth: u32,
    },
    /// `count` nulls by `client` at clock 0 in the root array "a".
    Nulls {
        client: u64,
        count: u32,
    },
    /// "a" inserted into the root text "text" by `client` at clock 0.
    InsertBy {
        client: u64,
    },
    /// A weak link (a yrs-only shared type) by `client` at clock 0.
    WeakLink {
        client: u64,
    },
    /// A sub-document by `client` at clock 0.
    Subdocument {
        client: u64,
    },
}

/// One entry of a well-formed awareness update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub client: ClientRef,
    pub clock: u64,
    pub state: State,
}

/// Whose client id an awareness entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRef {
    /// The sending session's own client id.
    Own,
    /// Session `i`'s client id (spoofing, unless `i` is the sender).
    Session(usize),
    Id(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// `{"user":{"name":…,"color":…}}`
    User { name: String, color: String },
    /// `null`: the client went away.
    Removed,
    /// Any text, JSON or not.
    Text(String),
    /// A JSON string of `len` characters: past the size limit when large.
    Padding { len: u32 },
}

/// Bounds applied when decoding fuzzer input, so that one input cannot ask
/// for minutes of work; each is above the issue 12 payload it covers.
pub mod caps {
    /// yrs encodes and drops values recursively: kept well within a 2 MiB stack.
    pub const NESTED_VALUE: u32 = 300;
    pub const NUMBERS: u32 = 100_000;
    pub const NESTED_MAPS: u32 = 20_000;
    pub const NESTED_ANY: u32 = 10_000;
    pub const NULLS: u32 = 8_000_000;
    pub const PADDING: u32 = 64 * 1024;
    pub const BYTES: usize = 64 * 1024;
    pub const FLIPS: u64 = 16;
    pub const PRESENCES: u64 = 16;
}

// Tags of the encoding; decode takes them modulo their count.
const ACTIONS: u8 = 9;
const PAYLOADS: u8 = 4;
const EDITS: u8 = 16;
const CLIENT_REFS: u8 = 3;
const STATES: u8 = 4;

impl Script {
    /// The script `bytes` describe. Total: every input is some script.
    pub fn decode(bytes: &[u8]) -> Script {
        let mut r = Input(bytes);
        let mut steps = Vec::new();
        while let Some(session) = r.byte() {
            let Some(tag) = r.byte() else { break };
            let action = match tag % ACTIONS {
                0 => Action::Raw(r.bytes()),
                1 => Action::Step1Own,
                2 => Action::Step1Raw(r.bytes()),
                3 => Action::Update(r.payload()),
                4 => Action::Step2(r.payload()),
                5 => Action::Awareness(
                    (0..r.var().min(caps::PRESENCES))
                        .map(|_| r.presence())
                        .collect(),
                ),
                6 => Action::AwarenessRaw(r.bytes()),
                7 => Action::QueryAwareness,
                _ => Action::Reconnect,
            };
            steps.push(Step {
                session: usize::from(session) % SESSIONS,
                action,
            });
        }
        Script { steps }
    }

    /// Bytes that [`decode`](Self::decode) to this script (when its numbers
    /// are within [`caps`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Output(Vec::new());
        for step in &self.steps {
            w.0.push(step.session as u8);
            match &step.action {
                Action::Raw(b) => w.tag(0).bytes(b),
                Action::Step1Own => w.tag(1),
                Action::Step1Raw(b) => w.tag(2).bytes(b),
                Action::Update(p) => w.tag(3).payload(p),
                Action::Step2(p) => w.tag(4).payload(p),
                Action::Awareness(entries) => {
                    w.tag(5).var(entries.len() as u64);
                    for e in entries {
                        w.presence(e);
                    }
                    &mut w
                }
                Action::AwarenessRaw(b) => w.tag(6).bytes(b),
                Action::QueryAwareness => w.tag(7),
                Action::Reconnect => w.tag(8),
            };
        }
        w.0
    }
}

/// Fuzzer input, read leniently: past its end every number is 0 and every
/// string empty.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// A lib0 (LEB128) unsigned integer; bits past 64 are dropped.
    fn var(&mut self) -> u64 {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(b) = self.byte() else { break };
            if shift < 64 {
                v |= u64::from(b & 0x7f) << shift;
            }
            if b & 0x80 == 0 {
                break;
            }
        }
        v
    }

    fn u32(&mut self, cap: u32) -> u32 {
        self.var().min(u64::from(cap)) as u32
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = (self.var() as usize).min(caps::BYTES).min(self.0.len());
        let (b, rest) = self.0.split_at(len);
        self.0 = rest;
        b.to_vec()
    }

    fn string(&mut self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    fn payload(&mut self) -> Payload {
        match self.byte().unwrap_or(0) % PAYLOADS {
            0 => Payload::Raw(self.bytes()),
            1 => Payload::Edit(self.edit()),
            2 => {
                let edit = self.edit();
                let flips = (0..self.var().min(caps::FLIPS))
                    .map(|_| (self.u32(u32::MAX), self.byte().unwrap_or(0)))
                    .collect();
                Payload::Mutated(edit, flips)
            }
            _ => Payload::OwnState,
        }
    }

    fn edit(&mut self) -> Edit {
        let max = u32::MAX;
        match self.byte().unwrap_or(0) % EDITS {
            0 => Edit::InsertText {
                index: self.u32(max),
                text: self.string(),
            },
            1 => Edit::DeleteText {
                index: self.u32(max),
                len: self.u32(max),
            },
            2 => Edit::Format {
                index: self.u32(max),
                len: self.u32(max),
                bold: self.byte().unwrap_or(0) % 2 == 1,
            },
            3 => Edit::Paragraph {
                text: self.string(),
            },
            4 => Edit::SetKey {
                key: self.string(),
                value: self.var() as i64,
            },
            5 => Edit::InsertMap { key: self.string() },
            6 => Edit::NestedValue {
                depth: self.u32(caps::NESTED_VALUE),
            },
            7 => Edit::Numbers {
                count: self.u32(caps::NUMBERS),
            },
            8 => Edit::DeleteRange {
                index: self.u32(max),
                len: self.u32(max),
            },
            9 => Edit::NestedMaps {
                client: self.var(),
                from: self.u32(max),
                count: self.u32(caps::NESTED_MAPS),
            },
            10 => Edit::Delete {
                client: self.var(),
                clock: self.u32(max),
                len: self.u32(max),
            },
            11 => Edit::NestedAny {
                client: self.var(),
                depth: self.u32(caps::NESTED_ANY),
            },
            12 => Edit::Nulls {
                client: self.var(),
                count: self.u32(caps::NULLS),
            },
            13 => Edit::InsertBy { client: self.var() },
            14 => Edit::WeakLink { client: self.var() },
            _ => Edit::Subdocument { client: self.var() },
        }
    }

    fn presence(&mut self) -> Presence {
        let client = match self.byte().unwrap_or(0) % CLIENT_REFS {
            0 => ClientRef::Own,
            1 => ClientRef::Session(usize::from(self.byte().unwrap_or(0)) % SESSIONS),
            _ => ClientRef::Id(self.var()),
        };
        let clock = self.var();
        let state = match self.byte().unwrap_or(0) % STATES {
            0 => State::User {
                name: self.string(),
                color: self.string(),
            },
            1 => State::Removed,
            2 => State::Text(self.string()),
            _ => State::Padding {
                len: self.u32(caps::PADDING),
            },
        };
        Presence {
            client,
            clock,
            state,
        }
    }
}

struct Output(Vec<u8>);

impl Output {
    fn tag(&mut self, tag: u8) -> &mut Self {
        self.0.push(tag);
        self
    }

    fn var(&mut self, v: u64) -> &mut Self {
        write_var_uint(&mut self.0, v);
        self
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        write_var_bytes(&mut self.0, b);
        self
    }

    fn payload(&mut self, p: &Payload) -> &mut Self {
        match p {
            Payload::Raw(b) => self.tag(0).bytes(b),
            Payload::Edit(e) => self.tag(1).edit(e),
            Payload::Mutated(e, flips) => {
                self.tag(2).edit(e).var(flips.len() as u64);
                for &(at, xor) in flips {
                    self.var(u64::from(at)).tag(xor);
                }
                self
            }
            Payload::OwnState => self.tag(3),
        }
    }

    fn edit(&mut self, e: &Edit) -> &mut Self {
        let v = u64::from;
        match e {
            Edit::InsertText { index, text } => self.tag(0).var(v(*index)).bytes(text.as_bytes()),
            Edit::DeleteText { index, len } => self.tag(1).var(v(*index)).var(v(*len)),
            Edit::Format { index, len, bold } => {
                self.tag(2).var(v(*index)).var(v(*len)).tag(u8::from(*bold))
            }
            Edit::Paragraph { text } => self.tag(3).bytes(text.as_bytes()),
            Edit::SetKey { key, value } => self.tag(4).bytes(key.as_bytes()).var(*value as u64),
            Edit::InsertMap { key } => self.tag(5).bytes(key.as_bytes()),
            Edit::NestedValue { depth } => self.tag(6).var(v(*depth)),
            Edit::Numbers { count } => self.tag(7).var(v(*count)),
            Edit::DeleteRange { index, len } => self.tag(8).var(v(*index)).var(v(*len)),
            Edit::NestedMaps {
                client,
                from,
                count,
            } => self.tag(9).var(*client).var(v(*from)).var(v(*count)),
            Edit::Delete { client, clock, len } => {
                self.tag(10).var(*client).var(v(*clock)).var(v(*len))
            }
            Edit::NestedAny { client, depth } => self.tag(11).var(*client).var(v(*depth)),
            Edit::Nulls { client, count } => self.tag(12).var(*client).var(v(*count)),
            Edit::InsertBy { client } => self.tag(13).var(*client),
            Edit::WeakLink { client } => self.tag(14).var(*client),
            Edit::Subdocument { client } => self.tag(15).var(*client),
        }
    }

    fn presence(&mut self, p: &Presence) -> &mut Self {
        match p.client {
            ClientRef::Own => self.tag(0),
            ClientRef::Session(i) => self.tag(1).tag(i as u8),
            ClientRef::Id(id) => self.tag(2).var(id),
        };
        self.var(p.clock);
        match &p.state {
            State::User { name, color } => {
                self.tag(0).bytes(name.as_bytes()).bytes(color.as_bytes())
            }
            State::Removed => self.tag(1),
            State::Text(t) => self.tag(2).bytes(t.as_bytes()),
            State::Padding { len } => self.tag(3).var(u64::from(*len)),
        }
    }
}
