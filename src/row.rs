//! Reading rows by column name, without panics.
//!
//! Rows come back from steps that may already have committed (a claim has leased its tasks
//! before its answer is read), and their columns may hold anything plain SQL put there: the
//! tables are the original system's, open to its users. So a value this library cannot read
//! is an error that names the column and the row it came from, never a panic, and columns are
//! found by name, so the answer's layout is defined once, next to its SELECT.

use crate::error::{Code, Error, Result};
use mysql::Row;
use mysql::prelude::FromValue;
use serde_json::json;
use std::fmt::Debug;

/// One row and what it describes (`"task 12"`, `"type 3"`), for the errors.
pub(crate) struct Columns {
    row: Row,
    subject: String,
}

impl Columns {
    pub(crate) fn new(row: Row, subject: impl Into<String>) -> Columns {
        Columns {
            row,
            subject: subject.into(),
        }
    }

    /// Names the row more precisely once its id is known.
    pub(crate) fn about(&mut self, subject: impl Into<String>) {
        self.subject = subject.into();
    }

    /// The value of `column` as `T`. A missing column is this library's bug; a value of
    /// another type (a row changed by hand) is the row's: both are reported, neither panics.
    pub(crate) fn get<T: FromValue>(&mut self, column: &str) -> Result<T> {
        match self.row.take_opt::<T, &str>(column) {
            Some(Ok(value)) => Ok(value),
            Some(Err(e)) => Err(unreadable(&self.subject, column, &e.0)),
            None => Err(Error::new(
                Code::Database,
                format!(
                    "{}: the answer has no column `{column}` (the database's procedures may be \
                     of another release: run the migrations)",
                    self.subject
                ),
            )
            .with_details(json!({"column": column, "row": self.subject}))),
        }
    }

    /// The text of `column` read by `parse` (a status, say: its ENUM column holds its empty
    /// value `''` on a non-strict server for anything else written to it).
    pub(crate) fn parsed<T>(
        &mut self,
        column: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T> {
        let text: String = self.get(column)?;
        parsed(&self.subject, column, &text, parse)
    }

    /// The row's `id` column, which then names the row in later errors as `<kind> <id>`.
    pub(crate) fn id(&mut self, kind: &str) -> Result<i64> {
        let id: i64 = self.get("id")?;
        self.about(format!("{kind} {id}"));
        Ok(id)
    }
}

/// `text`, read from `column` of `subject`, read by `parse`; what it refuses is the row's error.
pub(crate) fn parsed<T>(
    subject: &str,
    column: &str,
    text: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T> {
    parse(text).ok_or_else(|| unreadable(subject, column, &text))
}

/// A value of `column` this library cannot read: the row's, reported with both names.
pub(crate) fn unreadable(subject: &str, column: &str, value: &dyn Debug) -> Error {
    Error::new(
        Code::Database,
        format!(
            "{subject}: column `{column}` holds a value this library cannot read ({value:?}); \
             correct the row with plain SQL"
        ),
    )
    .with_details(json!({"column": column, "row": subject}))
}

/// Decodes every row with `decode`, stopping at the first value it cannot read.
pub(crate) fn decode_all<T>(
    rows: Vec<Row>,
    subject: &str,
    mut decode: impl FnMut(&mut Columns) -> Result<T>,
) -> Result<Vec<T>> {
    rows.into_iter()
        .map(|row| decode(&mut Columns::new(row, subject)))
        .collect()
}
