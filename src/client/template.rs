//! `watch --render TEMPLATE:FILE`: a file made from a template and the watched value. The
//! template is text with placeholders `{{POINTER}}`, each a JSON Pointer into the value (`{{}}`
//! or `{{/}}` is the value itself): a string is written as its text, anything else as compact
//! JSON. A pointer that names nothing fails the render, so the file keeps its last good content.
//! `{{{{` writes `{{`. There are no loops or conditions: a file that needs them is made by an
//! `--exec` command (with `jq`, say) from the value on its stdin.

/// The template's text with every placeholder replaced from `value` (JSON text).
pub fn fill(template: &str, value: &[u8]) -> Result<Vec<u8>, String> {
    let value: serde_json::Value = serde_json::from_slice(value).map_err(|e| format!("the value is not JSON: {e}"))?;
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        rest = &rest[open + 2..];
        if let Some(after) = rest.strip_prefix("{{") {
            out.push_str("{{");
            rest = after;
            continue;
        }
        let close = rest.find("}}").ok_or("a placeholder {{ is not closed by }}")?;
        let pointer = rest[..close].trim();
        let pointer = if pointer == "/" { "" } else { pointer };
        let found = value.pointer(pointer).ok_or_else(|| format!("{{{{{pointer}}}}} names nothing in the value"))?;
        match found {
            serde_json::Value::String(text) => out.push_str(text),
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[close + 2..];
    }
    out.push_str(rest);
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn placeholders_take_strings_as_text_and_the_rest_as_json() {
        let value = br#"{"host": "10.0.0.5", "port": 8080, "tags": ["a", "b"]}"#;
        let filled = fill("server {{/host}}:{{ /port }}; # {{/tags}} {{{{x}}", value).unwrap();
        assert_eq!(String::from_utf8(filled).unwrap(), r#"server 10.0.0.5:8080; # ["a","b"] {{x}}"#);
        assert_eq!(fill("{{}}", b"\"motd\"").unwrap(), b"motd");
    }

    #[test]
    fn a_pointer_that_names_nothing_or_an_open_placeholder_fails() {
        assert!(fill("{{/missing}}", b"{}").unwrap_err().contains("/missing"));
        assert!(fill("{{/a", br#"{"a": 1}"#).is_err());
    }
}
