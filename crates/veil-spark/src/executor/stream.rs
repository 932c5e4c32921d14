//! Runs the scan's query and reads its whole result, reattaching until Spark says the
//! result is complete.
//!
//! A Spark Connect server ends a reattachable result stream after a while (two minutes by
//! default, `spark.connect.execute.reattachable.senderMaxStreamDuration`) and expects the
//! client to resume it with `ReattachExecute`. `apache-spark-connect` 4.2.0's
//! `DataFrame::collect` takes such an end for the end of the result, so on a query that
//! runs longer it returns the rows sent so far as if they were all. That is fine for the
//! short statements the executor sends through it, not for the scan. This module sends
//! the scan's query through the same client's lower layer and reads until
//! `ResultComplete`: an end of stream before it reattaches from the last response, and a
//! result is never taken as complete without it.

// The client's error type is large (it carries Spark's whole error); it never travels
// further than the executor, which turns it into an `EngineError`.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::io::Cursor;
use std::time::Duration;

use arrow_spark_connect::array::{Array, AsArray};
use arrow_spark_connect::datatypes::{DataType, Int32Type, Int64Type};
use arrow_spark_connect::ipc::reader::StreamReader;
use proto::execute_plan_response::{ExecutionProgress, ResponseType};
use spark_connect::plan::LogicalPlan;
use spark_connect::row::{Row, Value};
use spark_connect::{Expression, SparkError, SparkSession};
use spark_connect_core::block_on;
use spark_connect_core::channel::ChannelBuilder;
use spark_connect_core::client::SparkConnectClient;
use spark_connect_core::reattach::ExecutePlanResponseReattachableIterator;
use spark_connect_core::retries::RetryPolicy;
use spark_connect_proto as proto;

/// How many times one query may be resumed (after the server ended its stream, or after
/// the connection dropped) before the executor gives up: with the server's default of two
/// minutes per stream, about a day.
const MAX_REATTACHES: usize = 720;

/// How many times in a row a dropped connection is resumed before the query is given up;
/// with waits of 2, 4, 8, 16, 32 and 32 s, about 1.5 minutes.
const MAX_FAILURES_IN_A_ROW: u32 = 6;

/// A client on the session's server-side session, for the scan's query.
pub(crate) struct ResultStream {
    client: SparkConnectClient,
    session_id: String,
}

impl ResultStream {
    /// A client for the same server and server-side session as `session` (so the query
    /// sees the session's temporary views and settings).
    pub(crate) fn new(url: &str, session: &SparkSession) -> Result<Self, SparkError> {
        let session_id = session.session_id().to_string();
        let url = with_session_id(url, &session_id);
        let builder = ChannelBuilder::parse(&url)?;
        let client = block_on(SparkConnectClient::connect(&builder))?;
        Ok(Self { client, session_id })
    }

    /// Runs `query` with `named_args` bound, calls `on_progress` with Spark's progress
    /// reports, and returns every row of the result.
    ///
    /// # Errors
    /// Spark's error if the query fails; a connection error if the connection stays
    /// down (a dropped connection is resumed up to [`MAX_FAILURES_IN_A_ROW`] times in a
    /// row) or the stream keeps ending before Spark reports the result complete.
    pub(crate) fn collect(
        &self,
        query: &str,
        named_args: HashMap<String, Expression>,
        on_progress: &dyn Fn(&ExecutionProgress),
    ) -> Result<Vec<Row>, SparkError> {
        let relation = LogicalPlan::Sql {
            query: query.to_string(),
            pos_args: Vec::new(),
            named_args,
        }
        .to_proto();
        let request = proto::ExecutePlanRequest {
            session_id: self.session_id.clone(),
            user_context: Some(proto::UserContext::default()),
            plan: Some(proto::Plan {
                op_type: Some(proto::plan::OpType::Root(relation)),
            }),
            ..Default::default()
        };
        // Sets an operation id and asks for a reattachable execution.
        let operation = ExecutePlanResponseReattachableIterator::new(request);
        let mut stream = block_on(self.client.execute_plan(operation.request().clone()))?;
        let mut rows = Vec::new();
        let mut reattaches = 0;
        loop {
            let message = match block_on(stream.message()) {
                Ok(message) => message,
                Err(status)
                    if RetryPolicy::default().can_retry(&status)
                        || transport_failure(i32::from(status.code()), status.message()) =>
                {
                    // The connection dropped; the query still runs on the server: resume
                    // it, waiting longer after each failed attempt.
                    let mut last = SparkError::from_grpc_status(status);
                    reattaches += 1;
                    if reattaches > MAX_REATTACHES {
                        return Err(last);
                    }
                    let mut resumed = None;
                    for attempt in 1..=MAX_FAILURES_IN_A_ROW {
                        std::thread::sleep(Duration::from_secs(1 << attempt.min(5)));
                        let reattach = block_on(operation.create_reattach_request());
                        match block_on(self.client.reattach_execute(reattach)) {
                            Ok(fresh) => {
                                resumed = Some(fresh);
                                break;
                            }
                            Err(error) => last = error,
                        }
                    }
                    stream = resumed.ok_or(last)?;
                    continue;
                }
                // Anything else is the query's own failure.
                Err(status) => return Err(SparkError::from_grpc_status(status)),
            };
            match message {
                Some(response) => {
                    block_on(operation.set_last_response_id(&response));
                    match &response.response_type {
                        Some(ResponseType::ArrowBatch(batch)) => {
                            rows.extend(decode(&batch.data)?);
                        }
                        Some(ResponseType::ExecutionProgress(progress)) => on_progress(progress),
                        _ => {}
                    }
                    if block_on(operation.is_completed()) {
                        break;
                    }
                }
                None => {
                    // The server ended this stream before the result was complete: resume
                    // after the last response read.
                    reattaches += 1;
                    if reattaches > MAX_REATTACHES {
                        return Err(SparkError::connect_msg(format!(
                            "the result stream ended {MAX_REATTACHES} times before Spark reported the result complete"
                        )));
                    }
                    let reattach = block_on(operation.create_reattach_request());
                    stream = block_on(self.client.reattach_execute(reattach))?;
                }
            }
        }
        // The result is read: let the server drop what it kept for a reattach. A failure
        // here changes nothing (the server drops it anyway when the session ends).
        let release = proto::ReleaseExecuteRequest {
            session_id: self.session_id.clone(),
            user_context: Some(proto::UserContext::default()),
            operation_id: operation.operation_id().to_string(),
            release: Some(proto::release_execute_request::Release::ReleaseAll(
                proto::release_execute_request::ReleaseAll {},
            )),
            ..Default::default()
        };
        let _ = block_on(self.client.release_execute(release));
        Ok(rows)
    }
}

