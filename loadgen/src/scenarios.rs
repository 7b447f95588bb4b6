//! The traffic mix: a weighted set of the API's routes, like a small business's staff
//! would produce (mostly reads, dashboard and lists first, some writes, a few bulk
//! imports). Each pick builds one concrete request.

use serde_json::{Value, json};

/// What one request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Dashboard,
    ListInvoices,
    ListJobs,
    GetPreferences,
    GetInvoice,
    CreateInvoice,
    CreateJob,
    BulkInvoices,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Self::Dashboard,
        Self::ListInvoices,
        Self::ListJobs,
        Self::GetPreferences,
        Self::GetInvoice,
        Self::CreateInvoice,
        Self::CreateJob,
        Self::BulkInvoices,
    ];

    /// The route label used in records and reports: method plus route template.
    pub fn route(self) -> &'static str {
        match self {
            Self::Dashboard => "GET /api/dashboard",
            Self::ListInvoices => "GET /api/invoices",
            Self::ListJobs => "GET /api/jobs",
            Self::GetPreferences => "GET /api/users/{user_id}/preferences",
            Self::GetInvoice => "GET /api/invoices/{id}",
            Self::CreateInvoice => "POST /api/invoices",
            Self::CreateJob => "POST /api/jobs",
            Self::BulkInvoices => "POST /api/invoices/bulk",
        }
    }

    /// The name used in `--weights`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dashboard => "dashboard",
            Self::ListInvoices => "list_invoices",
            Self::ListJobs => "list_jobs",
            Self::GetPreferences => "get_preferences",
            Self::GetInvoice => "get_invoice",
            Self::CreateInvoice => "create_invoice",
            Self::CreateJob => "create_job",
            Self::BulkInvoices => "bulk_invoices",
        }
    }

    /// Default weight out of 1000: about 97% reads, as in a back-office app where
    /// staff look far more often than they write (3% writes, 1 in 1000 a bulk import).
    pub fn default_weight(self) -> u32 {
        match self {
            Self::Dashboard => 280,
            Self::ListInvoices => 220,
            Self::ListJobs => 160,
            Self::GetPreferences => 130,
            Self::GetInvoice => 180,
            Self::CreateInvoice => 19,
            Self::CreateJob => 10,
            Self::BulkInvoices => 1,
        }
    }
}

/// A concrete request: method, path and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRequest {
    pub action: Action,
    pub method: &'static str,
    pub path: String,
    pub body: Option<Value>,
}

/// Weighted choice over actions, driven by a caller-supplied number so it is
/// deterministic per user (and testable).
#[derive(Debug, Clone)]
pub struct Mix {
    cumulative: Vec<(u32, Action)>,
    total: u32,
}

impl Mix {
    pub fn new(weights: &[(Action, u32)]) -> Option<Self> {
        let mut total = 0;
        let mut cumulative = Vec::new();
        for (action, weight) in weights {
            if *weight > 0 {
                total += weight;
                cumulative.push((total, *action));
            }
        }
        (total > 0).then_some(Self { cumulative, total })
    }

    pub fn standard() -> Self {
        let weights: Vec<(Action, u32)> = Action::ALL
            .iter()
            .map(|a| (*a, a.default_weight()))
            .collect();
        Self::new(&weights).unwrap_or(Self {
            cumulative: vec![(1, Action::Dashboard)],
            total: 1,
        })
    }

    /// Parses `dashboard=250,get_invoice=100`: the listed actions with these weights,
    /// every other action left out.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut weights = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not NAME=WEIGHT"))?;
            let action = Action::ALL
                .into_iter()
                .find(|a| a.name() == name.trim())
                .ok_or_else(|| {
                    let names: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
                    format!(
                        "unknown action `{}`; known: {}",
                        name.trim(),
                        names.join(", ")
                    )
                })?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("`{}` is not a whole-number weight", weight.trim()))?;
            weights.push((action, weight));
        }
        Self::new(&weights).ok_or_else(|| "the weights add up to zero".to_owned())
    }

    pub fn pick(&self, random: u64) -> Action {
        let point = u32::try_from(random % u64::from(self.total)).unwrap_or(0);
        self.cumulative
            .iter()
            .find(|(upto, _)| point < *upto)
            .map_or(Action::Dashboard, |(_, action)| *action)
    }
}

