//! [`PutRecordsApi`] over the AWS SDK: one `PutRecords` call per batch
//! (Kinesis API reference, PutRecords), its per-entry results kept in
//! order so failed entries can be retried alone.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use super::batch::{EntryResult, ErrorClass};
use super::record::Record;
use super::send::{PutRecordsApi, RequestFailure};
use super::target::StreamId;
use crate::aws::{classify, Kinesis};

impl PutRecordsApi for Kinesis {
    async fn put_records(&self, records: &[Record]) -> Result<Vec<EntryResult>, RequestFailure> {
        let mut entries = Vec::with_capacity(records.len());
        for r in records {
            let e = PutRecordsRequestEntry::builder()
                .partition_key(r.partition_key.clone())
                .data(Blob::new(r.data.clone()))
                .build()
                .map_err(|e| RequestFailure {
                    class: ErrorClass::Configuration,
                    outcome_unknown: false,
                    code: None,
                    message: e.to_string(),
                })?;
            entries.push(e);
        }
        let req = self.client.put_records().set_records(Some(entries));
        let req = match &self.stream {
            StreamId::Name(n) => req.stream_name(n),
            StreamId::Arn(a) => req.stream_arn(a),
        };
        let out = req.send().await.map_err(|e| classify(&e))?;
        Ok(out
            .records()
            .iter()
            .map(|r| EntryResult {
                error_code: r.error_code().map(str::to_owned),
                error_message: r.error_message().map(str::to_owned),
            })
            .collect())
    }
}
