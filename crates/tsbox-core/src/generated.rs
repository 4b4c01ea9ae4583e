//! The TypeScript files generated from this crate, and the test that keeps
//! them current: `npm run generate` writes them (TSBOX_GENERATE=1), and
//! `cargo test` fails while one is stale.

/// Each generated file, by its path from the repository root, with its text.
pub fn files() -> Vec<(&'static str, String)> {
    vec![("ts/generated/tables.ts", crate::tables::typescript())]
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn generated_typescript_is_current() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let write = std::env::var_os("TSBOX_GENERATE").is_some();
        for (file, text) in super::files() {
            let path = root.join(file);
            if write {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &text).unwrap();
                continue;
            }
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(on_disk == text, "{file} is stale: run `npm run generate` and commit it");
        }
    }
}
