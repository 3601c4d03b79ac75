//! The console's HTML templates (minijinja, compiled into the binary) and style sheet. Every
//! template ends in `.html`, so minijinja escapes every value it inserts; the chart, drawn by
//! the server from numbers, is the one value inserted as it is.

use std::sync::OnceLock;

use minijinja::Environment;

/// The console's style sheet (`/console/style.css`).
pub const STYLE: &str = include_str!("templates/style.css");

const TEMPLATES: [(&str, &str); 8] = [
    ("base.html", include_str!("templates/base.html")),
    ("jobs.html", include_str!("templates/jobs.html")),
    ("runs.html", include_str!("templates/runs.html")),
    ("run.html", include_str!("templates/run.html")),
    ("optouts.html", include_str!("templates/optouts.html")),
    ("grants.html", include_str!("templates/grants.html")),
    ("login.html", include_str!("templates/login.html")),
    ("message.html", include_str!("templates/message.html")),
];

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("the console's templates parse (a unit test renders each)");
        }
        env
    })
}

/// `template` rendered with `context`.
pub fn render(template: &str, context: &serde_json::Value) -> Result<String, minijinja::Error> {
    environment().get_template(template)?.render(context)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_page_renders_and_escapes_what_it_shows() {
        let hostile = "<script>alert(1)</script>";
        let run = json!({"id": 1, "job": hostile, "status": "succeeded", "app": hostile,
            "counts": {"total": 1, "sent": 1, "failed": 0, "uncertain": 0, "opted_out": 0}});
        let frame = json!({
            "who": hostile, "csrf": "c", "read_only": true, "title": hostile, "page": "jobs",
            "message": hostile, "run": run, "filters": ["all"], "state": "all",
            "recipients": [{"recipient": hostile, "state": "sent", "failure": hostile}],
            "runs": [run], "grants": [{"app": hostile}], "optouts": [{"user_name": hostile}],
        });
        for (name, _) in TEMPLATES {
            let html = render(name, &frame).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(!html.contains(hostile), "{name} inserted a value unescaped");
        }
        let jobs = json!({"jobs": [{"name": hostile, "suspended": true}], "csrf": "c"});
        let html = render("jobs.html", &jobs).unwrap();
        assert!(html.contains("&lt;script&gt;") && !html.contains(hostile));
        // Job names hold no `/`: the rest of a name is percent-encoded in its actions' paths.
        assert!(html.contains(r#"action="/console/jobs/%3Cscript%3Ealert%281%29%3C"#));
    }
}
