//! Hostile input on stable Rust: the invariants of the fuzz targets in
//! `fuzz/` (see `quire_hub::harness` and docs/fuzzing.md), checked on
//! generated inputs, on every seed (issue 12's payloads at full size), and
//! on every input of the committed corpus, which holds whatever the fuzzer
//! found.

use std::path::PathBuf;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::Config;
use quire_hub::harness::{
    Action, ClientRef, Edit, Payload, Presence, Rig, SESSIONS, Script, State, Step, Target,
    Violation, check_awareness, check_message, check_updates, join, seeds, updates,
};
use quire_protocol::{
    MAX_CLIENT_ID, encode_awareness, encode_awareness_update, encode_sync_step1, encode_sync_step2,
    encode_update,
};

/// One hub for every case of this process, as the fuzz target has.
fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(Rig::new)
}

fn check(target: Target, input: &[u8]) -> Result<(), Violation> {
    match target {
        Target::ProtocolMessage => check_message(input),
        Target::Awareness => check_awareness(input),
        Target::UpdateScan => check_updates(input),
        Target::HubSessions => rig().run(&Script::decode(input)),
    }
}

#[test]
fn every_seed_holds_including_issue_12s_payloads_at_full_size() {
    for seed in seeds() {
        if let Err(v) = check(seed.target, &seed.input) {
            panic!("{}/{}: {v}", seed.target.name(), seed.name);
        }
    }
}

#[test]
fn every_committed_corpus_input_holds() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for target in Target::ALL {
        let dir = root.join(target.name());
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("a corpus entry").path())
            .collect::<Vec<_>>();
        assert!(!entries.is_empty(), "{} is empty", dir.display());
        for path in entries {
            let input = std::fs::read(&path).expect("a corpus file");
            if let Err(v) = check(target, &input) {
                panic!("{}: {v}", path.display());
            }
        }
    }
}

#[test]
fn the_committed_seeds_are_current() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for seed in seeds().into_iter().filter(|s| s.committed()) {
        let path = root.join(seed.target.name()).join(seed.name);
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == seed.input,
            "{} is missing or stale: cargo run -p quire-hub --features harness --example fuzz_seeds -- fuzz/corpus",
            path.display()
        );
    }
}

fn client() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 1u64..8,
        1 => Just(MAX_CLIENT_ID),
        1 => Just(MAX_CLIENT_ID + 1),
        1 => any::<u64>(),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    let index = any::<u32>;
    prop_oneof![
        4 => (index(), "[a-zé😀 ]{0,8}").prop_map(|(index, text)| Edit::InsertText { index, text }),
        2 => (index(), 0u32..8).prop_map(|(index, len)| Edit::DeleteText { index, len }),
        1 => (index(), 0u32..8, any::<bool>())
            .prop_map(|(index, len, bold)| Edit::Format { index, len, bold }),
        2 => "[a-z]{0,6}".prop_map(|text| Edit::Paragraph { text }),
        1 => ("[a-z]{0,3}", any::<i64>()).prop_map(|(key, value)| Edit::SetKey { key, value }),
        1 => "[a-z]{0,3}".prop_map(|key| Edit::InsertMap { key }),
        1 => (250u32..=260).prop_map(|depth| Edit::NestedValue { depth }),
        1 => (0u32..64).prop_map(|count| Edit::Numbers { count }),
        1 => (index(), 0u32..8).prop_map(|(index, len)| Edit::DeleteRange { index, len }),
        2 => (client(), 0u32..260, 1u32..260)
            .prop_map(|(client, from, count)| Edit::NestedMaps { client, from, count }),
        2 => (client(), 0u32..260, 0u32..4)
            .prop_map(|(client, clock, len)| Edit::Delete { client, clock, len }),
        1 => (client(), 250u32..260).prop_map(|(client, depth)| Edit::NestedAny { client, depth }),
        1 => (client(), 0u32..1000).prop_map(|(client, count)| Edit::Nulls { client, count }),
        1 => client().prop_map(|client| Edit::InsertBy { client }),
        1 => client().prop_map(|client| Edit::WeakLink { client }),
        1 => client().prop_map(|client| Edit::Subdocument { client }),
    ]
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        6 => edit().prop_map(Payload::Edit),
        2 => (edit(), prop::collection::vec((any::<u32>(), 1u8..), 1..4))
            .prop_map(|(e, flips)| Payload::Mutated(e, flips)),
        1 => prop::collection::vec(any::<u8>(), 0..32).prop_map(Payload::Raw),
        1 => Just(Payload::OwnState),
    ]
}

