//! The emulated accounts' users. The first account has a few named people at `example.com`,
//! plus (optionally) every address at a synthetic domain, so bulk runs of any size have real
//! recipients; a second account has a few people at `second.example` (and every address at
//! `second.` and the synthetic domain), so that installs by several accounts can be tried.
//! Each account has channels too: the first `General`, `On-call`, two both named `standup`,
//! and `team-01` to `team-50` (more than one page of Zoom's channel list); the second
//! `Second's general`.

use serde_json::{Value, json};

use super::Knobs;

/// One user of an emulated account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The account the user belongs to.
    pub account_id: String,
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

/// The second account's named users.
const SECOND: [(&str, &str, &str, &str); 3] = [
    (
        "Sam0101SSSSssss0101",
        "admin@second.example",
        "Sam",
        "Second",
    ),
    ("Gus0102GGGGgggg0102", "gus@second.example", "Gus", "Gray"),
    ("Hana103HHHHhhhh0103", "hana@second.example", "Hana", "Hill"),
];

/// The named channels: JID (before `@conference.xmpp.zoom.us`), name, and account (0 or 1).
const CHANNELS: [(&str, &str, usize); 5] = [
    ("general", "General", 0),
    ("oncall", "On-call", 0),
    ("standup-eng", "standup", 0),
    ("standup-ops", "standup", 0),
    ("second-general", "Second's general", 1),
];
/// How many `team-NN` channels the first account has besides.
const TEAMS: usize = 50;

/// Every channel: JID's local part, name, account (0 or 1).
fn channel_table() -> impl Iterator<Item = (String, String, usize)> {
    let named = CHANNELS
        .iter()
        .map(|(id, name, account)| ((*id).to_owned(), (*name).to_owned(), *account));
    let teams = (1..=TEAMS).map(|n| (format!("team-{n:02}"), format!("team-{n:02}"), 0));
    named.chain(teams)
}

/// A chat channel of an emulated account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// Its JID.
    pub jid: String,
    /// Its name.
    pub name: String,
    /// The account it belongs to.
    pub account_id: String,
}

/// Who exists in the emulated accounts.
#[derive(Debug, Clone)]
pub struct Directory {
    synthetic_domain: Option<String>,
    accounts: [String; 2],
}

impl Directory {
    /// The named users of both accounts, plus every address at the synthetic domain, with the
    /// account ids `knobs` give.
    pub fn new(knobs: &Knobs) -> Self {
        Self {
            synthetic_domain: knobs.synthetic_domain.clone(),
            accounts: [knobs.account_id.clone(), knobs.second_account_id.clone()],
        }
    }

    /// Whether `account_id` is one of the emulated accounts.
    pub fn has_account(&self, account_id: &str) -> bool {
        self.accounts.iter().any(|a| a == account_id)
    }

    /// A user by email (case-insensitive) or id.
    pub fn find(&self, key: &str) -> Option<User> {
        let key = key.to_lowercase();
        let named = NAMED
            .iter()
            .map(|n| (n, 0))
            .chain(SECOND.iter().map(|n| (n, 1)));
        if let Some(((id, email, first, last), account)) = named
            .into_iter()
            .find(|((id, email, ..), _)| *email == key || id.to_lowercase() == key)
        {
            return Some(User {
                account_id: self.accounts[account].clone(),
                id: (*id).to_owned(),
                email: (*email).to_owned(),
                jid: format!("{}@xmpp.zoom.us", id.to_lowercase()),
                first_name: (*first).to_owned(),
                last_name: (*last).to_owned(),
            });
        }
        let domain = self.synthetic_domain.as_deref()?;
        // `x@DOMAIN` is of the first account, `x@second.DOMAIN` of the second.
        let (local, account, prefix) = match key.strip_suffix(&format!("@second.{domain}")) {
            Some(local) => (local, 1, "syn2-"),
            None => (key.strip_suffix(&format!("@{domain}"))?, 0, "syn-"),
        };
        let valid = !local.is_empty()
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_+".contains(c));
        valid.then(|| User {
            account_id: self.accounts[account].clone(),
            id: format!("{prefix}{local}"),
            email: key.clone(),
            jid: format!("{prefix}{local}@xmpp.zoom.us"),
            first_name: capitalize(local.split(['.', '-', '_', '+']).next().unwrap_or(local)),
            last_name: "Bulk".into(),
        })
    }

