//! Which tenant a request belongs to, from its path.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use ember_model::DEFAULT_TENANT;

use crate::error::ApiError;

/// The tenant of a request: the `<id>` of `/workspaces/<id>/…`, else the default tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub String);

impl Tenant {
    /// Derives the tenant from a request path.
    pub fn from_path(path: &str) -> Result<Self, ApiError> {
        match path.strip_prefix("/workspaces/") {
            None => Ok(Tenant(DEFAULT_TENANT.to_string())),
            Some(rest) => {
                let id = rest.split('/').next().unwrap_or("");
                let valid = !id.is_empty()
                    && id.len() <= 64
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if valid {
                    Ok(Tenant(id.to_string()))
                } else {
                    Err(ApiError::bad_data(format!(
                        "invalid workspace id {id:?}: use 1-64 characters of [A-Za-z0-9_-]"
                    )))
                }
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Tenant::from_path(parts.uri.path())
    }
}
