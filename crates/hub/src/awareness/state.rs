//! What an awareness state may be: one JSON object (y-protocols' removal,
//! `null`, aside), nested at most [`MAX_STATE_DEPTH`] deep, and, from a
//! session with an account, one whose `user` field is exactly the account's.
//!
//! Cost: awareness is sent on every caret move, so a state is parsed once,
//! into its top-level fields with their values as raw JSON slices (serde_json
//! validates them without recursing), and a state whose `user` already is
//! the account's, byte for byte (what the web app sends), is kept as
//! received, without a copy.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use quire_types::UserId;

use crate::Identity;

/// Deepest nesting of arrays and objects accepted in a state: serde_json's
/// own recursion limit. y-tiptap's caret state is 4 deep; a deeper state
/// only costs the clients that compare it (y-protocols' `equalityDeep`
/// recurses).
const MAX_STATE_DEPTH: usize = 128;

/// `{"id","name","color"}` of an account, in that order (the order the web
/// app writes, so that its states pass unchanged).
pub(super) fn user_json(identity: &Identity) -> Box<str> {
    let mut out = String::from("{\"id\":");
    push_json_string(&mut out, identity.user.as_str());
    out.push_str(",\"name\":");
    push_json_string(&mut out, &identity.name);
    out.push_str(",\"color\":");
    push_json_string(&mut out, &identity.color);
    out.push('}');
    out.into_boxed_str()
}

fn push_json_string(out: &mut String, s: &str) {
    // `Value`'s `Display` escapes as serde_json does, and cannot fail.
    out.push_str(&serde_json::Value::from(s).to_string());
}

/// A session's state as it may be relayed: `None` if refused (not a JSON
/// object, or nested too deep). With an account's `user` JSON, the state's
/// `user` field becomes exactly that; the state is borrowed as sent when it
/// already is.
pub(super) fn bind<'s>(state: &'s str, user: Option<&str>) -> Option<Cow<'s, str>> {
    if state == "null" {
        return Some(Cow::Borrowed(state));
    }
    let Some(user) = user else {
        return is_object(state).then_some(Cow::Borrowed(state));
    };
    if !depth_within(state, MAX_STATE_DEPTH) {
        return None;
    }
    let fields = parse_fields(state)?;
    let mut users = fields.iter().filter(|(k, _)| k == "user");
    if let (Some((_, v)), None) = (users.next(), users.next())
        && v.get() == user
    {
        return Some(Cow::Borrowed(state));
    }
    let mut out = String::with_capacity(state.len() + user.len() + 9);
    out.push_str("{\"user\":");
    out.push_str(user);
    for (key, value) in fields.iter().filter(|(k, _)| k != "user") {
        out.push(',');
        match key {
            // Taken from the input with no escape in it: valid as it stands.
            Cow::Borrowed(k) => {
                out.push('"');
                out.push_str(k);
                out.push('"');
            }
            Cow::Owned(k) => push_json_string(&mut out, k),
        }
        out.push(':');
        out.push_str(value.get());
    }
    out.push('}');
    Some(Cow::Owned(out))
}

/// Whether `state` is one JSON object, nested no deeper than the limit.
pub(super) fn is_object(state: &str) -> bool {
    if !depth_within(state, MAX_STATE_DEPTH) {
        return false;
    }
    let mut de = serde_json::Deserializer::from_str(state);
    de.deserialize_map(ObjectCheck).is_ok() && de.end().is_ok()
}