fn state() -> impl Strategy<Value = State> {
    prop_oneof![
        ("[A-Za-z ()]{0,12}", "#[0-9a-f]{6}").prop_map(|(name, color)| State::User { name, color }),
        Just(State::Removed),
        prop_oneof![
            Just("not json".to_owned()),
            Just("[1,2]".to_owned()),
            Just("{\"user\":".to_owned()),
            ".{0,8}",
        ]
        .prop_map(State::Text),
        (0u32..20_000).prop_map(|len| State::Padding { len }),
    ]
}

fn presence() -> impl Strategy<Value = Presence> {
    let who = prop_oneof![
        3 => Just(ClientRef::Own),
        2 => (0..SESSIONS).prop_map(ClientRef::Session),
        1 => client().prop_map(ClientRef::Id),
    ];
    (who, 0u64..4, state()).prop_map(|(client, clock, state)| Presence {
        client,
        clock,
        state,
    })
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        1 => bytes(16).prop_map(Action::Raw),
        2 => Just(Action::Step1Own),
        1 => bytes(16).prop_map(Action::Step1Raw),
        8 => payload().prop_map(Action::Update),
        3 => payload().prop_map(Action::Step2),
        2 => prop::collection::vec(presence(), 0..3).prop_map(Action::Awareness),
        1 => bytes(16).prop_map(Action::AwarenessRaw),
        1 => Just(Action::QueryAwareness),
        1 => Just(Action::Reconnect),
    ]
}

fn script() -> impl Strategy<Value = Script> {
    prop::collection::vec(
        (0..SESSIONS, action()).prop_map(|(session, action)| Step { session, action }),
        0..24,
    )
    .prop_map(|steps| Script { steps })
}

/// A frame of any kind around `payload`, whole or cut short, or any bytes.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    let payload = || bytes(24);
    let whole = prop_oneof![
        payload().prop_map(|p| encode_sync_step1(&p).to_vec()),
        payload().prop_map(|p| encode_sync_step2(&p).to_vec()),
        payload().prop_map(|p| encode_update(&p).to_vec()),
        payload().prop_map(|p| encode_awareness(&p).to_vec()),
        bytes(24),
    ];
    (whole, any::<prop::sample::Index>()).prop_map(|(f, cut)| {
        let keep = if f.is_empty() {
            0
        } else {
            cut.index(f.len() + 1)
        };
        if keep == f.len() {
            f
        } else {
            f[..keep].to_vec()
        }
    })
}

/// Awareness updates from two sessions: well-formed ones (spoofed,
/// oversized, not JSON, huge client ids) and any bytes.
fn awareness_parts() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let entry = (
        prop_oneof![4 => 0u64..6, 1 => Just(MAX_CLIENT_ID + 1), 1 => any::<u64>()],
        0u64..4,
        prop_oneof![
            Just("null".to_owned()),
            Just("{}".to_owned()),
            Just("not json".to_owned()),
            "[a-z\"{}:,]{0,80}",
        ],
    );
    let update = prop_oneof![
        4 => prop::collection::vec(entry, 0..6).prop_map(|entries| {
            encode_awareness_update(entries.iter().map(|(c, k, s)| (*c, *k, s.as_str())))
        }),
        1 => bytes(24),
    ];
    prop::collection::vec(update, 0..8)
}

proptest! {
    #![proptest_config(Config { cases: 256, ..Config::default() })]

    #[test]
    fn hostile_frame_sequences_break_no_invariant_of_the_hub(script in script()) {
        prop_assert_eq!(Script::decode(&script.encode()), script.clone());
        if let Err(v) = rig().run(&script) {
            return Err(TestCaseError::fail(format!("{v}")));
        }
    }
}

proptest! {
    #![proptest_config(Config { cases: 256, ..Config::default() })]

    #[test]
    fn update_sequences_break_no_invariant_of_the_content_path(
        edits in prop::collection::vec((0..SESSIONS, payload()), 0..16),
        swaps in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..3),
    ) {
        let mut updates = updates(&edits);
        if !updates.is_empty() {
            // Out of order, as between nodes: some updates must wait.
            for (a, b) in swaps {
                let n = updates.len();
                updates.swap(a.index(n), b.index(n));
            }
        }
        if let Err(v) = check_updates(&join(&updates)) {
            return Err(TestCaseError::fail(format!("{v}")));
        }
    }

    #[test]
    fn awareness_from_two_sessions_breaks_no_invariant(parts in awareness_parts()) {
        if let Err(v) = check_awareness(&join(&parts)) {
            return Err(TestCaseError::fail(format!("{v}")));
        }
    }

    #[test]
    fn frames_decode_and_re_encode_or_are_refused(frame in frame()) {
        if let Err(v) = check_message(&frame) {
            return Err(TestCaseError::fail(format!("{v}")));
        }
    }
}
