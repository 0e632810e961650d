//! The OpenAPI document as one service answers it. Swagger UI is only useful when what it
//! shows is what the service does: the bearer requirement (and its 401) only when
//! `auth.tokens` is set, public routes without it, every `{id}` a UUID and every `{name}` a
//! resource name, a 400 wherever input is read, and error examples whose `code` is the status
//! they come with.

use serde_json::json;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// The security scheme's name in the document.
pub const BEARER: &str = "bearer";

/// What `model::validate_name` accepts, but for the one word `All`, which the routes'
/// descriptions name.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$";

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
            describe_path_parameters(operation);
            add_bad_request(operation);
            give_error_examples(operation);
        }
    }
    document
}

/// `{id}` is a UUID and `{name}` a resource name: anything else is a 400, never a lookup.
fn describe_path_parameters(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        let RefOr::T(parameter) = parameter else { continue };
        if parameter.parameter_in != ParameterIn::Path {
            continue;
        }
        let schema = ObjectBuilder::new().schema_type(Type::String);
        let schema = match parameter.name.as_str() {
            "id" => schema.format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
            "name" => schema
                .pattern(Some(NAME_PATTERN))
                .min_length(Some(1))
                .max_length(Some(128))
                .description(Some("1 to 128 letters, digits, '-', '_' or '.', not starting with '.', not `All`")),
            _ => continue,
        };
        parameter.schema = Some(RefOr::T(schema.build().into()));
    }
}

/// Every route that reads a path, a query string or a body refuses bad input with a 400.
fn add_bad_request(operation: &mut Operation) {
    let reads_input = operation.request_body.is_some() || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    if !reads_input {
        return;
    }
    add_error(operation, "400", "The input is not valid: the message names the field or parameter and what it must be");
}

fn add_unauthorized(operation: &mut Operation) {
    add_error(operation, "401", "No token, or one the service does not accept (`Authorization: Bearer <token>`)");
}

/// Documents an error envelope for `status`, unless the route already describes its own.
fn add_error(operation: &mut Operation, status: &str, description: &str) {
    let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    let response = ResponseBuilder::new().description(description).content("application/json", body).build();
    operation.responses.responses.entry(status.into()).or_insert(RefOr::T(response));
}

/// Sets the example of every error response's JSON body to an envelope with that status as
/// its `code` and the response's description as its `msg`.
fn give_error_examples(operation: &mut Operation) {
    for (status, response) in operation.responses.responses.iter_mut() {
        let (Ok(code), RefOr::T(response)) = (status.parse::<u16>(), response) else { continue };
        if code < 400 {
            continue;
        }
        if response.description.is_empty() {
            response.description = match code {
                400 => "The input is not valid: the message names the field or parameter and what it must be",
                404 => "No such resource: the message names it",
                409 => "It conflicts with what is stored: the message says how",
                413 => "The body is larger than the service takes: the message names the limit and the way around it",
                500 => "The service could not answer: the details are in its log",
                _ => "The request failed: the message says why",
            }
            .into();
        }
        let msg = response.description.clone();
        for content in response.content.values_mut() {
            if let RefOr::T(content) = content {
                content.example = Some(json!({"code": code, "msg": msg, "data": null}));
            }
        }
    }
}
