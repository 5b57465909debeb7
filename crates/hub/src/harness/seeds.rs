//! The seed inputs of every target: ordinary traffic, so the fuzzer starts
//! from inputs that get past the decoders, and issue 12's attacks. The small
//! ones are committed under `fuzz/corpus/<target>/` (written by
//! `cargo run -p quire-hub --features harness --example fuzz_seeds`); the
//! large ones (20,000 nested maps as as many updates, 8 MB of nulls as
//! bytes) are generated here and run by the property tests only.

use quire_protocol::{
    MAX_CLIENT_ID, encode_ack, encode_awareness, encode_awareness_update, encode_permission_denied,
    encode_sync_step1, encode_sync_step2, encode_update,
};
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, StateVector, Transact};

use super::checks::join;
use super::client::{deletion, insert_by, nested_any, nested_maps, nulls};
use super::script::{Action, ClientRef, Edit, Payload, Presence, Script, State, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    ProtocolMessage,
    Awareness,
    UpdateScan,
    HubSessions,
}

impl Target {
    pub const ALL: [Target; 4] = [
        Target::ProtocolMessage,
        Target::Awareness,
        Target::UpdateScan,
        Target::HubSessions,
    ];

    /// The fuzz target's name, and its corpus folder's.
    pub fn name(self) -> &'static str {
        match self {
            Target::ProtocolMessage => "protocol_message",
            Target::Awareness => "awareness",
            Target::UpdateScan => "update_scan",
            Target::HubSessions => "hub_sessions",
        }
    }
}

pub struct Seed {
    pub target: Target,
    pub name: &'static str,
    pub input: Vec<u8>,
}

impl Seed {
    /// Small enough to commit (the corpus stays a few hundred KB).
    pub fn committed(&self) -> bool {
        self.input.len() <= 32 * 1024
    }
}

/// Every seed, committed or generated.
pub fn seeds() -> Vec<Seed> {
    let edits = real_updates();
    let mut all = Vec::new();
    for (target, seeds) in [
        (Target::ProtocolMessage, frames(&edits)),
        (Target::Awareness, presences()),
        (Target::UpdateScan, update_sequences(&edits)),
        (Target::HubSessions, scripts()),
    ] {
        all.extend(seeds.into_iter().map(|(name, input)| Seed {
            target,
            name,
            input,
        }));
    }
    all
}

type Named = Vec<(&'static str, Vec<u8>)>;

/// One frame of each kind, and issue 12's 10,000-deep value as a frame.
fn frames(edits: &[Vec<u8>]) -> Named {
    vec![
        ("step1", encode_sync_step1(&[1, 42, 6]).to_vec()),
        ("step2", encode_sync_step2(&edits[0]).to_vec()),
        ("update", encode_update(&edits[1]).to_vec()),
        ("awareness", encode_awareness(&user(7, "Ada")).to_vec()),
        ("denied", encode_permission_denied("no").to_vec()),
        ("query_awareness", vec![3]),
        ("ack", encode_ack(1 << 40).to_vec()),
        (
            "nested_any_10000",
            encode_update(&nested_any(1, 10_000)).to_vec(),
        ),
    ]
}

/// Awareness updates from two sessions in turn.
fn presences() -> Named {
    let one = |state: &str| encode_awareness_update([(7, 1, state)].into_iter());
    let many: Vec<(u64, u64, &str)> = (0..10).map(|i| (i, 1, "{}")).collect();
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(100));
    vec![
        ("user", join(&[user(7, "Ada")])),
        ("not_json", join(&[one("not json"), one("{\"user\":")])),
        (
            "json_not_object",
            join(&[one("[1,2]"), one("\"Alice (owner)\"")]),
        ),
        ("spoof", join(&[user(7, "Alice"), user(7, "Alice (owner)")])),
        (
            "client_id_2_pow_53",
            join(&[user(MAX_CLIENT_ID, "max"), user(MAX_CLIENT_ID + 1, "over")]),
        ),
        ("removal", join(&[user(7, "Ada"), one("null")])),
        (
            "too_many_clients",
            join(&[encode_awareness_update(many.into_iter())]),
        ),
        ("oversized", join(&[one(&big)])),
    ]
}

