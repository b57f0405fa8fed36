//! Each schedule's last due time that ran, in the store: read at start and reload for the
//! catch-up, and claimed compare-and-set inside the very transaction that queues the run
//! (see `Queue::enqueue_scheduled`), so that each real due instant runs at most once.

use chrono::{DateTime, Utc};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use crate::queue::Claim;
use crate::store::tables::SCHEDULE_FIRED;
use crate::store::{Store, StoreError};

/// The due time of a schedule's last run, if it ever ran.
pub async fn last(store: &Store, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    let name = name.to_owned();
    let secs = store
        .read(move |tx: &ReadTransaction| -> Result<_, StoreError> {
            Ok(SCHEDULE_FIRED
                .read(tx)?
                .get(name.as_str())?
                .map(|v| v.value()))
        })
        .await?;
    Ok(secs.and_then(|s| DateTime::from_timestamp(s, 0)))
}

/// Records a schedule seen for the first time as having run at `now`, without queueing
/// anything (so that adding a schedule does not start a run at once). A schedule that has a
/// recorded run keeps it.
pub async fn seen(store: &Store, name: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    let name = name.to_owned();
    store
        .write(move |tx| -> Result<(), StoreError> {
            let mut table = SCHEDULE_FIRED.write(tx)?;
            if table.get(name.as_str())?.is_none() {
                table.insert(name.as_str(), now.timestamp())?;
            }
            Ok(())
        })
        .await
}

/// Compare-and-set of a schedule's last due time, for the transaction that queues its run:
/// records `due` and says yes if it is later than the recorded one (or none is recorded);
/// says no, changing nothing, if that due time (or a later one) already ran.
pub fn claim(name: &str, due: DateTime<Utc>) -> Claim {
    let name = name.to_owned();
    Box::new(move |tx: &WriteTransaction| {
        let mut table = SCHEDULE_FIRED.write(tx)?;
        let due = due.timestamp();
        if table
            .get(name.as_str())?
            .is_some_and(|last| last.value() >= due)
        {
            return Ok(false);
        }
        table.insert(name.as_str(), due)?;
        Ok(true)
    })
}