/// gRPC's status code UNKNOWN (the numbers are part of the gRPC protocol).
const GRPC_UNKNOWN: i32 = 2;

/// Whether a stream failed because the connection dropped rather than because the query
/// failed, beyond the client's own rule (UNAVAILABLE, or the server's
/// `INVALID_CURSOR.DISCONNECTED`): the transport's errors, which the gRPC library reports
/// as UNKNOWN (a reset connection is `h2 protocol error: error reading a body from
/// connection`).
fn transport_failure(code: i32, message: &str) -> bool {
    code == GRPC_UNKNOWN
        && (message.starts_with("h2 protocol error") || message.starts_with("transport error"))
}

/// The address with the session's id as a parameter (`sc://host:port/;session_id=...`).
fn with_session_id(url: &str, session_id: &str) -> String {
    if url.contains(";session_id=") {
        url.to_string()
    } else if url.contains("/;") {
        format!("{url};session_id={session_id}")
    } else {
        format!("{}/;session_id={session_id}", url.trim_end_matches('/'))
    }
}

/// The rows of one Arrow IPC stream. The scan's result has only text and integer columns
/// (see `crate::sql`); anything else is reported as a bug.
fn decode(data: &[u8]) -> Result<Vec<Row>, SparkError> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let arrow_error =
        |error: arrow_spark_connect::error::ArrowError| SparkError::connect_msg(error.to_string());
    let reader = StreamReader::try_new(Cursor::new(data), None).map_err(arrow_error)?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(arrow_error)?;
        let schema = batch.schema();
        let names: Vec<String> = schema
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        for row in 0..batch.num_rows() {
            let mut values = Vec::with_capacity(batch.num_columns());
            for column in batch.columns() {
                values.push(value(column.as_ref(), row)?);
            }
            rows.push(Row::new(names.clone(), values));
        }
    }
    Ok(rows)
}

fn value(column: &dyn Array, row: usize) -> Result<Value, SparkError> {
    if column.is_null(row) {
        return Ok(Value::Null);
    }
    Ok(match column.data_type() {
        DataType::Utf8 => Value::String(column.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::String(column.as_string::<i64>().value(row).to_string()),
        DataType::Int32 => Value::Integer(column.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Value::Long(column.as_primitive::<Int64Type>().value(row)),
        other => {
            return Err(SparkError::connect_msg(format!(
                "unexpected Arrow type {other} in the scan's result"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_connections_are_transport_failures() {
        assert!(transport_failure(
            GRPC_UNKNOWN,
            "h2 protocol error: error reading a body from connection"
        ));
        assert!(transport_failure(GRPC_UNKNOWN, "transport error"));
        // A query's own failure is not resumed.
        assert!(!transport_failure(
            GRPC_UNKNOWN,
            "[DIVIDE_BY_ZERO] Division by zero"
        ));
        assert!(!transport_failure(13, "h2 protocol error"));
    }

    #[test]
    fn the_session_id_joins_the_address_parameters() {
        assert_eq!(
            with_session_id("sc://localhost:15002", "abc"),
            "sc://localhost:15002/;session_id=abc"
        );
        assert_eq!(
            with_session_id("sc://host:15002/;use_ssl=true", "abc"),
            "sc://host:15002/;use_ssl=true;session_id=abc"
        );
        assert_eq!(
            with_session_id("sc://host:15002/;session_id=xyz", "abc"),
            "sc://host:15002/;session_id=xyz"
        );
    }
}
