//! CSV export of user tasks: one row per event (task columns repeated), a task without
//! events as one row with empty event columns. RFC 4180 quoting by the `csv` crate. The
//! task's dedup key is the last column, so the columns before it are where they always were.

use crate::proto::ExportedUserTask;

const HEADER: [&str; 18] = [
    "task_id",
    "kind",
    "status",
    "title",
    "description",
    "assignee",
    "created_at",
    "last_event_at",
    "closed_by",
    "closed_at",
    "events",
    "nodes",
    "event_node",
    "event_time",
    "event_source",
    "event_day",
    "event_details",
    "dedup_key",
];

/// The header line.
pub fn header() -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(HEADER)?;
    w.into_inner().map_err(|e| e.into_error().into())
}

/// The rows of `tasks`, without the header: an export writes them a batch at a time.
pub fn rows(tasks: &[ExportedUserTask]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for t in tasks {
        let task = &t.task;
        let fixed = [
            task.id.to_string(),
            task.kind.to_string(),
            format!("{:?}", task.status()).to_lowercase(),
            task.title.clone(),
            task.description.clone(),
            task.assignee.clone().unwrap_or_default(),
            task.created_at.to_rfc3339(),
            task.last_event_at.to_rfc3339(),
            task.state.closed_by().unwrap_or_default().to_owned(),
            task.state
                .closed_at()
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            task.events.to_string(),
            task.nodes.to_string(),
        ];
        if t.event_list.is_empty() {
            let mut row = fixed.to_vec();
            row.extend(std::iter::repeat_n(String::new(), 5));
            row.push(task.dedup_key.clone());
            w.write_record(&row)?;
        }
        for e in &t.event_list {
            let mut row = fixed.to_vec();
            row.extend([
                e.node.clone(),
                e.time.to_rfc3339(),
                e.source.to_string(),
                e.day.to_string(),
                e.details.clone(),
                task.dedup_key.clone(),
            ]);
            w.write_record(&row)?;
        }
    }
    w.into_inner().map_err(|e| e.into_error().into())
}
