//! The people of `/demo`, the mock app on the embedded demo catalog, and the
//! part of an application backend it stands in for: it issues each of them
//! a customer token, as a real backend would for its signed-in user.
//!
//! The page sends each persona's attributes with an `identify` event over
//! grpc-web, so their profiles are whatever the page made them, like any
//! customer's.

use nudge_models::time::{Span, Timestamp};
use serde_json::{Value, json};

/// How long a demo token lives: a real backend issues short-lived tokens
/// and a fresh one when the page asks again.
pub const TOKEN_LIFETIME: Span = Span(15 * 60_000);

/// One person the demo can sign in as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persona {
    /// The customer id.
    pub id: &'static str,
    /// The name shown in the picker.
    pub name: &'static str,
    /// Who they are, in a few words.
    pub summary: &'static str,
    /// The plan attribute.
    pub plan: &'static str,
    /// Days since they signed up.
    pub days_since_signup: i64,
    /// Their company, shown in the app's header.
    pub company: &'static str,
}

/// The demo's personas.
pub const PERSONAS: [Persona; 4] = [
    Persona {
        id: "demo-ada",
        name: "Ada",
        summary: "Trial, day 2: nothing connected yet",
        plan: "trial",
        days_since_signup: 2,
        company: "Northwind Traders",
    },
    Persona {
        id: "demo-grace",
        name: "Grace",
        summary: "Trial, day 10: deciding whether to buy",
        plan: "trial",
        days_since_signup: 10,
        company: "Contoso Freight",
    },
    Persona {
        id: "demo-linus",
        name: "Linus",
        summary: "Starter plan customer for four months",
        plan: "starter",
        days_since_signup: 120,
        company: "Fabrikam Studio",
    },
    Persona {
        id: "demo-margaret",
        name: "Margaret",
        summary: "Pro plan customer for a year",
        plan: "pro",
        days_since_signup: 365,
        company: "Tailspin Health",
    },
];

/// The persona with customer id `id`.
pub fn persona(id: &str) -> Option<&'static Persona> {
    PERSONAS.iter().find(|persona| persona.id == id)
}

/// The `/demo/personas` document at `now` (signup dates from the service
/// clock, so rules on `days_since_signup` see what the summary says).
pub fn personas(now: Timestamp) -> Value {
    let personas: Vec<Value> = PERSONAS
        .iter()
        .map(|persona| {
            let signup = now.plus(Span(-persona.days_since_signup * 86_400_000));
            json!({
                "id": persona.id,
                "name": persona.name,
                "summary": persona.summary,
                "company": persona.company,
                "attributes": {
                    "plan": persona.plan,
                    "signup_at": rfc3339(signup),
                    "company": persona.company,
                },
            })
        })
        .collect();
    json!({ "personas": personas })
}

/// `at` as RFC 3339 UTC at whole seconds.
fn rfc3339(at: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(at.0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personas_sign_up_relative_to_the_service_clock() {
        let now = Timestamp(1_795_435_200_000); // 2026-11-23 12:00 UTC
        let document = personas(now);
        let ada = &document["personas"][0];
        assert_eq!(ada["id"], "demo-ada");
        assert_eq!(ada["attributes"]["plan"], "trial");
        assert_eq!(ada["attributes"]["signup_at"], "2026-11-21T12:00:00Z");
        assert_eq!(persona("demo-linus").map(|p| p.plan), Some("starter"));
        assert_eq!(persona("someone-else"), None);
    }
}
