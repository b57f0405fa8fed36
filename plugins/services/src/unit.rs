//! Unit names and the one thing we read from a unit file: whether it can be enabled.

/// Suffixes of the unit types a unit directory can hold.
const UNIT_SUFFIXES: [&str; 11] = [
    ".service",
    ".socket",
    ".timer",
    ".target",
    ".path",
    ".mount",
    ".automount",
    ".swap",
    ".slice",
    ".scope",
    ".device",
];

/// True for `name.type` with a known unit type and a non-empty name.
pub fn is_unit_name(name: &str) -> bool {
    UNIT_SUFFIXES
        .iter()
        .any(|s| name.len() > s.len() && name.ends_with(s))
}

/// The template of an instance name: `getty@tty1.service` → `getty@.service`. None for a
/// template itself or a plain unit.
pub fn template_of(name: &str) -> Option<String> {
    let (prefix, rest) = name.split_once('@')?;
    let dot = rest.rfind('.')?;
    let (instance, suffix) = rest.split_at(dot);
    if instance.is_empty() {
        return None;
    }
    Some(format!("{prefix}@{suffix}"))
}

/// True when the unit file has an `[Install]` section with something to enable
/// (`WantedBy`, `RequiredBy`, `UpheldBy`, `Alias` or `Also`); otherwise the unit is static.
pub fn has_install(text: &str) -> bool {
    let mut in_install = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if line.starts_with('[') {
            in_install = line == "[Install]";
            continue;
        }
        if !in_install {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let key = key.trim();
            let wants = matches!(
                key,
                "WantedBy" | "RequiredBy" | "UpheldBy" | "Alias" | "Also"
            );
            if wants && !value.trim().is_empty() {
                return true;
            }
        }
    }
    false
}
