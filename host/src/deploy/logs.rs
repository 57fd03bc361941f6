//! What a finished deployment leaves on disk: a line in the spec's
//! `deployment_logs/update_log.json` (JSON lines, appended) and a short
//! report, `deployment_logs/<id>.md`. Exports for people and log
//! shippers; the journal in the state store is the record. Nothing here
//! holds a secret: step details are names, revisions and counts.

use super::plan::Plan;
use crate::clock::when;
use crate::store::{DeploymentRecord, StepRecord};
use serde_json::{Value, json};
use std::io::Write;

/// Writes both; the report's path.
pub fn write(
    plan: &Plan,
    record: &DeploymentRecord,
    steps: &[StepRecord],
) -> std::io::Result<String> {
    let dir = plan
        .settings
        .resolve_path(&plan.settings.config.config.deployment.log_dir);
    std::fs::create_dir_all(&dir)?;
    let details: Vec<Value> = steps
        .iter()
        .map(|s| {
            json!({
                "step": s.name,
                "state": s.state,
                "started": when(s.started_ms),
                "duration": s.took(),
                "detail": serde_json::from_str::<Value>(&s.detail).unwrap_or(Value::Null),
                "error": s.error,
            })
        })
        .collect();
    let line = json!({
        "deployment": record.id,
        "environment": record.environment,
        "state": record.state,
        "reason": record.reason,
        "actor": record.actor,
        "host": record.host,
        "started": when(Some(record.started_ms)),
        "finished": when(record.finished_ms),
        "steps": details,
    });
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("update_log.json"))?;
    writeln!(log, "{line}")?;
    let mut md = format!(
        "# Deployment {}\n\n- environment: {}\n- state: **{}**\n- by: {} on {}\n- started: {}\n- finished: {}\n",
        record.id,
        record.environment,
        record.state,
        record.actor,
        record.host,
        when(Some(record.started_ms)),
        when(record.finished_ms),
    );
    if let Some(reason) = &record.reason {
        md.push_str(&format!("- reason: {}\n", md_text(reason)));
    }
    md.push_str("\n| step | state | duration | what happened |\n|---|---|---|---|\n");
    for s in steps {
        let what = s.what_happened();
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            s.name,
            s.state,
            s.took(),
            md_text(&what)
        ));
    }
    let path = dir.join(format!("{}.md", record.id));
    std::fs::write(&path, md)?;
    Ok(path.display().to_string())
}

/// Text from steps (and so from plugins) as one Markdown table cell: one
/// line, controls escaped, and nothing Markdown or HTML would act on.
fn md_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in crate::escape::one_line(text).chars() {
        match c {
            '|' | '<' | '>' | '[' | ']' | '`' | '*' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn step_text_stays_in_its_cell() {
        assert_eq!(
            super::md_text("bad | row\n| forged | row |\n<img src=x>"),
            "bad \\| row\\n\\| forged \\| row \\|\\n\\<img src=x\\>"
        );
    }
}
