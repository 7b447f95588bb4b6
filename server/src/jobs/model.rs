//! Job types: scheduled work for a customer.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::{IntoParams, ToSchema};

use crate::error::{AppError, Result};
use crate::validate;

const MAX_TEXT_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Scheduled,
    InProgress,
    Done,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [Self; 4] = [
        Self::Scheduled,
        Self::InProgress,
        Self::Done,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::InProgress => "in_progress",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Job {
    pub id: i64,
    pub customer: String,
    pub title: String,
    pub status: JobStatus,
    pub scheduled_on: NaiveDate,
    pub created_at: String,
    pub updated_at: String,
}

/// The columns every job query selects, in `JobRow` order.
pub const COLUMNS: &str = "job_id, customer, title, status, scheduled_on, created_at, updated_at";

#[derive(Debug, FromRow)]
pub struct JobRow {
    pub job_id: i64,
    pub customer: String,
    pub title: String,
    pub status: String,
    pub scheduled_on: String,
    pub created_at: String,
    pub updated_at: String,
}

impl TryFrom<JobRow> for Job {
    type Error = AppError;

    fn try_from(row: JobRow) -> Result<Self> {
        let corrupt =
            |what: &str| AppError::internal(anyhow::anyhow!("job {} has a bad {what}", row.job_id));
        Ok(Self {
            id: row.job_id,
            status: JobStatus::parse(&row.status).ok_or_else(|| corrupt("status"))?,
            scheduled_on: row
                .scheduled_on
                .parse()
                .map_err(|_| corrupt("scheduled_on"))?,
            customer: row.customer,
            title: row.title,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    /// 1–200 characters after trimming, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub customer: String,
    /// 1–200 characters after trimming, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub title: String,
    /// Defaults to `scheduled`.
    #[serde(default = "default_status")]
    pub status: JobStatus,
    #[serde(deserialize_with = "validate::date")]
    pub scheduled_on: NaiveDate,
}

fn default_status() -> JobStatus {
    JobStatus::Scheduled
}

/// A job ready to write: validated.
#[derive(Debug, Clone)]
pub struct JobFields {
    pub customer: String,
    pub title: String,
    pub status: JobStatus,
    pub scheduled_on: NaiveDate,
}

impl JobFields {
    fn checked(mut self) -> Result<Self> {
        self.customer = validate::text_field("customer", &self.customer, MAX_TEXT_CHARS)?;
        self.title = validate::text_field("title", &self.title, MAX_TEXT_CHARS)?;
        Ok(self)
    }
}

impl NewJob {
    pub fn into_fields(self) -> Result<JobFields> {
        JobFields {
            customer: self.customer,
            title: self.title,
            status: self.status,
            scheduled_on: self.scheduled_on,
        }
        .checked()
    }
}

/// A partial update: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobPatch {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub customer: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub title: Option<String>,
    pub status: Option<JobStatus>,
    #[serde(default, deserialize_with = "validate::optional_date")]
    pub scheduled_on: Option<NaiveDate>,
}

impl JobPatch {
    pub fn apply(self, current: &Job) -> Result<JobFields> {
        JobFields {
            customer: self.customer.unwrap_or_else(|| current.customer.clone()),
            title: self.title.unwrap_or_else(|| current.title.clone()),
            status: self.status.unwrap_or(current.status),
            scheduled_on: self.scheduled_on.unwrap_or(current.scheduled_on),
        }
        .checked()
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    pub status: Option<JobStatus>,
    /// Only jobs scheduled on or after this date.
    #[serde(default, deserialize_with = "validate::optional_date")]
    pub from: Option<NaiveDate>,
    /// Only jobs scheduled on or before this date.
    #[serde(default, deserialize_with = "validate::optional_date")]
    pub to: Option<NaiveDate>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    #[param(pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

impl JobListQuery {
    pub fn check_range(&self) -> Result<()> {
        match (self.from, self.to) {
            (Some(from), Some(to)) if to < from => Err(AppError::bad_request(
                "invalid_range",
                "`to` is before `from`",
            )),
            _ => Ok(()),
        }
    }
}
