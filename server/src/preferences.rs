//! `/api/users/{user_id}/preferences`: per-user settings within a tenant, cached 15 min.
//! A user with nothing stored gets the defaults.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Tenant;
use crate::cache::{CacheKind, cached_json, tenant_scope};
use crate::db::Db;
use crate::error::{AppError, AppJson, AppPath, Result};
use crate::openapi::ErrorResponse;
use crate::respond::json_bytes;
use crate::state::AppState;
use crate::validate::{self, Validate};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_preferences, put_preferences))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    Light,
    Dark,
    System,
}

impl Theme {
    fn as_str(self) -> &'static str {
        match self {
            Self::Light => "light",
            Self::Dark => "dark",
            Self::System => "system",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Light, Self::Dark, Self::System]
            .into_iter()
            .find(|t| t.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    pub email: bool,
    pub sms: bool,
    pub push: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    pub theme: Theme,
    /// A BCP 47 language tag such as `en` or `en-GB`.
    #[schema(
        pattern = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$",
        example = "en-GB"
    )]
    pub locale: String,
    /// Three-letter currency code used for display.
    #[schema(pattern = r"^[A-Z]{3}$", example = "EUR")]
    pub currency: String,
    pub notifications: Notifications,
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            theme: Theme::System,
            locale: "en-US".into(),
            currency: "USD".into(),
            notifications: Notifications {
                email: true,
                sms: false,
                push: true,
            },
        }
    }
}

impl Validate for Preferences {
    fn validate(&mut self) -> Result<()> {
        if !is_language_tag(&self.locale) {
            return Err(AppError::validation(
                "`locale` must be a language tag such as \"en\" or \"en-GB\"",
            ));
        }
        validate::currency("currency", &self.currency)
    }
}

/// A pragmatic BCP 47 shape: a 2–3 letter language, then up to three 2–8 character
/// alphanumeric subtags (`en`, `en-GB`, `zh-Hant-TW`).
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let language_ok = parts.next().is_some_and(|lang| {
        (2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_alphabetic())
    });
    let rest: Vec<&str> = parts.collect();
    language_ok
        && rest.len() <= 3
        && rest
            .iter()
            .all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn check_user_id(user_id: &str) -> Result<()> {
    let ok = (1..=64).contains(&user_id.len())
        && user_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "invalid_user_id",
            "`user_id` must be 1–64 characters of letters, digits, - _ . @",
        ))
    }
}

#[derive(sqlx::FromRow)]
struct PreferencesRow {
    theme: String,
    locale: String,
    currency: String,
    notifications: String,
}

async fn load(db: &Db, tenant_id: i64, user_id: &str) -> Result<Preferences> {
    let row: Option<PreferencesRow> = sqlx::query_as(
        "SELECT theme, locale, currency, notifications FROM user_preferences WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else {
        return Ok(Preferences::default());
    };
    let corrupt = || AppError::internal(anyhow::anyhow!("preferences of {user_id} are corrupt"));
    Ok(Preferences {
        theme: Theme::parse(&row.theme).ok_or_else(corrupt)?,
        locale: row.locale,
        currency: row.currency,
        notifications: serde_json::from_str(&row.notifications).map_err(|_| corrupt())?,
    })
}

fn cache_scope(tenant: Tenant, user_id: &str) -> String {
    tenant_scope(tenant.id, &format!("prefs:{user_id}"))
}

/// A user's preferences (the defaults if none were saved).
#[utoipa::path(
    get,
    path = "/api/users/{user_id}/preferences",
    tag = "preferences",
    params(("user_id" = String, Path, pattern = r"^[A-Za-z0-9_.@-]{1,64}$", description = "The user's id within the tenant: 1–64 letters, digits, `-` `_` `.` `@`")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Preferences", body = Preferences),
        (status = 400, description = "Bad user id", body = ErrorResponse),
    )
)]
async fn get_preferences(
    State(state): State<AppState>,
    tenant: Tenant,
    AppPath(user_id): AppPath<String>,
) -> Result<Response> {
    check_user_id(&user_id)?;
    let scope = cache_scope(tenant, &user_id);
    let load = async { json_bytes(&load(&state.db, tenant.id, &user_id).await?) };
    cached_json(
        state.cache.as_ref(),
        CacheKind::Preferences,
        &scope,
        "v1",
        Box::pin(load),
    )
    .await
}

/// Replace a user's preferences.
#[utoipa::path(
    put,
    path = "/api/users/{user_id}/preferences",
    tag = "preferences",
    params(("user_id" = String, Path, pattern = r"^[A-Za-z0-9_.@-]{1,64}$", description = "The user's id within the tenant: 1–64 letters, digits, `-` `_` `.` `@`")),
    request_body = Preferences,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Saved preferences", body = Preferences),
        (status = 400, description = "Bad user id", body = ErrorResponse),
        (status = 422, description = "Invalid preferences", body = ErrorResponse),
    )
)]
async fn put_preferences(
    State(state): State<AppState>,
    tenant: Tenant,
    AppPath(user_id): AppPath<String>,
    AppJson(mut preferences): AppJson<Preferences>,
) -> Result<AppJson<Preferences>> {
    check_user_id(&user_id)?;
    preferences.validate()?;
    let notifications =
        serde_json::to_string(&preferences.notifications).map_err(AppError::internal)?;
    let (tenant_id, user, stored) = (tenant.id, user_id.clone(), preferences.clone());
    state
        .db
        .write(move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO user_preferences (tenant_id, user_id, theme, locale, currency, notifications, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (tenant_id, user_id) DO UPDATE SET theme = excluded.theme, locale = excluded.locale, \
                     currency = excluded.currency, notifications = excluded.notifications, updated_at = excluded.updated_at",
                )
                .bind(tenant_id)
                .bind(&user)
                .bind(stored.theme.as_str())
                .bind(&stored.locale)
                .bind(&stored.currency)
                .bind(notifications)
                .bind(crate::time::now())
                .execute(conn)
                .await?;
                Ok(())
            })
        })
        .await?;
    state
        .cache
        .invalidate_scopes(&[cache_scope(tenant, &user_id)])
        .await;
    Ok(AppJson(preferences))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags() {
        for ok in ["en", "en-GB", "zh-Hant-TW", "fil"] {
            assert!(is_language_tag(ok), "{ok}");
        }
        for bad in ["", "e", "english", "en_GB", "en-", "en-G", "en-a-b-c-d"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn user_ids() {
        assert!(check_user_id("ana@example.com").is_ok());
        assert!(check_user_id("").is_err());
        assert!(check_user_id("a b").is_err());
        assert!(check_user_id(&"x".repeat(65)).is_err());
    }
}
