//! The config example and the config structs name the same keys: every key `vigil::config`
//! accepts is documented in `config.toml.example`, and nothing else is.

use crate::example::{Doc, Written};
use crate::keys::{Key, Shape};

/// Every difference between the documented and the accepted keys, as one line each.
pub fn problems(doc: &Doc, accepted: &[Key]) -> Vec<String> {
    let documented = doc.paths();
    // Keys inside a free-form table (`[plugin.config]`) belong to whoever reads that table.
    let maps: Vec<&str> = accepted
        .iter()
        .filter(|k| k.shape == Shape::Map)
        .map(|k| k.path.as_str())
        .collect();
    let inside_map = |path: &str| {
        maps.iter().any(|m| {
            path.strip_prefix(m)
                .is_some_and(|rest| rest.starts_with('.'))
        })
    };

    let mut problems = Vec::new();
    for key in accepted.iter().filter(|k| !inside_map(&k.path)) {
        let Some(&written) = documented.get(&key.path) else {
            problems.push(format!(
                "`{}` ({}) is accepted by vigil::config but not documented in the config example",
                key.path, key.shape
            ));
            continue;
        };
        let fits = match key.shape {
            Shape::Value => written == Written::Key,
            Shape::Table => written == Written::Table,
            Shape::ArrayOfTables => written == Written::ArrayOfTables,
            Shape::Map => written != Written::ArrayOfTables,
        };
        if !fits {
            problems.push(format!(
                "`{}` is {} in vigil::config but written as {written:?} in the config example",
                key.path, key.shape
            ));
        }
    }
    for path in documented.keys().filter(|p| !inside_map(p)) {
        if !accepted.iter().any(|k| &k.path == path) {
            problems.push(format!(
                "`{path}` is documented in the config example but vigil::config does not accept it"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use crate::{example, keys, EXAMPLE};

    /// The shipped example documents exactly the keys the daemon accepts; a new key, table
    /// or `[[array]]` in `vigil::config` fails this until the example describes it.
    #[test]
    fn config_example_documents_exactly_the_accepted_keys() {
        let doc = example::parse(EXAMPLE);
        let accepted = keys::accepted::<vigil::config::Config>();
        assert!(
            accepted.len() > 40,
            "the probe found too few keys: {accepted:?}"
        );
        let problems = super::problems(&doc, &accepted);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn a_missing_or_unknown_key_is_reported() {
        let accepted = keys::accepted::<vigil::config::Config>();
        let edited = EXAMPLE
            .replace("retention_days = 30", "retention_dayz = 30")
            .replace("[[node]]", "[node]");
        let problems = super::problems(&example::parse(&edited), &accepted);
        let text = problems.join("\n");
        assert!(text.contains("`daemon.retention_days`"), "{text}");
        assert!(text.contains("`daemon.retention_dayz`"), "{text}");
        assert!(text.contains("`node` is an [[array of tables]]"), "{text}");
    }
}
