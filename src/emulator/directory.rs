//! The emulated account's users: a few named people, plus (optionally) every address at a
//! synthetic domain, so bulk runs of any size have real recipients.

use serde_json::{Value, json};

/// One user of the emulated account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Zoom user id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Chat JID.
    pub jid: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
}

const NAMED: [(&str, &str, &str, &str); 7] = [
    (
        "KdYnimT4KPd8KKdQt9FQ",
        "admin@example.com",
        "Avery",
        "Admin",
    ),
    ("Ana0001AAAAaaaa0001", "ana@example.com", "Ana", "Alves"),
    ("Bo00002BBBBbbbb0002", "bo@example.com", "Bo", "Berg"),
    ("Chen003CCCCcccc0003", "chen@example.com", "Chen", "Cho"),
    ("Dee0004DDDDdddd0004", "dee@example.com", "Dee", "Diaz"),
    ("Eli0005EEEEeeee0005", "eli@example.com", "Eli", "Engel"),
    ("Fay0006FFFFffff0006", "fay@example.com", "Fay", "Fox"),
];

/// Who exists in the emulated account.
#[derive(Debug, Clone)]
pub struct Directory {
    synthetic_domain: Option<String>,
}

impl Directory {
    /// The named users, plus every address at `synthetic_domain`.
    pub fn new(synthetic_domain: Option<String>) -> Self {
        Self { synthetic_domain }
    }

    /// A user by email (case-insensitive) or id.
    pub fn find(&self, key: &str) -> Option<User> {
        let key = key.to_lowercase();
        if let Some((id, email, first, last)) = NAMED
            .iter()
            .find(|(id, email, ..)| *email == key || id.to_lowercase() == key)
        {
            return Some(User {
                id: (*id).to_owned(),
                email: (*email).to_owned(),
                jid: format!("{}@xmpp.zoom.us", id.to_lowercase()),
                first_name: (*first).to_owned(),
                last_name: (*last).to_owned(),
            });
        }
        let domain = self.synthetic_domain.as_deref()?;
        let local = key.strip_suffix(&format!("@{domain}"))?;
        let valid = !local.is_empty()
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_+".contains(c));
        valid.then(|| User {
            id: format!("syn-{local}"),
            email: key.clone(),
            jid: format!("syn-{local}@xmpp.zoom.us"),
            first_name: capitalize(local.split(['.', '-', '_', '+']).next().unwrap_or(local)),
            last_name: "Bulk".into(),
        })
    }

    /// A user by chat JID.
    pub fn find_jid(&self, jid: &str) -> Option<User> {
        let id = jid.strip_suffix("@xmpp.zoom.us")?;
        match id.strip_prefix("syn-") {
            Some(local) => {
                let domain = self.synthetic_domain.as_deref()?;
                self.find(&format!("{local}@{domain}"))
            }
            None => self.find(id),
        }
    }

    /// Zoom's user object (`GET /v2/users/{id}`) for `user`.
    pub fn to_json(user: &User, account_id: &str) -> Value {
        json!({
            "id": user.id,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "display_name": format!("{} {}", user.first_name, user.last_name),
            "email": user.email,
            "type": 2,
            "role_name": "Member",
            "pmi": 5_551_234_567_u64,
            "use_pmi": false,
            "timezone": "UTC",
            "verified": 1,
            "dept": "",
            "created_at": "2024-01-01T00:00:00Z",
            "last_login_time": "2026-11-01T00:00:00Z",
            "language": "en-US",
            "status": "active",
            "role_id": "2",
            "account_id": account_id,
            "account_number": 123_456_789,
            "cluster": "us05",
            "jid": user.jid,
            "user_created_at": "2024-01-01T00:00:00Z"
        })
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_synthetic_and_unknown() {
        let d = Directory::new(Some("bulk.example.com".into()));
        let ana = d.find("ANA@example.com").unwrap();
        assert_eq!(d.find_jid(&ana.jid), Some(ana.clone()));
        let syn = d.find("jo.smith@bulk.example.com").unwrap();
        assert_eq!(syn.first_name, "Jo");
        assert_eq!(d.find_jid(&syn.jid), Some(syn));
        assert_eq!(d.find("nobody@example.com"), None);
        assert_eq!(Directory::new(None).find("x@bulk.example.com"), None);
    }
}
