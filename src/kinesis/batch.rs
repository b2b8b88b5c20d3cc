//! Batching records into `PutRecords` requests, and reading the per-entry
//! results of one.
//!
//! [`Batcher`] is a pure state machine: time is passed in as
//! [`Instant`]s, so tests need no sleeping and the tokio task that drives
//! it only has to sleep until [`Batcher::deadline`]. It guarantees that no
//! batch it emits exceeds [`MAX_RECORDS_PER_REQUEST`] records,
//! [`MAX_REQUEST_BYTES`] bytes (data + keys), or holds a record over
//! [`MAX_RECORD_BYTES`]: records that could never be sent are refused on
//! the way in, so an over-limit request cannot be built.
//!
//! [`failed_entries`] picks out the entries of a response that failed, in
//! order, so that only those are retried; [`ErrorClass`] says what kind
//! of failure an error code is.

use std::time::{Duration, Instant};

use super::record::{
    Record, RecordError, MAX_RECORDS_PER_REQUEST, MAX_RECORD_BYTES, MAX_REQUEST_BYTES,
};

/// Default `--linger`.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(500);

/// Batcher limits that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatcherConfigError {
    /// Records per request is 0 or over the API's 500.
    #[error("records per request {0} is outside 1..={MAX_RECORDS_PER_REQUEST}")]
    MaxRecords(usize),
    /// Bytes per request is 0 or over the API's 5 MiB.
    #[error("bytes per request {0} is outside 1..={MAX_REQUEST_BYTES}")]
    MaxBytes(usize),
}

/// A request that breaks a Kinesis `PutRecords` limit (see
/// [`check_request`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No record: PutRecords needs at least one.
    #[error("request is empty")]
    Empty,
    /// More than 500 records.
    #[error("request has {0} records; the limit is {MAX_RECORDS_PER_REQUEST}")]
    TooManyRecords(usize),
    /// More than 5 MiB of data and partition keys.
    #[error("request is {0} bytes (data + keys); the limit is {MAX_REQUEST_BYTES}")]
    TooManyBytes(usize),
    /// One record breaks a per-record limit.
    #[error("record {index}: {error}")]
    Record {
        /// The record's 0-based position in the request.
        index: usize,
        /// What is wrong with it.
        error: RecordError,
    },
}

/// Check a whole request against the `PutRecords` limits: 1 to 500
/// records, at most 5 MiB of data + keys, every record valid. Batches from
/// [`Batcher`] always pass; the sender can assert it before sending.
pub fn check_request(records: &[Record]) -> Result<(), RequestError> {
    if records.is_empty() {
        return Err(RequestError::Empty);
    }
    if records.len() > MAX_RECORDS_PER_REQUEST {
        return Err(RequestError::TooManyRecords(records.len()));
    }
    let mut bytes = 0usize;
    for (index, r) in records.iter().enumerate() {
        r.validate()
            .map_err(|error| RequestError::Record { index, error })?;
        bytes += r.encoded_size();
    }
    if bytes > MAX_REQUEST_BYTES {
        return Err(RequestError::TooManyBytes(bytes));
    }
    Ok(())
}

/// Accumulates records into `PutRecords` batches.
///
/// A batch is emitted when the next record would not fit in it (by count
/// or bytes), when it reaches the record count limit, or once `linger`
/// has passed since its first record. Records leave in the order they
/// came in, each exactly once.
#[derive(Debug)]
pub struct Batcher {
    linger: Duration,
    max_records: usize,
    max_bytes: usize,
    pending: Vec<Record>,
    pending_bytes: usize,
    first_at: Option<Instant>,
}

impl Batcher {
    /// A batcher with the Kinesis limits (500 records, 5 MiB).
    pub fn new(linger: Duration) -> Self {
        Batcher {
            linger,
            max_records: MAX_RECORDS_PER_REQUEST,
            max_bytes: MAX_REQUEST_BYTES,
            pending: Vec::new(),
            pending_bytes: 0,
            first_at: None,
        }
    }

