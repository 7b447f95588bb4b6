//! A tiny WHERE-clause builder with numbered `$n` placeholders, which both SQLite and
//! PostgreSQL accept through the `Any` driver. Optional filters become absent clauses
//! rather than `($n IS NULL OR col = $n)`, which would keep the planner off the indexes.

use sqlx::any::AnyArguments;
use sqlx::query::QueryAs;
use sqlx::{Any, FromRow};

#[derive(Debug, Clone)]
pub enum Arg {
    Int(i64),
    Text(String),
}

#[derive(Debug, Default)]
pub struct Filter {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl Filter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `column op $n`. `column` and `op` must be constants, never client input.
    pub fn push(&mut self, column: &'static str, op: &'static str, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.clauses
            .push(format!("{column} {op} ${}", self.args.len()));
        self
    }

    /// The next placeholder number, for a LIMIT after the filter.
    pub fn next_placeholder(&self) -> usize {
        self.args.len() + 1
    }

    pub fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub fn bind<'q, O>(
        self,
        mut query: QueryAs<'q, Any, O, AnyArguments<'q>>,
    ) -> QueryAs<'q, Any, O, AnyArguments<'q>>
    where
        O: for<'r> FromRow<'r, sqlx::any::AnyRow>,
    {
        for arg in self.args {
            query = match arg {
                Arg::Int(value) => query.bind(value),
                Arg::Text(value) => query.bind(value),
            };
        }
        query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_placeholders_in_order() {
        let mut filter = Filter::new();
        filter
            .push("tenant_id", "=", Arg::Int(1))
            .push("status", "=", Arg::Text("paid".into()));
        assert_eq!(filter.where_sql(), "WHERE tenant_id = $1 AND status = $2");
        assert_eq!(filter.next_placeholder(), 3);
        assert_eq!(Filter::new().where_sql(), "");
    }
}
