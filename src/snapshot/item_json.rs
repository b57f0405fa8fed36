//! An item from the JSON a worker frames it in straight to its key and stored value (the
//! canonical bytes of [`StoredValue`]), without building the item.
//!
//! Decoding every item into a `vigil_plugin::Item` (a map of owned strings) and encoding it
//! again was most of the daemon's CPU in a scan: a dozen allocations and frees per item, on
//! the two cores the plugin hashes files with. Here the attributes are read into one vector
//! of borrowed strings and written out in canonical form (sorted by name, the last of equal
//! names kept, scalars as `Value` writes them), so the bytes, and the hash that is the
//! value's identity, are exactly what decoding and encoding would give; input the item
//! type refuses is refused with serde's message for it. Hand-written on serde's visitor
//! traits: no crate transcodes JSON into a canonical form of our type.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The item's key and its value's stored bytes.
pub fn encode(json: &[u8]) -> Result<(String, Vec<u8>), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let mut out = Vec::with_capacity(json.len());
    let key = de.deserialize_map(ItemVisitor { out: &mut out })?;
    de.end()?;
    Ok((key, out))
}

/// A string borrowed from the input when it has no escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// An attribute's value, accepted as `vigil_plugin::Value` accepts it.
enum Scalar<'de> {
    Bool(bool),
    Int(i64),
    Str(Cow<'de, str>),
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a bool, an integer or a string")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
                i64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
        }
        d.deserialize_any(V)
    }
}

/// The item object: `key`, `attributes` (default empty), `content` (default none); other
/// fields are ignored, a repeated one is an error, as for `Item`.
struct ItemVisitor<'o> {
    out: &'o mut Vec<u8>,
}

impl<'de> Visitor<'de> for ItemVisitor<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct Item")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        let mut key: Option<String> = None;
        let mut attributes: Option<Vec<(Cow<'de, str>, Scalar<'de>)>> = None;
        let mut content: Option<Option<Text<'de>>> = None;
        while let Some(field) = map.next_key::<Text<'de>>()? {
            match field.0.as_ref() {
                "key" if key.is_some() => return Err(de::Error::duplicate_field("key")),
                "key" => key = Some(map.next_value::<Text<'de>>()?.0.into_owned()),
                "attributes" if attributes.is_some() => {
                    return Err(de::Error::duplicate_field("attributes"))
                }
                "attributes" => attributes = Some(map.next_value_seed(Attributes)?),
                "content" if content.is_some() => {
                    return Err(de::Error::duplicate_field("content"))
                }
                "content" => content = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let key = key.ok_or_else(|| de::Error::missing_field("key"))?;
        write_value(
            self.out,
            attributes.unwrap_or_default(),
            content.flatten().map(|t| t.0),
        )
        .map_err(de::Error::custom)?;
        Ok(key)
    }
}

/// The attributes object, as (name, value) in the input's order.
struct Attributes;

impl<'de> DeserializeSeed<'de> for Attributes {
    type Value = Vec<(Cow<'de, str>, Scalar<'de>)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Attributes {
    type Value = Vec<(Cow<'de, str>, Scalar<'de>)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        while let Some((name, value)) = map.next_entry::<Text<'de>, Scalar<'de>>()? {
            out.push((name.0, value));
        }
        Ok(out)
    }
}