    /// A batcher with tighter limits than Kinesis's (for smaller requests,
    /// and for tests that want to hit the limits often). A record larger
    /// than `max_bytes` is refused by [`Batcher::push`].
    pub fn with_limits(
        linger: Duration,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Self, BatcherConfigError> {
        if !(1..=MAX_RECORDS_PER_REQUEST).contains(&max_records) {
            return Err(BatcherConfigError::MaxRecords(max_records));
        }
        if !(1..=MAX_REQUEST_BYTES).contains(&max_bytes) {
            return Err(BatcherConfigError::MaxBytes(max_bytes));
        }
        Ok(Batcher {
            max_records,
            max_bytes,
            ..Batcher::new(linger)
        })
    }

    /// Records waiting in the current batch.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True if no record is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Bytes (data + keys) waiting in the current batch.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// When the current batch must go: `linger` after its first record.
    /// `None` when nothing is waiting.
    pub fn deadline(&self) -> Option<Instant> {
        self.first_at.map(|t| t + self.linger)
    }

    /// Add a record arriving at `now`. Returns a batch that is ready: the
    /// previous batch if this record does not fit in it, or the batch
    /// including this record if it is now full or its linger has passed.
    /// At most one batch is ready per push (see the invariant below).
    ///
    /// A record Kinesis would refuse (key not 1-256 characters, over 1 MiB,
    /// or over this batcher's byte limit) is an error and is not kept.
    pub fn push(
        &mut self,
        record: Record,
        now: Instant,
    ) -> Result<Option<Vec<Record>>, RecordError> {
        record.validate()?;
        let size = record.encoded_size();
        if size > self.max_bytes {
            return Err(RecordError::TooLarge {
                key: record.partition_key,
                size,
                limit: self.max_bytes.min(MAX_RECORD_BYTES),
            });
        }
        // Invariant between calls: pending.len() < max_records (a full
        // batch is emitted at once). So only bytes can make this record
        // not fit, and after emitting, the new batch holds one record,
        // which is full only if max_records == 1 -- but then pending was
        // empty and nothing was emitted here.
        let mut ready = None;
        if !self.pending.is_empty() && self.pending_bytes + size > self.max_bytes {
            ready = self.take();
        }
        if self.pending.is_empty() {
            self.first_at = Some(now);
        }
        self.pending_bytes += size;
        self.pending.push(record);
        if ready.is_none()
            && (self.pending.len() >= self.max_records || self.deadline().is_some_and(|d| d <= now))
        {
            ready = self.take();
        }
        Ok(ready)
    }

    /// The current batch if its linger has passed at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<Vec<Record>> {
        match self.deadline() {
            Some(d) if d <= now => self.take(),
            _ => None,
        }
    }

    /// The current batch, whatever its age (shutdown, or a packer flush).
    pub fn flush(&mut self) -> Option<Vec<Record>> {
        self.take()
    }

    fn take(&mut self) -> Option<Vec<Record>> {
        if self.pending.is_empty() {
            return None;
        }
        self.pending_bytes = 0;
        self.first_at = None;
        Some(std::mem::take(&mut self.pending))
    }
}

/// The outcome of one entry of a `PutRecords` response, in request order
/// (the AWS glue converts `PutRecordsResultEntry` into this).
///
/// Kinesis API reference, PutRecordsResultEntry: "A record that is
/// successfully added to a stream includes SequenceNumber and ShardId in
/// the result. A record that fails to be added to the stream includes
/// ErrorCode and ErrorMessage in the result."
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryResult {
    /// Present if and only if the entry failed.
    pub error_code: Option<String>,
    /// The per-entry `ErrorMessage`, if any.
    pub error_message: Option<String>,
}

impl EntryResult {
    /// A successful entry.
    pub fn ok() -> Self {
        EntryResult::default()
    }

    /// A failed entry.
    pub fn failed(code: impl Into<String>, message: impl Into<String>) -> Self {
        EntryResult {
            error_code: Some(code.into()),
            error_message: Some(message.into()),
        }
    }
}

