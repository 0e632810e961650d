//! The OpenAPI document as one service answers it. Swagger UI is only useful when what it
//! shows is what the service does: the bearer requirement (and its 401) only when
//! `auth.tokens` is set, public routes without it, and error examples whose `code` is the
//! status they come with.

use serde_json::json;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// The security scheme's name in the document.
pub const BEARER: &str = "bearer";

/// `document` for a service that needs a token (`tokens_needed`) or not.
pub fn for_service(mut document: OpenApi, tokens_needed: bool) -> OpenApi {
    if !tokens_needed {
        document.security = None;
        if let Some(components) = document.components.as_mut() {
            components.security_schemes.remove(BEARER);
        }
    }
    for (path, item) in document.paths.paths.iter_mut() {
        let public = super::access::is_public(path);
        for operation in
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
        {
            if !tokens_needed {
                operation.security = None;
            } else if public {
                operation.security = Some(vec![SecurityRequirement::default()]);
            } else {
                add_unauthorized(operation);
            }
            give_error_examples(operation);
        }
    }
    document
}

fn add_unauthorized(operation: &mut Operation) {
    let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    let response = ResponseBuilder::new()
        .description("No token, or one the service does not accept (`Authorization: Bearer <token>`)")
        .content("application/json", body)
        .build();
    operation.responses.responses.entry("401".into()).or_insert(RefOr::T(response));
}

/// Sets the example of every error response's JSON body to an envelope with that status as
/// its `code` and the response's description as its `msg`.
fn give_error_examples(operation: &mut Operation) {
    for (status, response) in operation.responses.responses.iter_mut() {
        let (Ok(code), RefOr::T(response)) = (status.parse::<u16>(), response) else { continue };
        if code < 400 {
            continue;
        }
        let msg = response.description.clone();
        for content in response.content.values_mut() {
            if let RefOr::T(content) = content {
                content.example = Some(json!({"code": code, "msg": msg, "data": null}));
            }
        }
    }
}
