//! Which passwords an account may have: long enough, not absurdly long, and
//! not guessable. Strength is zxcvbn's estimate (dictionaries of common
//! passwords, names and words, keyboard patterns, dates, l33t substitutions,
//! and the account's own email and name), refused below [`MIN_SCORE`] with
//! zxcvbn's own advice, so that the person knows what to change.
//!
//! Used wherever a password is set: sign-up and `quire user add` (through
//! `auth_api::create_account`). Sign-in never judges a password: an account
//! made before this check existed must still be able to sign in.

use crate::error::ApiError;

const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_BYTES: usize = 1024;

/// zxcvbn's score 3: "safely unguessable", more than 10^8 guesses. Below it
/// (10^8 guesses and fewer) the crate itself calls a password too weak; an
/// attacker with a leaked hash database gets there in hours even against
/// Argon2.
const MIN_SCORE: u8 = 3;

/// Refuses a password that is too short, too long, or too easy to guess,
/// with a message meant for the person choosing it. `user_inputs` (the
/// email, the name) count as known to an attacker.
pub fn check(password: &str, user_inputs: &[&str]) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::BadRequest(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    // zxcvbn only looks at the first 100 characters (its own bound on the
    // work a password can cause), so a long password is judged by its start.
    let estimate = zxcvbn::zxcvbn(password, user_inputs);
    if u8::from(estimate.score()) >= MIN_SCORE {
        return Ok(());
    }
    let mut message = String::from("This password is too easy to guess.");
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            message.push(' ');
            message.push_str(&warning.to_string());
        }
        for suggestion in feedback.suggestions() {
            message.push(' ');
            message.push_str(&suggestion.to_string());
        }
    }
    if estimate
        .feedback()
        .is_none_or(|f| f.suggestions().is_empty())
    {
        message.push_str(" Add another word or two; uncommon words are better.");
    }
    Err(ApiError::BadRequest(message))
}

#[cfg(test)]
mod tests {
    use super::check;

    fn refusal(password: &str, inputs: &[&str]) -> String {
        match check(password, inputs) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("{password:?} was accepted"),
        }
    }

    #[test]
    fn common_and_personal_passwords_are_refused_with_advice() {
        let m = refusal("password", &[]);
        assert!(m.contains("too easy to guess"), "{m}");
        assert!(m.contains("top-10 common password"), "{m}");
        assert!(m.contains("Add another word"), "{m}");
        for weak in [
            "Password123!",
            "whatever1",
            "qwertyuiop",
            "11111111",
            "abcdefgh",
        ] {
            refusal(weak, &[]);
        }
        // Strong-looking, but made of the account's own name and email.
        refusal("ada@example.com", &["ada@example.com", "Ada Lovelace"]);
        refusal("adalovelace", &["ada@example.com", "Ada Lovelace"]);
        assert!(refusal("short", &[]).contains("at least 8"));
        assert!(refusal(&"x".repeat(1025), &[]).contains("at least 8"));
    }

    /// The passwords the test suites and the load generator sign up with
    /// (crates/server/tests/common, web/e2e/harness.mjs, interop helpers,
    /// bench/peers.sh and the bench tests), with the accounts' email and
    /// name: changing the rule must not break them unnoticed.
    #[test]
    fn the_suites_passwords_are_strong_enough() {
        for (password, email, name) in [
            ("correct horse battery staple", "owner@quire.test", "Owner"),
            ("correct horse battery staple", "bob@x.test", "Bob"),
            ("e2e password 1", "host@e2e.test", "E2E host"),
            ("interop password 1", "alice@interop.test", "alice"),
            ("bench-password", "bench@example.test", "bench"),
            ("bench-password", "bench@quire.test", "bench"),
        ] {
            check(password, &[email, name])
                .unwrap_or_else(|e| panic!("{password:?} for {email}: {e}"));
        }
    }
}