    /// A channel by JID (`general@conference.xmpp.zoom.us`, ...).
    pub fn find_channel(&self, jid: &str) -> Option<Channel> {
        let local = jid.strip_suffix("@conference.xmpp.zoom.us")?;
        self.channels()
            .find(|c| c.jid.strip_suffix("@conference.xmpp.zoom.us") == Some(local))
    }

    /// Every channel of both accounts, in a stable order.
    pub fn channels(&self) -> impl Iterator<Item = Channel> + '_ {
        channel_table().map(|(id, name, account)| Channel {
            jid: format!("{id}@conference.xmpp.zoom.us"),
            name,
            account_id: self.accounts[account].clone(),
        })
    }

    /// A user by chat JID.
    pub fn find_jid(&self, jid: &str) -> Option<User> {
        let id = jid.strip_suffix("@xmpp.zoom.us")?;
        let domain = self.synthetic_domain.as_deref();
        if let Some(local) = id.strip_prefix("syn2-") {
            return self.find(&format!("{local}@second.{}", domain?));
        }
        match id.strip_prefix("syn-") {
            Some(local) => self.find(&format!("{local}@{}", domain?)),
            None => self.find(id),
        }
    }

    /// The role of `user` in their account: the first account's admin is its owner, the
    /// second's an admin; everyone else a member.
    pub fn role(user: &User) -> (&'static str, &'static str) {
        match user.email.split_once('@') {
            Some(("admin", "example.com")) => ("Owner", "0"),
            Some(("admin", _)) => ("Admin", "1"),
            _ => ("Member", "2"),
        }
    }

    /// Zoom's user object (`GET /v2/users/{id}`) for `user`.
    pub fn to_json(user: &User) -> Value {
        let (role_name, role_id) = Self::role(user);
        json!({
            "id": user.id,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "display_name": format!("{} {}", user.first_name, user.last_name),
            "email": user.email,
            "type": 2,
            "role_name": role_name,
            "pmi": 5_551_234_567_u64,
            "use_pmi": false,
            "timezone": "UTC",
            "verified": 1,
            "dept": "",
            "created_at": "2024-01-01T00:00:00Z",
            "last_login_time": "2026-11-01T00:00:00Z",
            "language": "en-US",
            "status": "active",
            "role_id": role_id,
            "account_id": user.account_id,
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
        let d = Directory::new(&Knobs::default());
        let ana = d.find("ANA@example.com").unwrap();
        assert_eq!(ana.account_id, "emulated-account-1");
        let gus = d.find("gus@second.example").unwrap();
        assert_eq!(gus.account_id, "emulated-account-2");
        assert_eq!(d.find_jid(&gus.jid), Some(gus));
        let syn2 = d.find("kim@second.bulk.example.com").unwrap();
        assert_eq!(syn2.account_id, "emulated-account-2");
        assert_eq!(d.find_jid(&syn2.jid), Some(syn2));
        assert_eq!(d.find_jid(&ana.jid), Some(ana.clone()));
        let syn = d.find("jo.smith@bulk.example.com").unwrap();
        assert_eq!(syn.first_name, "Jo");
        assert_eq!(d.find_jid(&syn.jid), Some(syn));
        assert_eq!(d.find("nobody@example.com"), None);
        let none = Knobs {
            synthetic_domain: None,
            ..Knobs::default()
        };
        assert_eq!(Directory::new(&none).find("x@bulk.example.com"), None);
    }
}