/// Builds the request for `action`. `n` varies paths and bodies; `invoice_ids` are ids
/// known to exist (seeded), so single reads hit real rows.
pub fn plan_request(action: Action, n: u64, invoice_ids: &[i64]) -> PlannedRequest {
    let customer = format!("Customer {}", n % 50);
    let (method, path, body) = match action {
        Action::Dashboard => ("GET", "/api/dashboard".to_owned(), None),
        // One list read in ten filters by customer: fifty keys, rarely cached.
        Action::ListInvoices if n.is_multiple_of(10) => (
            "GET",
            format!("/api/invoices?customer={}", customer.replace(' ', "%20")),
            None,
        ),
        Action::ListInvoices => ("GET", "/api/invoices?limit=50".to_owned(), None),
        Action::ListJobs => ("GET", "/api/jobs?status=scheduled".to_owned(), None),
        Action::GetPreferences => (
            "GET",
            format!("/api/users/user-{}/preferences", n % 20),
            None,
        ),
        Action::GetInvoice => {
            let id = if invoice_ids.is_empty() {
                1
            } else {
                invoice_ids[(n as usize) % invoice_ids.len()]
            };
            ("GET", format!("/api/invoices/{id}"), None)
        }
        Action::CreateInvoice => (
            "POST",
            "/api/invoices".to_owned(),
            Some(
                json!({"customer": customer, "amount_cents": 1000 + (n % 90_000), "status": "sent"}),
            ),
        ),
        Action::CreateJob => (
            "POST",
            "/api/jobs".to_owned(),
            Some(
                json!({"customer": customer, "title": "Service visit", "scheduled_on": "2026-12-15"}),
            ),
        ),
        Action::BulkInvoices => {
            let invoices: Vec<Value> =
                (0..50).map(|i| json!({"customer": format!("Import {}", (n + i) % 50), "amount_cents": 500 + i})).collect();
            (
                "POST",
                "/api/invoices/bulk".to_owned(),
                Some(json!({ "invoices": invoices })),
            )
        }
    };
    PlannedRequest {
        action,
        method,
        path,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_follow_the_weights() {
        let mix = Mix::standard();
        let mut counts = std::collections::HashMap::new();
        for i in 0..100_000u64 {
            *counts
                .entry(mix.pick(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7))
                .or_insert(0u32) += 1;
        }
        let share = |a: Action| f64::from(counts[&a]) / 100_000.0;
        assert!((share(Action::Dashboard) - 0.28).abs() < 0.01);
        assert!((share(Action::CreateInvoice) - 0.019).abs() < 0.005);
        assert!(counts.get(&Action::BulkInvoices).copied().unwrap_or(0) > 0);
    }

    #[test]
    fn zero_weights_are_left_out_and_all_zero_is_none() {
        let mix = Mix::new(&[(Action::Dashboard, 0), (Action::ListJobs, 5)]).unwrap();
        assert!((0..100).all(|i| mix.pick(i) == Action::ListJobs));
        assert!(Mix::new(&[(Action::Dashboard, 0)]).is_none());
    }

    #[test]
    fn weights_parse_from_the_command_line() {
        let mix = Mix::parse("dashboard=3, get_invoice=1").unwrap();
        let dashboards = (0..4000u64)
            .filter(|i| mix.pick(*i) == Action::Dashboard)
            .count();
        assert_eq!(dashboards, 3000);
        assert!(
            Mix::parse("dashbord=1")
                .unwrap_err()
                .contains("known: dashboard")
        );
        assert!(Mix::parse("dashboard").is_err());
        assert!(Mix::parse("dashboard=-1").is_err());
        assert!(Mix::parse("dashboard=0").is_err());
    }

    #[test]
    fn requests_are_concrete() {
        let request = plan_request(Action::GetInvoice, 7, &[10, 20, 30]);
        assert_eq!(
            (request.method, request.path.as_str()),
            ("GET", "/api/invoices/20")
        );
        let bulk = plan_request(Action::BulkInvoices, 1, &[]);
        assert_eq!(bulk.body.unwrap()["invoices"].as_array().unwrap().len(), 50);
        assert_eq!(Action::GetInvoice.route(), "GET /api/invoices/{id}");
    }
}
