//! OpenAPI schemas the derive cannot say: arrays of file names and ulimit maps with the rules the
//! handlers enforce, and the several forms of a time filter. The patterns here and in the
//! `#[schema(pattern = …)]` attributes are checked against the validators by a test.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType,
    Type,
};

/// A resource name, as `model::validate_name` accepts it (but for the word `All`).
pub const NAME: &str = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$";
/// A file name, as `model::blob::validate_file_name` accepts it: no `/`, no NUL, not `.` or
/// `..`, at most 255 bytes.
pub const FILE_NAME: &str = "^([^/\\x00.][^/\\x00]{0,254}|\\.[^/\\x00.][^/\\x00]{0,253}|\\.\\.[^/\\x00]{1,253})$";
/// A ulimit's name (`nofile`, `nproc`, …).
pub const ULIMIT_NAME: &str = "^[a-z]+$";
/// The characters Rust's `char::is_whitespace` takes for white space, spelt out: `\s` means
/// other sets in other regex engines (ECMA's leaves out U+0085, Python's adds U+001C–U+001F).
const WHITE_SPACE: &str = "\\x09-\\x0d\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/// Text with something besides white space in it (a script's body).
pub fn not_blank() -> String {
    format!("[^{WHITE_SPACE}]")
}

/// An image reference: no white space, not empty.
pub fn image_reference() -> String {
    format!("^[^{WHITE_SPACE}]+$")
}

fn text(pattern: String, nullable: bool, description: &str) -> Schema {
    let kind =
        if nullable { SchemaType::Array(vec![Type::String, Type::Null]) } else { SchemaType::Type(Type::String) };
    ObjectBuilder::new().schema_type(kind).pattern(Some(pattern)).description(Some(description)).into()
}

/// An actor's or a state machine's body.
pub fn body() -> Schema {
    text(not_blank(), false, "The script: not empty, not only white space.")
}

/// A body in a patch.
pub fn optional_body() -> Schema {
    text(not_blank(), true, "The script: not empty, not only white space.")
}

/// An image on an actor or a node (`null`: the node's default).
pub fn optional_image() -> Schema {
    text(image_reference(), true, "A Docker image reference such as `wharf/actor:latest`.")
}

/// An image in an actor's patch, where `""` goes back to the node's image.
pub fn image_or_empty() -> Schema {
    text(format!("^[^{WHITE_SPACE}]*$"), true, "A Docker image reference; `\"\"` goes back to the node's image.")
}

fn file_name() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(FILE_NAME))
        .min_length(Some(1))
        .max_length(Some(255))
        .into()
}

fn file_names(nullable: bool) -> Schema {
    let kind = if nullable { SchemaType::Array(vec![Type::Array, Type::Null]) } else { SchemaType::Type(Type::Array) };
    ArrayBuilder::new()
        .schema_type(kind)
        .items(RefOr::T(file_name()))
        .description(Some("The files the actor returns (file names)."))
        .into()
}

/// The files an actor's `return.json` may list.
pub fn output_names() -> Schema {
    file_names(false)
}

/// An optional list of output names, as a patch gives it.
pub fn optional_output_names() -> Schema {
    file_names(true)
}

/// `{"nofile": 1024}`: ulimits by name, each soft and hard.
pub fn ulimits() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Object, Type::Null]))
        .property_names(Some(ObjectBuilder::new().schema_type(Type::String).pattern(Some(ULIMIT_NAME))))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .into(),
        )))
        .description(Some("Ulimits by name (lower-case letters), each set as soft and hard limit."))
        .examples([serde_json::json!({"nofile": 1024})])
        .into()
}

/// A time filter: milliseconds since the epoch, RFC 3339 or a date. .NET's
/// `MM/DD/YYYY hh:mm:ss [AM|PM]` is read too, for JoyOI's clients.
pub fn time_filter() -> Schema {
    let format = |f| ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(f)));
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new().schema_type(Type::Integer).format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
        )
        .item(format(KnownFormat::DateTime))
        .item(format(KnownFormat::Date))
        .into()
}

/// JoyOI's `IDictionary<int, int>` of counts by priority, `{"0": 41, "5": 2}`: JSON keys are
/// strings, so the keys are described as strings of digits.
pub struct CountsByPriority;

impl utoipa::PartialSchema for CountsByPriority {
    fn schema() -> RefOr<Schema> {
        let count = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0));
        ObjectBuilder::new()
            .property_names(Some(ObjectBuilder::new().schema_type(Type::String).pattern(Some("^-?[0-9]+$"))))
            .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(count.into()))))
            .description(Some("Counts by priority: each key a priority (an integer), each value a count."))
            .examples([serde_json::json!({"0": 41, "5": 2})])
            .into()
    }
}

impl utoipa::ToSchema for CountsByPriority {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::blob::validate_file_name;
    use crate::model::validate_name;

    fn matches(pattern: &str, text: &str) -> bool {
        regex_lite::Regex::new(pattern).expect("pattern compiles").is_match(text)
    }

    #[test]
    fn patterns_agree_with_the_validators() {
        let long = "n".repeat(128);
        for name in ["judge", "a.b-c_d", "_x", "-", &long, "", ".hidden", "a/b", "has space", &format!("{long}x"), "é"]
        {
            assert_eq!(matches(NAME, name), validate_name(name).is_ok(), "{name:?}");
        }
        let long = "f".repeat(255);
        for name in
            ["Main.cpp", ".x", "..x", "...", "a b", "é", &long, "", ".", "..", "a/b", "a\0b", &format!("{long}f")]
        {
            assert_eq!(matches(FILE_NAME, name), validate_file_name(name).is_ok(), "{name:?}");
        }
        for text in ["x", " x ", "", " ", "\t\r\n", "\u{85}", "\u{a0}\u{3000}", "\u{1c}", "\u{feff}"] {
            assert_eq!(matches(&not_blank(), text), !text.trim().is_empty(), "{text:?}");
            let image = !text.is_empty() && !text.contains(char::is_whitespace);
            assert_eq!(matches(&image_reference(), text), image, "{text:?}");
        }
    }
}