/// What an error code means for delivery. Every class keeps the data: the
/// class only chooses how soon to retry and how loudly to log.
///
/// Sources: Kinesis API reference, PutRecordsResultEntry ("ErrorCodes can
/// be either ProvisionedThroughputExceededException or InternalFailure")
/// and PutRecords "Errors" (the whole-request codes: InvalidArgument,
/// KMSAccessDenied, KMSDisabled, KMSInvalidState, KMSNotFound,
/// KMSOptInRequired, KMSThrottling, ProvisionedThroughputExceeded,
/// ResourceNotFound, AccessDenied), plus the common errors of all AWS APIs
/// (ThrottlingException, ServiceUnavailable, InternalFailure,
/// ValidationException). The same function serves per-entry and
/// whole-request codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Over a rate limit: `ProvisionedThroughputExceededException` (shard
    /// or stream write limit), `KMSThrottlingException` (KMS request rate,
    /// "the request was denied due to request throttling"),
    /// `ThrottlingException`, `LimitExceededException`. Retry with backoff
    /// and jitter; count as a throttle.
    Throttled,
    /// Service-side trouble: `InternalFailure` ("Internal Service
    /// Failure"), `ServiceUnavailable`, `InternalServerError`. Retry with
    /// backoff.
    Transient,
    /// Needs an operator; retrying soon cannot help:
    /// `KMSAccessDeniedException`, `KMSDisabledException`,
    /// `KMSInvalidStateException`, `KMSNotFoundException`,
    /// `KMSOptInRequired` (the stream's KMS key is unusable),
    /// `AccessDeniedException`, `ResourceNotFoundException` (no such
    /// stream: it may be created later), `InvalidArgumentException`,
    /// `ValidationException`. Log clearly with the stream name, keep the
    /// data (spool) and retry slowly.
    Configuration,
    /// A code this version does not know. Treated as retryable, but logged
    /// with its code so it can be classified.
    Unknown,
}

impl ErrorClass {
    /// Classify an AWS error code (per-entry `ErrorCode` or a whole-request
    /// error's code). Matching is exact: AWS codes are case-sensitive.
    pub fn of(code: &str) -> ErrorClass {
        match code {
            "ProvisionedThroughputExceededException"
            | "KMSThrottlingException"
            | "ThrottlingException"
            | "Throttling"
            | "LimitExceededException" => ErrorClass::Throttled,
            "InternalFailure"
            | "InternalFailureException"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "ServiceUnavailableException" => ErrorClass::Transient,
            "KMSAccessDeniedException"
            | "KMSDisabledException"
            | "KMSInvalidStateException"
            | "KMSNotFoundException"
            | "KMSOptInRequired"
            | "AccessDeniedException"
            | "ResourceNotFoundException"
            | "InvalidArgumentException"
            | "ValidationException" => ErrorClass::Configuration,
            _ => ErrorClass::Unknown,
        }
    }

    /// Worth retrying on the normal backoff schedule (everything but
    /// [`ErrorClass::Configuration`], which waits for an operator).
    pub fn is_retryable(self) -> bool {
        !matches!(self, ErrorClass::Configuration)
    }
}

/// One entry of a `PutRecords` request that Kinesis did not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    /// The record, to be sent again or spooled.
    pub record: Record,
    /// The per-entry `ErrorCode` (possibly empty if Kinesis sent an empty
    /// one: it still failed).
    pub error_code: String,
    /// The per-entry `ErrorMessage`, if any.
    pub error_message: Option<String>,
}

impl FailedEntry {
    /// [`ErrorClass::of`] the error code.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::of(&self.error_code)
    }
}

/// The response does not have one result per record sent, so which records
/// were stored is unknown. All of them must be sent again (duplicates are
/// possible: at-least-once).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PutRecords returned {results} results for {} records; outcome unknown, resending all", records.len())]
pub struct ResultCountMismatch {
    /// Every record of the request, in order.
    pub records: Vec<Record>,
    /// How many results the response had.
    pub results: usize,
}

