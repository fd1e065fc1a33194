//! Edits by path copying: only the containers on the way to an edit are copied, each copy a list
//! of references to the unchanged children, so an edit never copies more than its path.

use std::sync::Arc;

use super::object::spliced;
use super::{Value, parse_index};

/// Why an edit could not be made. Both answer 404 at the HTTP level except `TooDeep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditError {
    /// The parent of the target does not exist, is not a container, or the index is past the end.
    NoParent,
    /// The target of a delete does not exist.
    NotFound,
    /// The result would nest deeper than the store allows.
    TooDeep,
}

impl Value {
    /// Puts `value` at `path`: the empty path replaces the whole tree; an object's key is created
    /// or replaced; an array index below the length replaces, equal to the length appends.
    pub fn put<S: AsRef<str>>(&mut self, path: &[S], value: Value, depth_max: usize) -> Result<(), EditError> {
        if path.len() + value.depth() > depth_max {
            return Err(EditError::TooDeep);
        }
        let Some((last, parent_path)) = path.split_last() else {
            *self = value;
            return Ok(());
        };
        // Check before copying anything, so a failed edit leaves every node shared.
        let last = last.as_ref();
        match self.resolve(parent_path) {
            Some(parent) if parent.is_object() => {}
            Some(Value::Array(items)) if parse_index(last).is_some_and(|i| i <= items.len()) => {}
            _ => return Err(EditError::NoParent),
        }
        match self.resolve_mut(parent_path) {
            object @ (Value::Object(_) | Value::Chunked(_)) => {
                object.insert_member(last, value);
            }
            Value::Array(items) => {
                let index = parse_index(last).expect("index checked above");
                if index == items.len() {
                    *items = spliced(items, index..index, Some(value));
                } else {
                    Arc::make_mut(items)[index] = value;
                }
            }
            _ => unreachable!("parent checked above"),
        }
        Ok(())
    }

    /// Removes the subtree at `path`; later array elements shift down. The empty path resets the
    /// tree to `{}`.
    pub fn delete<S: AsRef<str>>(&mut self, path: &[S]) -> Result<(), EditError> {
        let Some((last, parent_path)) = path.split_last() else {
            *self = Value::empty_object();
            return Ok(());
        };
        let last = last.as_ref();
        if self.resolve(path).is_none() {
            return Err(EditError::NotFound);
        }
        match self.resolve_mut(parent_path) {
            object @ (Value::Object(_) | Value::Chunked(_)) => {
                object.remove_member(last);
            }
            Value::Array(items) => {
                let i = parse_index(last).expect("index checked above");
                *items = spliced(items, i..i + 1, None);
            }
            _ => unreachable!("path checked above"),
        }
        Ok(())
    }

    /// The node at a path known to exist, copying each shared container on the way.
    fn resolve_mut<S: AsRef<str>>(&mut self, path: &[S]) -> &mut Value {
        path.iter().fold(self, |node, segment| {
            let segment = segment.as_ref();
            match node {
                Value::Object(_) | Value::Chunked(_) => node.member_mut(segment).expect("path checked by the caller"),
                Value::Array(items) => {
                    let index = parse_index(segment).expect("path checked by the caller");
                    &mut Arc::make_mut(items)[index]
                }
                _ => unreachable!("path checked by the caller"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::value::fixtures::*;

    #[test]
    fn put_creates_replaces_and_appends() {
        let mut store = seed();
        store.put(&["new"], parse("[1]"), 100).unwrap();
        store.put(&["new", "1"], parse("2"), 100).unwrap();
        store.put(&["new", "0"], parse("0"), 100).unwrap();
        assert_eq!(store.resolve(&["new"]), Some(&parse("[0, 2]")));
        assert_eq!(store.put(&["new", "3"], parse("9"), 100), Err(EditError::NoParent));
        assert_eq!(store.put(&["missing", "x"], parse("9"), 100), Err(EditError::NoParent));
        assert_eq!(store.put(&["size", "x"], parse("9"), 100), Err(EditError::NoParent));
        store.put(&["a"], parse("1"), 100).unwrap();
        assert_eq!(store.to_compact()[..6], *br#"{"a":1"#, "new keys land in sorted order");
        store.put::<&str>(&[], parse("[]"), 100).unwrap();
        assert_eq!(store, parse("[]"));
    }

    #[test]
    fn delete_shifts_array_elements_and_resets_on_empty_path() {
        let mut store = seed();
        store.delete(&["providers", "alpha", "0"]).unwrap();
        assert_eq!(store.resolve(&["providers", "alpha"]), Some(&parse(r#"["192.168.1.2"]"#)));
        assert_eq!(store.delete(&["providers", "zeta"]), Err(EditError::NotFound));
        store.delete(&["providers"]).unwrap();
        assert_eq!(store.resolve(&["providers"]), None);
        store.delete::<&str>(&[]).unwrap();
        assert_eq!(store, parse("{}"));
    }

    #[test]
    fn edits_copy_only_the_path_to_the_change() {
        let base = seed();
        let mut staged = base.clone();
        staged.put(&["providers", "beta", "0"], parse("\"10.0.0.1\""), 100).unwrap();
        let (Some(Value::Array(base_alpha)), Some(Value::Array(staged_alpha))) =
            (base.resolve(&["providers", "alpha"]), staged.resolve(&["providers", "alpha"]))
        else {
            panic!("alpha is an array in both");
        };
        assert!(Arc::ptr_eq(base_alpha, staged_alpha), "untouched sibling is shared");
        assert_eq!(base.resolve(&["providers", "beta", "0"]), Some(&parse("\"192.168.2.1\"")));
        assert!(!base.same_content(&staged));
    }

    #[test]
    fn a_failed_edit_changes_nothing_and_copies_nothing() {
        let base = seed();
        let mut staged = base.clone();
        assert!(staged.put(&["providers", "beta", "9"], parse("1"), 100).is_err());
        let (Value::Object(a), Value::Object(b)) = (&base, &staged) else { panic!() };
        assert!(Arc::ptr_eq(a, b));
    }

    #[test]
    fn depth_is_bounded() {
        let mut store = Value::empty_object();
        let deep = parse(&format!("{}{}", "[".repeat(10), "]".repeat(10)));
        assert_eq!(deep.depth(), 10);
        assert_eq!(store.put(&["a", "b"], deep.clone(), 10), Err(EditError::TooDeep));
        store.put(&["a"], deep, 11).unwrap();
    }
}
