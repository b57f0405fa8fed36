//! `vigil status` and `vigil reload`.

use chrono::{DateTime, Utc};

use super::{print_json, table, CliError, CmdResult};
use crate::client::Client;
use crate::proto::endpoints::{GetStatus, Reload};
use crate::proto::{ReloadRequest, Reloaded, Status};

pub async fn status(client: &Client, json: bool) -> CmdResult {
    let s: Status = client.get::<GetStatus>(&()).await?;
    if json {
        print_json(&s);
        return Ok(());
    }
    if let Some(notice) = &s.notice {
        table::print(
            None,
            &[
                row("version", format!("vigild {}", s.version)),
                row("you", notice.clone()),
            ],
        );
        return Ok(());
    }
    let caller = match (&s.caller.role, &s.caller.email) {
        (Some(role), Some(email)) => format!("{email} ({role}, uid {})", s.caller.uid),
        (Some(role), None) => format!("uid {} ({role})", s.caller.uid),
        (None, _) => format!("uid {} (not a vigil user: status only)", s.caller.uid),
    };
    let open_tasks = match (s.open_tasks, s.my_open_tasks) {
        (Some(all), Some(mine)) => format!("{all} (mine: {mine})"),
        (Some(all), None) => format!(
            "{all} (none can be yours: uid {} has no email)",
            s.caller.uid
        ),
        (None, _) => "not yet available".to_owned(),
    };
    let mut rows = vec![
        row("open tasks", open_tasks),
        row("version", format!("vigild {} (pid {})", s.version, s.pid)),
        row("uptime", human_duration(s.uptime_secs)),
        row(
            "config",
            format!("{} (loaded {})", s.config_path, when(s.config_loaded_at)),
        ),
        row(
            "reload error",
            s.last_reload_error.clone().unwrap_or_else(|| "none".into()),
        ),
        row("you", caller),
        row("nodes", s.nodes.to_string()),
        row("slots", s.slots.to_string()),
        row("queue", queue_line(s.queue.as_ref())),
        row("outbox", super::outbox::status_line(s.outbox.as_ref())),
        row("store", store_line(&s.store)),
    ];
    for w in &s.config_warnings {
        rows.push(row("config warning", w.clone()));
    }
    table::print(None, &rows);
    Ok(())
}

/// `vigil status --count`: `7 2` (open tasks, yours); `7 -` when you cannot have any.
pub async fn count(client: &Client, json: bool) -> CmdResult {
    let s: Status = client.get::<GetStatus>(&()).await?;
    let (Some(all), mine) = (s.open_tasks, s.my_open_tasks) else {
        return Err(CliError::Failed(match &s.notice {
            Some(notice) => format!("no task counts for you: {notice}"),
            None => "vigild has no task counts yet (it is still starting); try again".into(),
        }));
    };
    if json {
        print_json(&serde_json::json!({"open": all, "mine": mine}));
    } else {
        let mine = mine.map_or_else(|| "-".to_owned(), |m| m.to_string());
        println!("{all} {mine}");
    }
    Ok(())
}

pub async fn reload(client: &Client, allow_empty: bool, json: bool) -> CmdResult {
    let r: Reloaded = client
        .post::<Reload>(&(), &ReloadRequest { allow_empty })
        .await?;
    if json {
        print_json(&r);
    } else {
        println!("config reloaded at {}: {}", when(r.loaded_at), r.summary);
    }
    Ok(())
}

fn store_line(h: &crate::proto::StoreHealth) -> String {
    let mut line = match (h.state, &h.since, &h.error) {
        (crate::proto::StoreState::Failing, since, error) => format!(
            "FAILING since {}: {}",
            since.map(when).unwrap_or_else(|| "?".into()),
            error.as_deref().unwrap_or("unknown error")
        ),
        _ => "ok".to_owned(),
    };
    let bad: u64 = h.undecodable_rows.values().sum();
    if bad > 0 {
        let kinds: Vec<String> = h
            .undecodable_rows
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        line += &format!(
            "; {bad} undecodable row(s) left out ({}): run `vigild check`",
            kinds.join(", ")
        );
    }
    line
}

fn queue_line(q: Option<&crate::proto::QueueFigures>) -> String {
    let Some(q) = q else {
        return "not yet available".into();
    };
    let mut line = format!(
        "{} running / {} slots, {} queued (capacity {})",
        q.running, q.slots, q.queued, q.capacity
    );
    if let Some(age) = q.oldest_running_secs {
        line.push_str(&format!(", oldest running {}", human_duration(age)));
    }
    if q.dropped_scheduled > 0 {
        line.push_str(&format!(
            ", {} scheduled tasks dropped (queue full)",
            q.dropped_scheduled
        ));
    }
    line
}

fn row(k: &str, v: String) -> Vec<String> {
    vec![k.to_owned(), v]
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `3d 4h`, `2h 5m`, `42s`: the two most significant units.
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_well() {
        assert_eq!(super::human_duration(42), "42s");
        assert_eq!(super::human_duration(3 * 3600 + 120), "3h 2m");
        assert_eq!(super::human_duration(2 * 86400 + 3600), "2d 1h");
    }
}
