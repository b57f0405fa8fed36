//! What vigil's mails say, and making scanned text safe to put in them.
//!
//! Subjects carry text that came from scans (paths, titles), so every subject goes through
//! [`clean_subject`]: no control characters, no RFC 2047 look-alikes, bounded length. Bodies
//! are kept as they are (lettre encodes them); the HTML alternative escapes everything.

use std::fmt::Write as _;

use super::NewMail;

/// Longest subject, in characters, before it is cut with an ellipsis.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// Nodes named in an assignment mail before "and N more".
pub const MAX_NODES_LISTED: usize = 10;

/// One line of header-safe text: control characters (C0 including CR, LF, NUL and TAB; DEL;
/// C1) and Unicode line/paragraph separators become spaces, runs of whitespace collapse to
/// one, `=?` (the start of an RFC 2047 encoded word) becomes `= ?` so a mail client shows
/// the text as written, and the result is cut to `max` characters with an ellipsis.
pub fn clean_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut space = false;
    for c in text.chars() {
        let c = if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            ' '
        } else {
            c
        };
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        if c == '?' && out.ends_with('=') {
            out.push(' ');
        }
        out.push(c);
    }
    if out.chars().count() > max {
        out = out.chars().take(max.saturating_sub(1)).collect();
        out.truncate(out.trim_end().len());
        out.push('…');
    }
    out
}

