//! Invoice types: what clients send, what they get back, and the row in between.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::{IntoParams, ToSchema};

use crate::error::{AppError, Result};
use crate::validate::{self, Validate};

/// Most invoices one bulk request may create.
pub const MAX_BULK: usize = 1000;
const MAX_CUSTOMER_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Draft,
    Sent,
    Paid,
    Overdue,
}

impl InvoiceStatus {
    pub const ALL: [Self; 4] = [Self::Draft, Self::Sent, Self::Paid, Self::Overdue];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Sent => "sent",
            Self::Paid => "paid",
            Self::Overdue => "overdue",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invoice {
    pub id: i64,
    pub customer: String,
    /// Amount in the currency's minor unit (cents).
    pub amount_cents: i64,
    pub currency: String,
    pub status: InvoiceStatus,
    pub issued_on: NaiveDate,
    pub due_on: NaiveDate,
    /// When the invoice was marked paid (RFC 3339), if it is paid.
    pub paid_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The columns every invoice query selects, in `InvoiceRow` order.
pub const COLUMNS: &str = "invoice_id, customer, amount_cents, currency, status, issued_on, due_on, paid_at, created_at, updated_at";

#[derive(Debug, FromRow)]
pub struct InvoiceRow {
    pub invoice_id: i64,
    pub customer: String,
    pub amount_cents: i64,
    pub currency: String,
    pub status: String,
    pub issued_on: String,
    pub due_on: String,
    pub paid_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl TryFrom<InvoiceRow> for Invoice {
    type Error = AppError;

    fn try_from(row: InvoiceRow) -> Result<Self> {
        let corrupt = |what: &str| {
            AppError::internal(anyhow::anyhow!(
                "invoice {} has a bad {what}",
                row.invoice_id
            ))
        };
        Ok(Self {
            id: row.invoice_id,
            status: InvoiceStatus::parse(&row.status).ok_or_else(|| corrupt("status"))?,
            issued_on: row.issued_on.parse().map_err(|_| corrupt("issued_on"))?,
            due_on: row.due_on.parse().map_err(|_| corrupt("due_on"))?,
            customer: row.customer,
            amount_cents: row.amount_cents,
            currency: row.currency,
            paid_at: row.paid_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvoice {
    /// 1–200 characters after trimming, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub customer: String,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub amount_cents: i64,
    /// Three-letter currency code; defaults to USD.
    #[serde(default = "default_currency")]
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub currency: String,
    /// Defaults to `draft`.
    #[serde(default = "default_status")]
    pub status: InvoiceStatus,
    /// Defaults to today (UTC).
    #[serde(default, deserialize_with = "validate::optional_date")]
    pub issued_on: Option<NaiveDate>,
    /// Defaults to 30 days after `issued_on`; never before `issued_on` (422).
    #[serde(default, deserialize_with = "validate::optional_date")]
    pub due_on: Option<NaiveDate>,
}

fn default_currency() -> String {
    "USD".to_owned()
}

fn default_status() -> InvoiceStatus {
    InvoiceStatus::Draft
}

/// An invoice ready to insert: validated, defaults filled in.
#[derive(Debug, Clone)]
pub struct InvoiceFields {
    pub customer: String,
    pub amount_cents: i64,
    pub currency: String,
    pub status: InvoiceStatus,
    pub issued_on: NaiveDate,
    pub due_on: NaiveDate,
}

impl InvoiceFields {
    fn check(&mut self, field_prefix: &str) -> Result<()> {
        let field = |name: &str| format!("{field_prefix}{name}");
        self.customer =
            validate::text_field(&field("customer"), &self.customer, MAX_CUSTOMER_CHARS)?;
        validate::amount_cents(&field("amount_cents"), self.amount_cents)?;
        validate::currency(&field("currency"), &self.currency)?;
        if self.due_on < self.issued_on {
            return Err(AppError::validation(format!(
                "`{}` must not be before `{}`",
                field("due_on"),
                field("issued_on")
            )));
        }
        Ok(())
    }
}

impl NewInvoice {
    /// Fills defaults and validates; `field_prefix` names the item in bulk errors.
    pub fn into_fields(self, today: NaiveDate, field_prefix: &str) -> Result<InvoiceFields> {
        let issued_on = self.issued_on.unwrap_or(today);
        let due_on = match self.due_on {
            Some(due_on) => due_on,
            None => validate::days_after(&format!("{field_prefix}due_on"), issued_on, 30)?,
        };
        let mut fields = InvoiceFields {
            customer: self.customer,
            amount_cents: self.amount_cents,
            currency: self.currency,
            status: self.status,
            issued_on,
            due_on,
        };
        fields.check(field_prefix)?;
        Ok(fields)
    }
}

/// A partial update: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoicePatch {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub customer: Option<String>,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub amount_cents: Option<i64>,
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub currency: Option<String>,
    pub status: Option<InvoiceStatus>,
    #[serde(default, deserialize_with = "validate::optional_date")]
    pub issued_on: Option<NaiveDate>,
    /// Never before `issued_on`, as patched or as stored (422).
    #[serde(default, deserialize_with = "validate::optional_date")]
    pub due_on: Option<NaiveDate>,
}

impl InvoicePatch {
    /// The invoice after the patch, validated as a whole (so `due_on` is checked against
    /// the stored `issued_on` too).
    pub fn apply(self, current: &Invoice) -> Result<InvoiceFields> {
        let mut fields = InvoiceFields {
            customer: self.customer.unwrap_or_else(|| current.customer.clone()),
            amount_cents: self.amount_cents.unwrap_or(current.amount_cents),
            currency: self.currency.unwrap_or_else(|| current.currency.clone()),
            status: self.status.unwrap_or(current.status),
            issued_on: self.issued_on.unwrap_or(current.issued_on),
            due_on: self.due_on.unwrap_or(current.due_on),
        };
        fields.check("")?;
        Ok(fields)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkInvoices {
    /// 1 to 1000 invoices, created in one transaction: all or none.
    #[schema(min_items = 1, max_items = 1000)]
    pub invoices: Vec<NewInvoice>,
}

impl Validate for BulkInvoices {
    fn validate(&mut self) -> Result<()> {
        match self.invoices.len() {
            0 => Err(AppError::validation("`invoices` must not be empty")),
            n if n > MAX_BULK => Err(AppError::validation(format!(
                "`invoices` has {n} items; at most {MAX_BULK} are allowed per request"
            ))),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkCreated {
    pub created: usize,
    /// Ids of the new invoices, in request order.
    pub ids: Vec<i64>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvoiceListQuery {
    /// Only this customer's invoices (exact match).
    pub customer: Option<String>,
    pub status: Option<InvoiceStatus>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    #[param(pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_invoice(json: &str) -> NewInvoice {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_and_due_date_rule() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let fields = new_invoice(r#"{"customer":"ABC","amount_cents":100}"#)
            .into_fields(today, "")
            .unwrap();
        assert_eq!(
            (fields.currency.as_str(), fields.status),
            ("USD", InvoiceStatus::Draft)
        );
        assert_eq!(
            fields.due_on,
            NaiveDate::from_ymd_opt(2026, 12, 28).unwrap()
        );
        let early = new_invoice(
            r#"{"customer":"ABC","amount_cents":1,"issued_on":"2026-11-02","due_on":"2026-11-01"}"#,
        );
        assert!(early.into_fields(today, "").is_err());
    }

    #[test]
    fn serde_rejects_what_types_can_express() {
        for bad in [
            r#"{"customer":"A","amount_cents":"1"}"#,
            r#"{"customer":"A","amount_cents":1,"status":"lost"}"#,
            r#"{"customer":"A","amount_cents":1,"issued_on":"2026-13-01"}"#,
            r#"{"customer":"A","amount_cents":1,"colour":"red"}"#,
        ] {
            assert!(serde_json::from_str::<NewInvoice>(bad).is_err(), "{bad}");
        }
    }
}