/// Pick the records of a `PutRecords` request that failed, in request
/// order, so only they are retried. `results[i]` is the outcome of
/// `sent[i]`; an entry failed if it has an `error_code`.
///
/// If the counts differ the response is unusable: the error gives every
/// record back to be resent.
pub fn failed_entries(
    sent: Vec<Record>,
    results: &[EntryResult],
) -> Result<Vec<FailedEntry>, ResultCountMismatch> {
    if sent.len() != results.len() {
        return Err(ResultCountMismatch {
            records: sent,
            results: results.len(),
        });
    }
    Ok(sent
        .into_iter()
        .zip(results)
        .filter_map(|(record, result)| {
            result.error_code.as_ref().map(|code| FailedEntry {
                record,
                error_code: code.clone(),
                error_message: result.error_message.clone(),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(key: &str, size: usize) -> Record {
        Record {
            partition_key: key.into(),
            data: vec![b'x'; size.saturating_sub(key.len())],
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn linger_emits_single_record() {
        let t0 = Instant::now();
        let mut b = Batcher::new(ms(500));
        assert_eq!(b.deadline(), None);
        assert_eq!(b.poll(t0), None);
        assert_eq!(b.push(rec("ABCDEF", 50), t0).unwrap(), None);
        assert_eq!(b.deadline(), Some(t0 + ms(500)));
        assert_eq!(b.poll(t0 + ms(499)), None);
        // A second record does not move the deadline.
        assert_eq!(b.push(rec("ABCDEF", 50), t0 + ms(100)).unwrap(), None);
        assert_eq!(b.deadline(), Some(t0 + ms(500)));
        let batch = b.poll(t0 + ms(500)).unwrap();
        assert_eq!(batch.len(), 2);
        assert!(b.is_empty());
        assert_eq!(b.deadline(), None);
        assert_eq!(b.pending_bytes(), 0);

        // One record alone goes once linger has passed.
        b.push(rec("ABCDEF", 50), t0 + ms(600)).unwrap();
        assert_eq!(b.poll(t0 + ms(1099)), None);
        assert_eq!(b.poll(t0 + ms(1100)).unwrap().len(), 1);
    }

    #[test]
    fn push_after_deadline_emits_with_new_record() {
        let t0 = Instant::now();
        let mut b = Batcher::new(ms(10));
        b.push(rec("A", 5), t0).unwrap();
        let batch = b.push(rec("B", 5), t0 + ms(20)).unwrap().unwrap();
        assert_eq!(batch.len(), 2);
        assert!(b.is_empty());
    }

    #[test]
    fn zero_linger_sends_each_record() {
        let t0 = Instant::now();
        let mut b = Batcher::new(Duration::ZERO);
        assert_eq!(b.push(rec("A", 5), t0).unwrap().unwrap().len(), 1);
    }

    #[test]
    fn full_by_count_emits_at_once() {
        let t0 = Instant::now();
        let mut b = Batcher::new(ms(500));
        for i in 0..MAX_RECORDS_PER_REQUEST - 1 {
            assert_eq!(b.push(rec("ABCDEF", 100), t0).unwrap(), None, "{i}");
        }
        let batch = b.push(rec("ABCDEF", 100), t0).unwrap().unwrap();
        assert_eq!(batch.len(), MAX_RECORDS_PER_REQUEST);
        assert!(b.is_empty());
    }

    #[test]
    fn full_by_bytes_emits_previous_batch() {
        let t0 = Instant::now();
        let mut b = Batcher::new(ms(500));
        // Five 1 MiB records make exactly 5 MiB: they all fit.
        for _ in 0..5 {
            assert_eq!(b.push(rec("ABCDEF", MAX_RECORD_BYTES), t0).unwrap(), None);
        }
        assert_eq!(b.pending_bytes(), MAX_REQUEST_BYTES);
        // One more byte does not.
        let batch = b.push(rec("A", 1), t0 + ms(1)).unwrap().unwrap();
        assert_eq!(batch.len(), 5);
        assert_eq!(b.len(), 1);
        assert_eq!(b.deadline(), Some(t0 + ms(501)));
        assert_eq!(b.flush().unwrap().len(), 1);
        assert_eq!(b.flush(), None);
    }

    #[test]
    fn invalid_records_refused() {
        let t0 = Instant::now();
        let mut b = Batcher::new(ms(500));
        assert!(matches!(
            b.push(rec("ABCDEF", MAX_RECORD_BYTES + 1), t0),
            Err(RecordError::TooLarge { .. })
        ));
        assert!(matches!(
            b.push(rec("", 0), t0),
            Err(RecordError::BadPartitionKey { .. })
        ));
        assert!(b.is_empty());
        let mut small = Batcher::with_limits(ms(500), 10, 100).unwrap();
        assert!(matches!(
            small.push(rec("A", 101), t0),
            Err(RecordError::TooLarge { limit: 100, .. })
        ));
        assert!(Batcher::with_limits(ms(1), 0, 100).is_err());
        assert!(Batcher::with_limits(ms(1), 501, 100).is_err());
        assert!(Batcher::with_limits(ms(1), 1, MAX_REQUEST_BYTES + 1).is_err());
    }

    #[test]
    fn check_request_limits() {
        assert_eq!(check_request(&[]), Err(RequestError::Empty));
        assert_eq!(check_request(&[rec("A", 10)]), Ok(()));
        let many = vec![rec("A", 2); 501];
        assert_eq!(check_request(&many), Err(RequestError::TooManyRecords(501)));
        let big = vec![rec("A", MAX_RECORD_BYTES); 6];
        assert_eq!(
            check_request(&big),
            Err(RequestError::TooManyBytes(6 * MAX_RECORD_BYTES))
        );
        assert!(matches!(
            check_request(&[rec("A", 1), rec("A", MAX_RECORD_BYTES + 1)]),
            Err(RequestError::Record { index: 1, .. })
        ));
    }

    #[test]
    fn failed_entries_picks_failures_in_order() {
        let sent: Vec<Record> = (0..6).map(|i| rec(&format!("K{i}"), 10)).collect();
        let results = vec![
            EntryResult::ok(),
            EntryResult::failed(
                "ProvisionedThroughputExceededException",
                "Rate exceeded for shard shardId-000000000001",
            ),
            EntryResult::ok(),
            EntryResult::failed("InternalFailure", "Internal Service Failure"),
            EntryResult {
                error_code: Some("KMSAccessDeniedException".into()),
                error_message: None,
            },
            EntryResult::ok(),
        ];
        let failed = failed_entries(sent.clone(), &results).unwrap();
        let keys: Vec<&str> = failed
            .iter()
            .map(|f| f.record.partition_key.as_str())
            .collect();
        assert_eq!(keys, ["K1", "K3", "K4"]);
        assert_eq!(failed[0].record, sent[1]);
        assert_eq!(failed[0].class(), ErrorClass::Throttled);
        assert_eq!(failed[1].class(), ErrorClass::Transient);
        assert_eq!(
            failed[1].error_message.as_deref(),
            Some("Internal Service Failure")
        );
        assert_eq!(failed[2].class(), ErrorClass::Configuration);
        assert!(!failed[2].class().is_retryable());

        let all_ok = vec![EntryResult::ok(); 6];
        assert!(failed_entries(sent.clone(), &all_ok).unwrap().is_empty());

        let err = failed_entries(sent.clone(), &all_ok[..5]).unwrap_err();
        assert_eq!(err.records, sent);
        assert_eq!(err.results, 5);
    }

    #[test]
    fn classification() {
        use ErrorClass::*;
        for (code, class) in [
            ("ProvisionedThroughputExceededException", Throttled),
            ("KMSThrottlingException", Throttled),
            ("ThrottlingException", Throttled),
            ("InternalFailure", Transient),
            ("ServiceUnavailable", Transient),
            ("KMSAccessDeniedException", Configuration),
            ("KMSDisabledException", Configuration),
            ("KMSInvalidStateException", Configuration),
            ("KMSNotFoundException", Configuration),
            ("KMSOptInRequired", Configuration),
            ("AccessDeniedException", Configuration),
            ("ResourceNotFoundException", Configuration),
            ("InvalidArgumentException", Configuration),
            ("ValidationException", Configuration),
            ("", Unknown),
            ("SomethingNewException", Unknown),
        ] {
            assert_eq!(ErrorClass::of(code), class, "{code}");
        }
        assert!(Throttled.is_retryable());
        assert!(Transient.is_retryable());
        assert!(Unknown.is_retryable());
        assert!(!Configuration.is_retryable());
    }

    /// One step of a random run: a record to push (size, key length), then
    /// a clock advance, then maybe a poll.
    type Step = (usize, usize, u64, bool);

    /// Sizes around every interesting boundary, including over-limit ones.
    fn size_strategy() -> impl Strategy<Value = usize> {
        prop_oneof![
            4 => 0usize..300,
            2 => 0usize..200_000,
            2 => (MAX_RECORD_BYTES - 300)..=(MAX_RECORD_BYTES + 10),
            1 => (MAX_REQUEST_BYTES / 5 - 10)..=(MAX_REQUEST_BYTES / 5 + 10),
        ]
    }

    fn key_len_strategy() -> impl Strategy<Value = usize> {
        prop_oneof![8 => 1usize..=8, 1 => 250usize..=258, 1 => Just(0usize)]
    }

    /// Drive a batcher through `steps`, checking every batch against the
    /// limits and that accepted records come out exactly once, in order.
    /// Records are told apart by (index in key, size).
    fn run(
        mut b: Batcher,
        steps: &[Step],
        max_records: usize,
        max_bytes: usize,
        linger: Duration,
    ) -> Result<(), TestCaseError> {
        let t0 = Instant::now();
        let mut now = t0;
        let mut accepted: Vec<(String, usize)> = Vec::new();
        let mut emitted: Vec<(String, usize)> = Vec::new();
        let check =
            |batch: Vec<Record>, emitted: &mut Vec<(String, usize)>| -> Result<(), TestCaseError> {
                prop_assert!(!batch.is_empty());
                prop_assert!(batch.len() <= max_records);
                prop_assert!(batch.len() <= MAX_RECORDS_PER_REQUEST);
                let bytes: usize = batch.iter().map(Record::encoded_size).sum();
                prop_assert!(bytes <= max_bytes && bytes <= MAX_REQUEST_BYTES);
                prop_assert_eq!(check_request(&batch), Ok(()));
                emitted.extend(batch.into_iter().map(|r| (r.partition_key, r.data.len())));
                Ok(())
            };
        for (i, &(size, key_len, dt, poll)) in steps.iter().enumerate() {
            let mut key = format!("{i:x}");
            key.truncate(key_len);
            while key.len() < key_len {
                key.push('k');
            }
            let r = Record {
                data: vec![0; size.saturating_sub(key.len())],
                partition_key: key,
            };
            let valid = r.validate().is_ok() && r.encoded_size() <= max_bytes;
            let id = (r.partition_key.clone(), r.data.len());
            let first_before = b.deadline();
            match b.push(r, now) {
                Ok(ready) => {
                    prop_assert!(valid);
                    accepted.push(id);
                    if let Some(batch) = ready {
                        check(batch, &mut emitted)?;
                    }
                }
                Err(_) => {
                    prop_assert!(!valid);
                    prop_assert_eq!(b.deadline(), first_before);
                }
            }
            prop_assert!(b.len() < max_records);
            prop_assert!(b.pending_bytes() <= max_bytes);
            now += Duration::from_millis(dt);
            if poll {
                let deadline = b.deadline();
                match b.poll(now) {
                    Some(batch) => {
                        prop_assert!(deadline.is_some_and(|d| d <= now));
                        check(batch, &mut emitted)?;
                    }
                    None => prop_assert!(deadline.is_none_or(|d| d > now)),
                }
                // Nothing overdue is ever left behind after a poll.
                prop_assert!(b.deadline().is_none_or(|d| d > now));
                prop_assert!(b.deadline().is_none_or(|d| d <= now + linger));
            }
        }
        if let Some(batch) = b.flush() {
            check(batch, &mut emitted)?;
        }
        prop_assert!(b.is_empty());
        prop_assert_eq!(emitted, accepted);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Kinesis limits, record sizes up to and over 1 MiB.
        #[test]
        fn batches_within_kinesis_limits(
            linger_ms in 0u64..1000,
            steps in proptest::collection::vec((size_strategy(), key_len_strategy(), 0u64..400, any::<bool>()), 0..40),
        ) {
            let linger = Duration::from_millis(linger_ms);
            run(Batcher::new(linger), &steps, MAX_RECORDS_PER_REQUEST, MAX_REQUEST_BYTES, linger)?;
        }
    }

    proptest! {
        /// Tight limits so that count and byte boundaries are hit all the
        /// time.
        #[test]
        fn batches_within_tight_limits(
            linger_ms in 0u64..100,
            max_records in 1usize..8,
            max_bytes in 1usize..300,
            steps in proptest::collection::vec((0usize..320, 1usize..=4, 0u64..60, any::<bool>()), 0..200),
        ) {
            let linger = Duration::from_millis(linger_ms);
            let b = Batcher::with_limits(linger, max_records, max_bytes).unwrap();
            run(b, &steps, max_records, max_bytes, linger)?;
        }
    }
}
