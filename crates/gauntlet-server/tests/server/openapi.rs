//! Keeps `openapi.yaml` true: every response the tests receive is checked against it
//! (path template, method, status, and the body against the response schema).

use std::sync::OnceLock;

use serde_json::Value;

/// The parsed `openapi.yaml` (as JSON values).
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        serde_json::to_value(yaml).unwrap()
    })
}

/// The documented path template matching a concrete path.
pub fn template_for(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    spec()["paths"]
        .as_object()
        .unwrap()
        .keys()
        .find(|t| {
            let tp: Vec<&str> = t.split('/').collect();
            tp.len() == parts.len()
                && tp
                    .iter()
                    .zip(&parts)
                    .all(|(a, b)| a == b || (a.starts_with('{') && !b.is_empty()))
        })
        .cloned()
}

fn resolve(schema: &Value) -> &Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            let section = if r.contains("/responses/") {
                "responses"
            } else {
                "schemas"
            };
            resolve(&spec()["components"][section][name])
        }
        None => schema,
    }
}

/// Checks `value` against an OpenAPI schema; errors name the JSON path.
pub fn validate(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(schema);
    if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return Ok(());
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate(s, value, at)?;
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        if !one.iter().any(|s| validate(s, value, at).is_ok()) {
            return Err(format!("{at}: {value} matches none of oneOf"));
        }
    }
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        let ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_u64() || value.is_i64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !ok {
            return Err(format!("{at}: expected {ty}, got {value}"));
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        if !values.contains(value) {
            return Err(format!("{at}: {value} is not one of {values:?}"));
        }
    }
    if let Some(obj) = value.as_object() {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap();
            if !obj.contains_key(r) {
                return Err(format!("{at}: missing required property {r}"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(s, v, &format!("{at}.{k}"))?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(format!("{at}: undocumented property {k}"))
                    }
                    Some(s @ Value::Object(_)) => validate(s, v, &format!("{at}.{k}"))?,
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            validate(items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Checks one exchange against the spec; panics with the reason when it does not fit.
pub fn check(method: &str, path: &str, status: u16, body: &Value) {
    let path = path.split('?').next().unwrap();
    let code = body["error"]["code"].as_str().unwrap_or_default();
    let Some(template) = template_for(path) else {
        assert_eq!(
            (status, code),
            (404, "route_not_found"),
            "{method} {path} is not in openapi.yaml but answered {status} {body}"
        );
        return;
    };
    let op = &spec()["paths"][&template][method.to_ascii_lowercase()];
    if op.is_null() {
        assert_eq!(
            (status, code),
            (405, "method_not_allowed"),
            "{method} {template} is not in openapi.yaml but answered {status} {body}"
        );
        return;
    }
    let response = &op["responses"][status.to_string()];
    assert!(
        !response.is_null(),
        "openapi.yaml: {method} {template} does not document status {status} (body {body})"
    );
    let response = resolve(response);
    if let Some(schema) = response
        .get("content")
        .and_then(|c| c.get("application/json"))
        .map(|c| &c["schema"])
    {
        if let Err(e) = validate(schema, body, "body") {
            panic!("openapi.yaml: {method} {template} {status}: {e}\n{body}");
        }
    }
}

/// `Text`'s pattern admits a one-character text exactly when the server does: when the
/// character is not White_Space. A regex dialect's `\s` would not do: schemathesis,
/// following ECMA-262, generated U+0085, which the server rightly calls empty.
#[test]
fn the_text_pattern_is_the_servers_notion_of_a_non_space_character() {
    let pattern = spec()["components"]["schemas"]["Text"]["pattern"]
        .as_str()
        .unwrap();
    let non_space = regex::Regex::new(pattern).unwrap();
    let disagreements: Vec<String> = (0..=char::MAX as u32)
        .filter_map(char::from_u32)
        .filter(|c| non_space.is_match(c.encode_utf8(&mut [0; 4])) == c.is_whitespace())
        .map(|c| format!("U+{:04X}", c as u32))
        .collect();
    assert!(disagreements.is_empty(), "{disagreements:?}");
}

/// `Name`'s pattern and length bounds admit exactly the names the server accepts, on every
/// string of up to four characters over an alphabet with each kind of character the rule
/// treats apart, and on the lengths around the limit. Schemathesis once sent `G025wdQv..`,
/// which the old pattern admitted and the server refuses.
#[test]
fn the_name_schema_is_the_servers_rule_for_names() {
    let schema = &spec()["components"]["schemas"]["Name"];
    let pattern = regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap();
    let (min, max) = (
        schema["minLength"].as_u64().unwrap() as usize,
        schema["maxLength"].as_u64().unwrap() as usize,
    );
    let documented =
        |name: &str| (min..=max).contains(&name.chars().count()) && pattern.is_match(name);
    let alphabet = ['a', 'Z', '7', '.', '_', '-', '/', '\\', ' ', 'é'];
    let mut names = vec![String::new()];
    let mut last = vec![String::new()];
    for _ in 0..4 {
        last = last
            .iter()
            .flat_map(|prefix| alphabet.iter().map(move |c| format!("{prefix}{c}")))
            .collect();
        names.extend(last.iter().cloned());
    }
    for len in [127, 128, 129] {
        names.push("a".repeat(len));
        names.push(format!("{}.", "a".repeat(len - 1)));
        names.push(format!("a.{}", "b".repeat(len - 2)));
    }
    names.push("G025wdQv..".to_owned());
    let disagreements: Vec<&String> = names
        .iter()
        .filter(|n| documented(n) != gauntlet_server::names::check_name("model", n).is_ok())
        .collect();
    assert!(disagreements.is_empty(), "{disagreements:?}");
}