/// Ordinary editing, then issue 12's attacks, as sequences of updates.
fn update_sequences(edits: &[Vec<u8>]) -> Named {
    let outermost = deletion(5, 0, 1);
    let many_maps = |count| {
        let mut parts: Vec<Vec<u8>> = (0..count).map(|i| nested_maps(5, i, 1)).collect();
        parts.push(outermost.clone());
        join(&parts)
    };
    vec![
        ("editing", join(edits)),
        ("out_of_order", join(&[&edits[1], &edits[0]])),
        ("nested_any_10000", join(&[nested_any(1, 10_000)])),
        (
            "nested_any_at_limit",
            join(&[nested_any(1, 255), nested_any(2, 256)]),
        ),
        ("nested_maps_300_as_one", join(&[nested_maps(5, 0, 300)])),
        ("nested_maps_300_as_many", many_maps(300)),
        (
            "nested_maps_20000_as_one",
            join(&[nested_maps(5, 0, 20_000), outermost.clone()]),
        ),
        ("nested_maps_20000_as_many", many_maps(20_000)),
        ("nulls_1000", join(&[nulls(9, 1000)])),
        ("nulls_8mb", join(&[nulls(9, 8_000_000)])),
        (
            "client_id_2_pow_53",
            join(&[
                insert_by(MAX_CLIENT_ID),
                insert_by(MAX_CLIENT_ID + 1),
                deletion(u64::MAX, 0, 1),
            ]),
        ),
        (
            "weak_link_and_subdocument",
            join(&[
                vec![1, 1, 1, 0, 7, 1, 1, b'a', 7, 0],
                vec![1, 1, 1, 0, 9, 1, 1, b'a', 0],
            ]),
        ),
    ]
}

const WRITER: usize = 0;
const PLAIN: usize = 1;
const VIEWER: usize = 2;

fn step(session: usize, action: Action) -> Step {
    Step { session, action }
}

fn update(session: usize, e: Edit) -> Step {
    step(session, Action::Update(Payload::Edit(e)))
}

fn step2(session: usize, e: Edit) -> Step {
    step(session, Action::Step2(Payload::Edit(e)))
}

fn says(session: usize, client: ClientRef, clock: u64, state: State) -> Step {
    let p = Presence {
        client,
        clock,
        state,
    };
    step(session, Action::Awareness(vec![p]))
}

fn maps(from: u32, count: u32) -> Edit {
    Edit::NestedMaps {
        client: 5,
        from,
        count,
    }
}

fn delete_outermost() -> Edit {
    Edit::Delete {
        client: 5,
        clock: 0,
        len: 1,
    }
}

