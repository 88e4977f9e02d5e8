//! Kubernetes label selectors (`-l app=web,tier!=db,env in (prod,stage),!canary`), as
//! kubectl takes them: `=`, `==`, `!=`, `in`, `notin`, and a key alone (exists) or with `!`
//! (does not exist). Requirements are ANDed. No crate that fits is maintained, so this is
//! the grammar of k8s.io/apimachinery/pkg/labels, kept small.

use std::{collections::BTreeMap, fmt, str::FromStr};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    text: String,
    requirements: Vec<(String, Op)>,
}

impl LabelSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|(key, op)| {
            let v = labels.get(key);
            match op {
                Op::Eq(want) => v == Some(want),
                Op::NotEq(want) => v != Some(want),
                Op::In(set) => v.is_some_and(|v| set.contains(v)),
                Op::NotIn(set) => v.is_none_or(|v| !set.contains(v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
            }
        })
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits on the commas that separate requirements, not those inside `( )`.
fn requirements(text: &str) -> Result<Vec<&str>, String> {
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err("unbalanced parentheses".into());
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".into());
    }
    out.push(&text[start..]);
    Ok(out)
}

/// A label key or value: what Kubernetes allows (letters, digits, `-_./`), never empty keys.
fn token(s: &str, what: &str) -> Result<String, String> {
    let s = s.trim();
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_./".contains(c);
    if s.chars().all(ok) && (what == "value" || !s.is_empty()) {
        Ok(s.to_owned())
    } else {
        Err(format!("`{s}` is not a label {what}"))
    }
}

fn set(s: &str) -> Result<Vec<String>, String> {
    let inner = s.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')'));
    let inner = inner.ok_or_else(|| format!("`{}`: expected a set such as (a,b)", s.trim()))?;
    inner.split(',').map(|v| token(v, "value")).collect()
}

fn requirement(r: &str) -> Result<(String, Op), String> {
    let r = r.trim();
    if let Some(key) = r.strip_prefix('!') {
        return Ok((token(key, "key")?, Op::NotExists));
    }
    for (word, make) in [(" notin ", true), (" in ", false)] {
        if let Some((key, values)) = r.split_once(word) {
            let values = set(values)?;
            return Ok((token(key, "key")?, if make { Op::NotIn(values) } else { Op::In(values) }));
        }
    }
    for (sign, eq) in [("!=", false), ("==", true), ("=", true)] {
        if let Some((key, value)) = r.split_once(sign) {
            let value = token(value, "value")?;
            return Ok((token(key, "key")?, if eq { Op::Eq(value) } else { Op::NotEq(value) }));
        }
    }
    Ok((token(r, "key")?, Op::Exists))
}

impl FromStr for LabelSelector {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("an empty selector (to select every pod, leave -l out)".into());
        }
        let requirements =
            requirements(text)?.into_iter().map(requirement).collect::<Result<_, _>>().map_err(
                |e| format!("{e}; expected e.g. app=web,tier!=db,env in (prod,stage),!canary"),
            )?;
        Ok(Self { text: text.trim().to_owned(), requirements })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn every_operator_matches_as_kubectl_does() {
        let web = labels(&[("app", "web"), ("tier", "front"), ("env", "prod")]);
        let db = labels(&[("app", "db"), ("tier", "db"), ("canary", "true")]);
        let cases = [
            ("app=web", true, false),
            ("app==db", false, true),
            ("tier!=db", true, false),
            ("env in (prod, stage)", true, false),
            ("env notin (prod)", false, true),
            ("canary", false, true),
            ("!canary", true, false),
            ("app in (web,db),!canary", true, false),
            ("app=web,tier=db", false, false),
        ];
        for (text, on_web, on_db) in cases {
            let s: LabelSelector = text.parse().unwrap();
            assert_eq!((s.matches(&web), s.matches(&db)), (on_web, on_db), "{text}");
        }
    }

    #[test]
    fn malformed_selectors_say_what_is_expected() {
        for bad in ["", "app in web", "env in (a,b", "a b=c", "=web"] {
            let e = bad.parse::<LabelSelector>().unwrap_err();
            assert!(
                e.contains("expected") || e.contains("parenthes") || e.contains("empty"),
                "{bad}: {e}"
            );
        }
    }
}