/// A subject safe for the `Subject:` header (see [`clean_line`]).
pub fn clean_subject(subject: &str) -> String {
    clean_line(subject, MAX_SUBJECT_CHARS)
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What an assignment mail needs to say; the user-task module fills it in.
#[derive(Debug, Clone)]
pub struct AssignmentMail {
    pub task_id: u64,
    /// `drift`, `policy` or `scan-failure`.
    pub kind: String,
    pub title: String,
    pub description: String,
    /// Events on the task so far.
    pub events: u64,
    /// Distinct nodes among the events.
    pub nodes: u64,
    /// The first nodes affected, in the order they were seen (at most 10 are listed).
    pub first_nodes: Vec<String>,
    /// Email of the new assignee: the mail goes to them.
    pub assignee: String,
    /// Who assigned it: an email, or `auto-assign (group web)` and the like.
    pub assigned_by: String,
    /// The task's stable key (`vigil/<instance>/task/<id>`), to match a ticket made from
    /// this mail with later events of the task.
    pub dedup_key: String,
}

/// The mail telling `m.assignee` that a task is theirs: plain text with an HTML alternative,
/// written so it can be pasted into another ticketing system as it is.
pub fn assignment(m: &AssignmentMail) -> NewMail {
    let id = m.task_id;
    let subject = format!("[vigil] Task #{id} assigned to you: {}", m.title);
    let listed: Vec<&str> = m
        .first_nodes
        .iter()
        .take(MAX_NODES_LISTED)
        .map(String::as_str)
        .collect();
    let more = m.nodes.saturating_sub(listed.len() as u64);
    let show = format!("vigil tasks show {id}");
    let mut commands = vec![("See the task and its events", show.clone())];
    if m.kind == "drift" {
        commands.push(("See what changed", format!("vigil tasks changes {id}")));
    }
    commands.push(("Close it when done", format!("vigil tasks close {id}")));

    let mut text = String::new();
    let _ = writeln!(
        text,
        "Task #{id} was assigned to you ({}) by {}.\n",
        m.assignee, m.assigned_by
    );
    let _ = writeln!(text, "Task:        #{id}");
    let _ = writeln!(text, "Kind:        {}", m.kind);
    let _ = writeln!(text, "Title:       {}", m.title);
    let _ = writeln!(text, "Events:      {}", m.events);
    let _ = writeln!(text, "Nodes:       {}", m.nodes);
    let _ = writeln!(text, "Assigned to: {}", m.assignee);
    let _ = writeln!(text, "Assigned by: {}", m.assigned_by);
    let _ = writeln!(text, "Dedup key:   {}", m.dedup_key);
    if !m.description.is_empty() {
        let _ = writeln!(text, "\nDescription:\n{}", m.description);
    }
    if !listed.is_empty() {
        let _ = writeln!(text, "\nNodes affected:");
        for n in &listed {
            let _ = writeln!(text, "  - {n}");
        }
        if more > 0 {
            let _ = writeln!(text, "  and {more} more");
        }
    }
    let _ = writeln!(text);
    for (what, cmd) in &commands {
        let _ = writeln!(text, "{what}:\n    {cmd}");
    }
    let _ = writeln!(
        text,
        "\n-- \nThis mail was sent by vigil because the task was assigned to you."
    );

    let e = html_escape;
    let mut html = String::from("<!DOCTYPE html>\n<html><body>\n");
    let _ = writeln!(
        html,
        "<p>Task #{id} was assigned to you ({}) by {}.</p>",
        e(&m.assignee),
        e(&m.assigned_by)
    );
    html.push_str("<table>\n");
    for (k, v) in [
        ("Task", format!("#{id}")),
        ("Kind", m.kind.clone()),
        ("Title", m.title.clone()),
        ("Events", m.events.to_string()),
        ("Nodes", m.nodes.to_string()),
        ("Assigned to", m.assignee.clone()),
        ("Assigned by", m.assigned_by.clone()),
        ("Dedup key", m.dedup_key.clone()),
    ] {
        let _ = writeln!(
            html,
            "<tr><th align=\"left\">{k}</th><td>{}</td></tr>",
            e(&v)
        );
    }
    html.push_str("</table>\n");
    if !m.description.is_empty() {
        let _ = writeln!(
            html,
            "<h3>Description</h3>\n<pre>{}</pre>",
            e(&m.description)
        );
    }
    if !listed.is_empty() {
        html.push_str("<h3>Nodes affected</h3>\n<ul>\n");
        for n in &listed {
            let _ = writeln!(html, "<li>{}</li>", e(n));
        }
        if more > 0 {
            let _ = writeln!(html, "<li>and {more} more</li>");
        }
        html.push_str("</ul>\n");
    }
    for (what, cmd) in &commands {
        let _ = writeln!(html, "<p>{what}:<br><code>{}</code></p>", e(cmd));
    }
    html.push_str(
        "<hr><p><small>This mail was sent by vigil because the task was assigned to you.\
         </small></p>\n</body></html>\n",
    );

    NewMail {
        to: m.assignee.clone(),
        subject,
        text,
        html: Some(html),
        cause: format!("task {id} assigned to {}", m.assignee),
    }
}

/// The mail `POST /v1/outbox/test` queues, so an administrator can check the mail settings.
pub fn test_mail(to: &str, requested_by: &str) -> NewMail {
    let text = format!(
        "This is a test message from vigil, requested by {requested_by}.\n\n\
         If you can read it, vigil's mail settings work. Nothing needs to be done.\n"
    );
    let html = format!(
        "<!DOCTYPE html>\n<html><body><p>This is a test message from vigil, requested by {}.\
         </p><p>If you can read it, vigil's mail settings work. Nothing needs to be done.</p>\
         </body></html>\n",
        html_escape(requested_by)
    );
    NewMail {
        to: to.to_owned(),
        subject: "[vigil] vigil test message".to_owned(),
        text,
        html: Some(html),
        cause: format!("test mail requested by {requested_by}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_lose_every_control_character() {
        let s = clean_subject("a\r\nBcc: evil@x\0b\tc\u{7f}d\u{85}e\u{9b}f\u{2028}g");
        assert_eq!(s, "a Bcc: evil@x b c d e f g");
        assert!(!s.chars().any(char::is_control));
    }

    #[test]
    fn subjects_defuse_encoded_words() {
        assert_eq!(
            clean_subject("x =?utf-8?b?QQ==?= y"),
            "x = ?utf-8?b?QQ== ?= y"
        );
        assert!(!clean_subject("==??=?=?").contains("=?"));
    }

    #[test]
    fn long_subjects_are_capped_with_an_ellipsis() {
        let s = clean_subject(&"é".repeat(500));
        assert_eq!(s.chars().count(), MAX_SUBJECT_CHARS);
        assert!(s.ends_with('…'));
        assert_eq!(clean_subject("short"), "short");
        assert_eq!(clean_subject(&"x".repeat(200)).chars().count(), 200);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html_escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    fn sample(nodes: usize) -> AssignmentMail {
        AssignmentMail {
            task_id: 42,
            kind: "drift".into(),
            title: "Drift on 100 nodes — 3 files modified".into(),
            description: "/etc/ssh/sshd_config <modified>\n.\nline".into(),
            events: 100,
            nodes: nodes as u64,
            first_nodes: (1..=nodes).map(|i| format!("web-{i}")).collect(),
            assignee: "alice@example.com".into(),
            assigned_by: "bob@example.com".into(),
            dedup_key: "vigil/00000000000000ab/task/42".into(),
        }
    }

    #[test]
    fn assignment_mail_says_what_an_assignee_needs() {
        let m = assignment(&sample(100));
        assert_eq!(
            m.subject,
            "[vigil] Task #42 assigned to you: Drift on 100 nodes — 3 files modified"
        );
        assert_eq!(m.to, "alice@example.com");
        assert_eq!(m.cause, "task 42 assigned to alice@example.com");
        for needle in [
            "Kind:        drift",
            "Events:      100",
            "Nodes:       100",
            "  - web-10\n  and 90 more",
            "vigil tasks show 42",
            "vigil tasks changes 42",
            "/etc/ssh/sshd_config <modified>\n.\nline",
        ] {
            assert!(m.text.contains(needle), "{needle:?} missing:\n{}", m.text);
        }
        assert!(!m.text.contains("web-11"));
        let html = m.html.unwrap();
        assert!(html.contains("&lt;modified&gt;"), "{html}");
        assert!(html.contains("<li>and 90 more</li>"));
        assert!(!html.contains("<modified>"));
    }

    #[test]
    fn few_nodes_have_no_and_more_line() {
        let m = assignment(&sample(3));
        assert!(m.text.contains("  - web-3\n\n"));
        assert!(!m.text.contains("more"));
    }
}
