//! The mail templates: built into the binary from the repository's
//! `templates/`, or read from `paths.templates`. All are compiled when the
//! config loads, so a missing or broken one is a configuration error. A
//! leaf: what the templates are given is the mail's business.

use std::path::Path;

use minijinja::Environment;
use serde::Serialize;

/// Every template a run may need, with the built-in text.
const BUILT_IN: &[(&str, &str)] = &[
    ("subject.j2", include_str!("../templates/subject.j2")),
    ("base.txt.j2", include_str!("../templates/base.txt.j2")),
    ("base.html.j2", include_str!("../templates/base.html.j2")),
    ("protection.j2", include_str!("../templates/protection.j2")),
    (
        "commitment.txt.j2",
        include_str!("../templates/commitment.txt.j2"),
    ),
    (
        "reminder-subject.j2",
        include_str!("../templates/reminder-subject.j2"),
    ),
    (
        "reminder.txt.j2",
        include_str!("../templates/reminder.txt.j2"),
    ),
    (
        "handover.txt.j2",
        include_str!("../templates/handover.txt.j2"),
    ),
    (
        "receipt.txt.j2",
        include_str!("../templates/receipt.txt.j2"),
    ),
    (
        "chief-change.txt.j2",
        include_str!("../templates/chief-change.txt.j2"),
    ),
    (
        "external-notice.txt.j2",
        include_str!("../templates/external-notice.txt.j2"),
    ),
    (
        "investigation.txt.j2",
        include_str!("../templates/investigation.txt.j2"),
    ),
    (
        "sample-audit.txt.j2",
        include_str!("../templates/sample-audit.txt.j2"),
    ),
    (
        "sample-audit.html.j2",
        include_str!("../templates/sample-audit.html.j2"),
    ),
    (
        "account-review.txt.j2",
        include_str!("../templates/account-review.txt.j2"),
    ),
    (
        "account-review.html.j2",
        include_str!("../templates/account-review.html.j2"),
    ),
    (
        "password-check.txt.j2",
        include_str!("../templates/password-check.txt.j2"),
    ),
    (
        "password-check.html.j2",
        include_str!("../templates/password-check.html.j2"),
    ),
    (
        "query-check.txt.j2",
        include_str!("../templates/query-check.txt.j2"),
    ),
    (
        "query-check.html.j2",
        include_str!("../templates/query-check.html.j2"),
    ),
    (
        "internal-audit.txt.j2",
        include_str!("../templates/internal-audit.txt.j2"),
    ),
    (
        "internal-audit.html.j2",
        include_str!("../templates/internal-audit.html.j2"),
    ),
    (
        "external-audit.txt.j2",
        include_str!("../templates/external-audit.txt.j2"),
    ),
    (
        "external-audit.html.j2",
        include_str!("../templates/external-audit.html.j2"),
    ),
    ("alert.txt.j2", include_str!("../templates/alert.txt.j2")),
    ("daemon.txt.j2", include_str!("../templates/daemon.txt.j2")),
    (
        "anomalies.txt.j2",
        include_str!("../templates/anomalies.txt.j2"),
    ),
    (
        "critical.txt.j2",
        include_str!("../templates/critical.txt.j2"),
    ),
];

/// A template that is missing or does not render.
#[derive(Debug, thiserror::Error)]
#[error("{what} {name}: {error}")]
pub struct RenderError {
    pub name: String,
    what: &'static str,
    error: minijinja::Error,
}

/// The compiled templates.
#[derive(Debug, Clone)]
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Compiles the built-in templates, or those in `dir`. The error names
    /// the template and what is wrong with it.
    pub fn load(dir: Option<&Path>) -> Result<Templates, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, built_in) in BUILT_IN {
            let source = match dir {
                Some(d) => std::fs::read_to_string(d.join(name))
                    .map_err(|e| format!("{}: {e}", d.join(name).display()))?,
                None => (*built_in).to_owned(),
            };
            env.add_template_owned((*name).to_owned(), source)
                .map_err(|e| format!("{name}: {e}"))?;
        }
        Ok(Templates { env })
    }

    pub fn render<S: Serialize>(&self, name: &str, cx: &S) -> Result<String, RenderError> {
        let t = self.env.get_template(name).map_err(|e| RenderError {
            name: name.to_owned(),
            what: "template",
            error: e,
        })?;
        // No mail shows a national ID whole, whatever free text (an
        // answer, a note, operator input) brought one in.
        t.render(minijinja::value::Serde(cx))
            .map(|text| crate::privacy::mask_ids_in_text(&text))
            .map_err(|e| RenderError {
                name: name.to_owned(),
                what: "rendering template",
                error: e,
            })
    }
}