/// For a state another node bound: `None` if it is not one JSON object
/// (nested no deeper than the limit), else the account id its `user` names.
pub(super) fn account(state: &str) -> Option<Option<UserId>> {
    if !depth_within(state, MAX_STATE_DEPTH) {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(state);
    let account = de.deserialize_map(AccountVisitor).ok()?;
    de.end().ok()?;
    Some(account)
}

struct AccountVisitor;

impl<'de> Visitor<'de> for AccountVisitor {
    type Value = Option<UserId>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<UserId>, A::Error> {
        #[derive(serde::Deserialize)]
        struct User {
            id: Option<UserId>,
        }
        let mut account = None;
        while let Some(Key(key)) = map.next_key()? {
            if key == "user" {
                // The last one counts, as in `JSON.parse`.
                let user: &RawValue = map.next_value()?;
                account = serde_json::from_str::<User>(user.get())
                    .ok()
                    .and_then(|u| u.id);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(account)
    }
}

/// The top-level fields of a JSON object, values as raw JSON; `None` if
/// `state` is not one object.
type Fields<'s> = Vec<(Cow<'s, str>, &'s RawValue)>;

fn parse_fields(state: &str) -> Option<Fields<'_>> {
    let mut de = serde_json::Deserializer::from_str(state);
    let fields = de.deserialize_map(FieldsVisitor).ok()?;
    de.end().ok()?;
    Some(fields)
}

struct ObjectCheck;

impl<'de> Visitor<'de> for ObjectCheck {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some(Key(k)) = map.next_key()? {
            fields.push((k, map.next_value::<&RawValue>()?));
        }
        Ok(fields)
    }
}

/// A key borrowed from the input when it has no escapes (serde's own
/// `Cow<str>` always copies).
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Whether arrays and objects in `json` nest at most `max` deep. serde_json
/// skips nested values without recursion, so without this its recursion
/// limit would not reach them. Brackets inside strings do not count; text
/// that is not JSON is refused by the parse that follows.
fn depth_within(json: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use quire_types::UserId;
    use serde_json::{Value, json};

    use super::*;

    fn alice() -> Box<str> {
        user_json(&Identity {
            user: UserId("u-alice".into()),
            name: "Alice".into(),
            color: "#e6194b".into(),
        })
    }

    fn parsed(state: &str) -> Value {
        serde_json::from_str(state).unwrap()
    }

    #[test]
    fn the_account_replaces_any_user_and_the_other_fields_are_kept_as_sent() {
        let user = alice();
        let expected = json!({"id": "u-alice", "name": "Alice", "color": "#e6194b"});
        let spoof =
            r##"{"cursor":{"anchor":[1,{"y":null}]},"user":{"name":"Bob","id":"u-bob"},"n":1.50}"##;
        let bound = bind(spoof, Some(&user)).unwrap();
        assert!(matches!(bound, Cow::Owned(_)));
        assert_eq!(
            parsed(&bound),
            json!({"user": expected, "cursor": {"anchor": [1, {"y": null}]}, "n": 1.5})
        );
        assert!(bound.contains("1.50"), "values are copied as sent: {bound}");
        for (state, rest) in [
            ("{}", json!({})),
            (r#"{"user":null}"#, json!({})),
            (
                r##"{"user":1,"user":{"id":"u-alice","name":"Alice","color":"#e6194b"}}"##,
                json!({}),
            ),
            (r#"{"ke\u0079":"\"v\""}"#, json!({"key": "\"v\""})),
        ] {
            let mut want = rest;
            want["user"] = expected.clone();
            assert_eq!(parsed(&bind(state, Some(&user)).unwrap()), want, "{state}");
        }
    }

    #[test]
    fn a_state_already_naming_the_account_is_kept_without_a_copy() {
        let user = alice();
        let state = format!(r#"{{"user":{user},"cursor":null}}"#);
        assert!(matches!(bind(&state, Some(&user)), Some(Cow::Borrowed(_))));
        assert!(matches!(
            bind("null", Some(&user)),
            Some(Cow::Borrowed("null"))
        ));
    }

    #[test]
    fn anything_but_an_object_is_refused_with_or_without_an_account() {
        let user = alice();
        let deep = format!("{{\"x\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        for state in [
            "",
            "nul",
            "{",
            "[]",
            "\"s\"",
            "1",
            "true",
            "{} x",
            "{}{}",
            deep.as_str(),
        ] {
            assert!(bind(state, None).is_none(), "{state:?}");
            assert!(bind(state, Some(&user)).is_none(), "{state:?}");
            assert!(!is_object(state), "{state:?}");
        }
        assert!(matches!(bind(" {} ", None), Some(Cow::Borrowed(" {} "))));
    }

    #[test]
    fn names_with_escapes_make_valid_json() {
        let user = user_json(&Identity {
            user: UserId("u-q".into()),
            name: "Q \"the\" \\ tester\n\u{1}".into(),
            color: "#000075".into(),
        });
        let v: Value = serde_json::from_str(&user).unwrap();
        assert_eq!(v["name"], "Q \"the\" \\ tester\n\u{1}");
    }

    #[test]
    fn the_account_of_a_state_from_another_node_is_its_user_id() {
        let id = |s: &str| account(s).map(|a| a.map(|u| u.0));
        assert_eq!(
            id(r#"{"user":{"id":"u-bob","name":"Bob"},"x":[1]}"#),
            Some(Some("u-bob".into()))
        );
        assert_eq!(id(r#"{"user":{"name":"Bob"}}"#), Some(None));
        assert_eq!(id(r#"{"user":"u-bob"}"#), Some(None));
        assert_eq!(id("{}"), Some(None));
        assert_eq!(id("[]"), None);
        assert_eq!(id("{} x"), None);
    }

    #[test]
    fn nesting_depth_ignores_brackets_in_strings() {
        assert!(depth_within(r#"{"a":"[[[[\"[["}"#, 1));
        assert!(depth_within("[[]]", 2));
        assert!(!depth_within("[[[]]]", 2));
    }
}
