//! Every key the config structs accept, read from their serde derives rather than from a
//! list kept by hand: a probing [`Deserializer`] records the `fields` that each
//! `deserialize_struct` call is given, and descends into one field per pass. A new section
//! or key in `vigil::config` shows up here by itself.
//!
//! It relies on what `#[derive(Deserialize)]` does for plain structs (as all config structs
//! are: `deny_unknown_fields`, no `flatten`); a free-form table (`toml::Table`) is a
//! [`Shape::Map`] whose contents are not config keys.

use std::cell::RefCell;
use std::fmt;

use serde::de::value::{Error, StrDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// What kind of TOML value a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A string, number, boolean, or an array of them.
    Value,
    /// A table with keys of its own: `[name]`.
    Table,
    /// An array of tables with keys of their own: `[[name]]`.
    ArrayOfTables,
    /// A table whose keys are not the config's (e.g. `[plugin.config]`).
    Map,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shape::Value => "a value",
            Shape::Table => "a [table]",
            Shape::ArrayOfTables => "an [[array of tables]]",
            Shape::Map => "a free-form table",
        })
    }
}

/// One accepted key: its dotted path from the top of the file (`daemon.slots`, `user.email`,
/// `email.smtp`) and its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub path: String,
    pub shape: Shape,
}

/// Every key `T` accepts, tables included, parents before their keys, in declaration order.
pub fn accepted<T: for<'de> Deserialize<'de>>() -> Vec<Key> {
    let mut keys = Vec::new();
    let Found::Struct { fields, .. } = probe::<T>(&[]) else {
        return keys;
    };
    walk::<T>(&mut Vec::new(), fields, &mut keys);
    keys
}

fn walk<T: for<'de> Deserialize<'de>>(
    path: &mut Vec<&'static str>,
    fields: &'static [&'static str],
    keys: &mut Vec<Key>,
) {
    for &field in fields {
        path.push(field);
        let found = probe::<T>(path);
        let shape = match found {
            Found::Struct { in_seq: false, .. } => Shape::Table,
            Found::Struct { in_seq: true, .. } => Shape::ArrayOfTables,
            Found::Map => Shape::Map,
            Found::Value => Shape::Value,
        };
        keys.push(Key {
            path: path.join("."),
            shape,
        });
        if let Found::Struct { fields, .. } = found {
            walk::<T>(path, fields, keys);
        }
        path.pop();
    }
}

/// What the deserializer was asked for at the end of a path.
#[derive(Debug, Clone, Copy)]
enum Found {
    Struct {
        fields: &'static [&'static str],
        in_seq: bool,
    },
    Map,
    Value,
}

/// Deserializes `T` along `path` (one field of each struct on the way) and returns what the
/// type at its end asked for. The deserialization itself always fails; only the record counts.
fn probe<T: for<'de> Deserialize<'de>>(path: &[&'static str]) -> Found {
    let found = RefCell::new(Found::Value);
    let _ = T::deserialize(Probe {
        path,
        in_seq: false,
        found: &found,
    });
    found.into_inner()
}

#[derive(Clone, Copy)]
struct Probe<'a> {
    /// Fields still to descend into; empty: record what is asked for here.
    path: &'a [&'static str],
    /// Inside an array (of tables).
    in_seq: bool,
    found: &'a RefCell<Found>,
}

impl Probe<'_> {
    fn record(self, found: Found) -> Error {
        *self.found.borrow_mut() = found;
        de::Error::custom("probe done")
    }

    fn value<V>(self) -> Result<V, Error> {
        if self.path.is_empty() {
            Err(self.record(Found::Value))
        } else {
            Err(de::Error::custom("a plain value has no fields"))
        }
    }
}

macro_rules! plain_values {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
            self.value()
        })*
    };
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = Error;

    plain_values! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_unit deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _visitor: V,
    ) -> Result<V::Value, Error> {
        self.value()
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, _v: V) -> Result<V::Value, Error> {
        self.value()
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, Error> {
        self.value()
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        self.value()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(OneElement(Some(Probe {
            in_seq: true,
            ..self
        })))
    }

    fn deserialize_map<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        if self.path.is_empty() {
            Err(self.record(Found::Map))
        } else {
            Err(de::Error::custom("a free-form table has no fields"))
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.path.split_first() {
            None => Err(self.record(Found::Struct {
                fields,
                in_seq: self.in_seq,
            })),
            Some((&field, rest)) => visitor.visit_map(OneField {
                key: Some(field),
                value: Probe {
                    path: rest,
                    in_seq: false,
                    found: self.found,
                },
            }),
        }
    }
}

/// A table with only the next field of the path in it.
struct OneField<'a> {
    key: Option<&'static str>,
    value: Probe<'a>,
}

impl<'de> MapAccess<'de> for OneField<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.key.take() {
            None => Ok(None),
            Some(key) => {
                let key: StrDeserializer<'_, Error> = key.into_deserializer();
                seed.deserialize(key).map(Some)
            }
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(self.value)
    }
}

/// An array with one element, so that the element's type is probed.
struct OneElement<'a>(Option<Probe<'a>>);

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        match self.0.take() {
            None => Ok(None),
            Some(probe) => seed.deserialize(probe).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code)]
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Top {
        name: String,
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(rename = "item")]
        items: Vec<Item>,
        #[serde(skip)]
        hidden: u32,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Inner {
        n: u32,
        deeper: Item,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Item {
        tags: Vec<String>,
        extra: std::collections::BTreeMap<String, String>,
    }

    #[test]
    fn finds_nested_tables_arrays_and_maps() {
        let keys: Vec<(String, Shape)> = accepted::<Top>()
            .into_iter()
            .map(|k| (k.path, k.shape))
            .collect();
        let want = [
            ("name", Shape::Value),
            ("inner", Shape::Table),
            ("inner.n", Shape::Value),
            ("inner.deeper", Shape::Table),
            ("inner.deeper.tags", Shape::Value),
            ("inner.deeper.extra", Shape::Map),
            ("item", Shape::ArrayOfTables),
            ("item.tags", Shape::Value),
            ("item.extra", Shape::Map),
        ];
        let want: Vec<(String, Shape)> = want.iter().map(|(p, s)| (p.to_string(), *s)).collect();
        assert_eq!(keys, want);
    }

    #[test]
    fn the_config_has_its_known_keys() {
        let keys = accepted::<vigil::config::Config>();
        let find = |p: &str| keys.iter().find(|k| k.path == p).map(|k| k.shape);
        assert_eq!(find("policy_dir"), Some(Shape::Value));
        assert_eq!(find("daemon"), Some(Shape::Table));
        assert_eq!(find("daemon.task_timeout"), Some(Shape::Value));
        assert_eq!(find("email.smtp"), Some(Shape::Table));
        assert_eq!(find("email.smtp.password_file"), Some(Shape::Value));
        assert_eq!(find("user"), Some(Shape::ArrayOfTables));
        assert_eq!(find("user.role"), Some(Shape::Value));
        assert_eq!(find("plugin.config"), Some(Shape::Map));
        assert_eq!(
            find("user.resolved_uid"),
            None,
            "serde(skip) fields are not keys"
        );
    }
}
