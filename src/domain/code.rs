//! Open codes: a value of a CodeSystem under `mappings/fhir/` that a region may extend by
//! editing the file, so the set is known only at run time yet the domain's values stay `Copy`.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Mutex, OnceLock};

/// A pool of interned values of one type.
pub(crate) type Pool<T> = OnceLock<Mutex<HashSet<&'static T>>>;

/// The one copy of `value` in `pool`: an open code's definition is then a pointer, 8 bytes in
/// every contact that names it, however many contacts a region has.
pub(crate) fn intern_in<T: Eq + Hash + Send + Sync + 'static>(
    pool: &'static Pool<T>,
    value: T,
) -> &'static T {
    let mut set = pool
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(v) = set.get(&value) {
        return v;
    }
    let v: &'static T = Box::leak(Box::new(value));
    set.insert(v);
    v
}

/// The one copy of a code's text for the life of the process. A run reads a few dozen distinct
/// codes (a CodeSystem's concepts, and the words a register uses beyond them), so the pool stays
/// small whatever the register's size.
pub(crate) fn intern(code: &str) -> &'static str {
    static POOL: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut pool = POOL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(s) = pool.get(code) {
        return s;
    }
    let s: &'static str = Box::leak(code.to_owned().into_boxed_str());
    pool.insert(s);
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_copy_per_code() {
        let a = super::intern("dietist");
        let b = super::intern(&String::from("dietist"));
        assert!(std::ptr::eq(a, b));
        assert_ne!(super::intern("kurator"), a);
    }
}