/// Whole-hub scripts: an editing session, then issue 12's attacks.
fn scripts() -> Named {
    let text = |s: &str| s.to_owned();
    let named = |name: &str| State::User {
        name: name.to_owned(),
        color: "#30bced".to_owned(),
    };
    let deep = Edit::NestedAny {
        client: 77,
        depth: 10_000,
    };
    let nulls = |client, count| Edit::Nulls { client, count };
    let mut nested_one_by_one: Vec<Step> = (0..300).map(|i| update(PLAIN, maps(i, 1))).collect();
    nested_one_by_one.push(update(WRITER, delete_outermost()));
    let mut step1s = vec![update(WRITER, Edit::Numbers { count: 100_000 })];
    let empty_sv = StateVector::default().encode_v1();
    step1s.extend((0..200).map(|_| step(VIEWER, Action::Step1Raw(empty_sv.clone()))));
    vec![
        (
            "editing",
            script(vec![
                update(
                    WRITER,
                    Edit::InsertText {
                        index: 0,
                        text: text("hello wörld 😀"),
                    },
                ),
                step(PLAIN, Action::Step1Own),
                update(
                    PLAIN,
                    Edit::Format {
                        index: 1,
                        len: 4,
                        bold: true,
                    },
                ),
                step(VIEWER, Action::Step1Own),
                step(VIEWER, Action::Step2(Payload::OwnState)),
                update(WRITER, Edit::Paragraph { text: text("para") }),
                update(
                    PLAIN,
                    Edit::SetKey {
                        key: text("k"),
                        value: 3,
                    },
                ),
                update(WRITER, Edit::DeleteText { index: 2, len: 3 }),
                step(PLAIN, Action::Reconnect),
                step(PLAIN, Action::Step2(Payload::OwnState)),
                says(WRITER, ClientRef::Own, 1, named("Ada")),
                step(PLAIN, Action::QueryAwareness),
            ]),
        ),
        (
            "viewer_nested_any_10000",
            script(vec![
                update(VIEWER, deep.clone()),
                step2(VIEWER, deep.clone()),
            ]),
        ),
        (
            "writer_nested_any_10000",
            script(vec![update(WRITER, deep.clone()), step2(WRITER, deep)]),
        ),
        (
            "nested_maps_20000_as_one",
            script(vec![
                update(WRITER, maps(0, 20_000)),
                update(WRITER, delete_outermost()),
            ]),
        ),
        ("nested_maps_300_as_many", script(nested_one_by_one)),
        (
            "nulls_8mb",
            script(vec![
                update(WRITER, nulls(9, 8_000_000)),
                update(PLAIN, nulls(10, 1_000_000)),
                update(WRITER, nulls(11, 1_000_000)),
            ]),
        ),
        ("step1_200", script(step1s)),
        (
            // Found by the fuzzer: 2^29 entries declared in five bytes.
            "step1_state_vector_count",
            script(vec![step(
                VIEWER,
                Action::Step1Raw(vec![0x80, 0x80, 0x80, 0x80, 0x02]),
            )]),
        ),
        (
            "presence",
            script(vec![
                says(WRITER, ClientRef::Own, 1, named("Alice")),
                says(
                    VIEWER,
                    ClientRef::Session(WRITER),
                    2,
                    named("Alice (owner)"),
                ),
                says(VIEWER, ClientRef::Own, 1, State::Text(text("not json"))),
                says(PLAIN, ClientRef::Id(1 << 53), 1, State::Removed),
                says(PLAIN, ClientRef::Own, 2, State::Padding { len: 20_000 }),
                step(WRITER, Action::Reconnect),
            ]),
        ),
        (
            "client_ids_2_pow_53",
            script(vec![
                update(
                    WRITER,
                    Edit::InsertBy {
                        client: MAX_CLIENT_ID,
                    },
                ),
                update(
                    PLAIN,
                    Edit::InsertBy {
                        client: MAX_CLIENT_ID + 1,
                    },
                ),
                step2(VIEWER, Edit::InsertBy { client: u64::MAX }),
                step2(
                    WRITER,
                    Edit::Delete {
                        client: 1 << 60,
                        clock: 0,
                        len: 1,
                    },
                ),
            ]),
        ),
        (
            "weak_links_and_subdocuments",
            script(vec![
                update(WRITER, Edit::WeakLink { client: 3 }),
                step2(PLAIN, Edit::Subdocument { client: 4 }),
            ]),
        ),
        (
            "mangled",
            script(vec![
                step(WRITER, Action::Raw(vec![0, 0, 5, 1])),
                step(PLAIN, Action::Step1Raw(vec![0xff, 0xff])),
                step(VIEWER, Action::AwarenessRaw(vec![1, 7])),
                step(
                    PLAIN,
                    Action::Update(Payload::Mutated(
                        Edit::InsertText {
                            index: 0,
                            text: text("abc"),
                        },
                        vec![(5, 0x40)],
                    )),
                ),
            ]),
        ),
    ]
}

fn script(steps: Vec<Step>) -> Vec<u8> {
    Script { steps }.encode()
}

fn user(client: u64, name: &str) -> Vec<u8> {
    let state = serde_json::json!({ "user": { "name": name, "color": "#30bced" } }).to_string();
    encode_awareness_update([(client, 1, state.as_str())].into_iter())
}

/// Updates of an ordinary editing session, one per transaction, and the
/// whole state at the end.
fn real_updates() -> Vec<Vec<u8>> {
    let (doc, mut updates) = crate::fixtures::editing_session(42);
    updates.push(
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default()),
    );
    updates
}