/// Writes `{"a":{…},"c":…}` as `StoredValue::encode` does: names in byte order, the last
/// value of a repeated name (a map keeps the last insert), `c` only with content.
fn write_value(
    out: &mut Vec<u8>,
    mut attributes: Vec<(Cow<'_, str>, Scalar<'_>)>,
    content: Option<Cow<'_, str>>,
) -> serde_json::Result<()> {
    // Plugins emit their attributes sorted (a BTreeMap serialised), so this is usually a
    // check; a stable sort keeps repeated names in input order, and the last of each wins.
    if !attributes.windows(2).all(|w| w[0].0 < w[1].0) {
        attributes.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<(Cow<'_, str>, Scalar<'_>)> = Vec::with_capacity(attributes.len());
        for entry in attributes {
            match kept.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => kept.push(entry),
            }
        }
        attributes = kept;
    }
    out.extend_from_slice(b"{\"a\":{");
    for (i, (name, value)) in attributes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, name.as_ref())?;
        out.push(b':');
        match value {
            Scalar::Bool(b) => serde_json::to_writer(&mut *out, b)?,
            Scalar::Int(n) => serde_json::to_writer(&mut *out, n)?,
            Scalar::Str(s) => serde_json::to_writer(&mut *out, s.as_ref())?,
        }
    }
    out.push(b'}');
    if let Some(content) = content {
        out.extend_from_slice(b",\"c\":");
        serde_json::to_writer(&mut *out, content.as_ref())?;
    }
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::chunk::StoredValue;
    use super::*;
    use vigil_plugin::Item;

    /// What the daemon stored before: decode the item, encode its value.
    fn by_decoding(json: &[u8]) -> Result<(String, Vec<u8>), String> {
        let item: Item = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        let (key, value) = StoredValue::of(item);
        Ok((key, value.encode()))
    }

    fn same(json: &str) {
        let fast = encode(json.as_bytes()).map_err(|e| e.to_string());
        let slow = by_decoding(json.as_bytes());
        match (&fast, &slow) {
            (Ok(f), Ok(s)) => assert_eq!(f, s, "{json}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{json}: transcoded {fast:?}, decoded {slow:?}"),
        }
    }

    #[test]
    fn items_store_as_decoding_and_encoding_them_would() {
        for json in [
            r#"{"key":"/etc/a","attributes":{"blake3":"ab","mode":"0644","size":12,"uid":0}}"#,
            r#"{"key":"/etc/a","attributes":{"z":1,"a":2,"m":true}}"#,
            r#"{"key":"/etc/a","attributes":{"a":1,"a":2,"b":3,"a":4}}"#,
            r#"{"key":"/etc/a"}"#,
            r#"{"attributes":{},"key":"/etc/a","content":null}"#,
            r#"{"key":"/etc/\u00e9t\"é","attributes":{"n\u0061me":"tab\there","é":"ü"},"content":"line 1\nline \"2\"\n"}"#,
            r#"{"key":"k","attributes":{"big":9223372036854775807,"neg":-9223372036854775808,"z":-0}}"#,
            r#"{"key":"k","attributes":{"x":1},"content":"","other":{"nested":[1,2,{"a":null}]}}"#,
            r#" { "key" : "k" , "attributes" : { "b" : false , "a" : "x" } } "#,
            r#"{"key":"k","attributes":{"\ud83d\ude00":"\u0000\u001f\u007f"}}"#,
            // Refused by both:
            r#"{"key":"k","attributes":{"x":9223372036854775808}}"#,
            r#"{"key":"k","attributes":{"x":1.5}}"#,
            r#"{"key":"k","attributes":{"x":null}}"#,
            r#"{"key":"k","attributes":{"x":[1]}}"#,
            r#"{"key":"k","attributes":[]}"#,
            r#"{"key":"k","key":"j"}"#,
            r#"{"key":"k","content":"a","content":"b"}"#,
            r#"{"attributes":{}}"#,
            r#"{"key":7}"#,
            r#"{"key":"k","content":3}"#,
            r#"{"key":"k"} trailing"#,
            r#"{"key":"k""#,
            r#""just a string""#,
            r#"{"key":"bad \ud800 surrogate"}"#,
            "{\"key\":\"raw\u{1}control\"}",
            "",
        ] {
            same(json);
        }
    }

    #[test]
    fn transcoding_agrees_with_decoding_on_generated_items() {
        // A bounded, deterministic sweep of shapes: names in and out of order, repeated,
        // escaped; values of every kind; with and without content.
        let names = ["a", "b", "mode", "m\\u006fde", "é", "a\\\"q", "blake3"];
        let values = ["1", "-7", "true", "false", "\"x\"", "\"\\n\"", "\"ü\"", "0"];
        let mut seed = 0x9e37_79b9_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as usize
        };
        for _ in 0..2_000 {
            let n = next() % 6;
            let attrs: Vec<String> = (0..n)
                .map(|_| {
                    format!(
                        "\"{}\":{}",
                        names[next() % names.len()],
                        values[next() % values.len()]
                    )
                })
                .collect();
            let content = match next() % 3 {
                0 => String::new(),
                1 => ",\"content\":\"a\\nb\"".into(),
                _ => ",\"content\":null".into(),
            };
            same(&format!(
                "{{\"key\":\"/k\",\"attributes\":{{{}}}{content}}}",
                attrs.join(",")
            ));
        }
    }
}
