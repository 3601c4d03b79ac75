//! A Zoom plan, and the rate limits Zoom documents for it: what `plan` in the configuration
//! starts each limiter at.

/// A Zoom plan, as far as rate limits go (Zoom's rate-limits page: the Light and Medium
/// classes per plan; Get a user is Light, sending a chatbot message Medium).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Free: Light 4/s, Medium 2/s.
    Free,
    /// Pro: Light 30/s, Medium 20/s.
    Pro,
    /// Business and up: Light 80/s, Medium 60/s.
    Business,
}

impl Plan {
    /// Requests a second Zoom allows the Users API (Light) on this plan.
    pub fn lookups_per_second(self) -> u32 {
        match self {
            Self::Free => 4,
            Self::Pro => 30,
            Self::Business => 80,
        }
    }

    /// Requests a second Zoom allows the Chatbot API (Medium) on this plan.
    pub fn sends_per_second(self) -> u32 {
        match self {
            Self::Free => 2,
            Self::Pro => 20,
            Self::Business => 60,
        }
    }
}

impl std::str::FromStr for Plan {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text.trim().to_ascii_lowercase().as_str() {
            "free" | "basic" => Ok(Self::Free),
            "pro" => Ok(Self::Pro),
            "business" | "business_plus" | "enterprise" | "education" => Ok(Self::Business),
            _ => Err(()),
        }
    }
}
