//! Reading a tree of data files (profiles, mappings), from disk or from the copy compiled
//! into the binary, as `(path relative to the root with '/', bytes)` pairs in path order.

use std::io;
use std::path::Path;

use include_dir::Dir;

/// Every file below `root` whose relative path `keep` accepts.
///
/// # Errors
/// An I/O error that names the file or folder.
pub fn read_tree(root: &Path, keep: impl Fn(&str) -> bool) -> io::Result<Vec<(String, Vec<u8>)>> {
    let named = |path: &Path, error: io::Error| {
        io::Error::new(error.kind(), format!("{}: {error}", path.display()))
    };
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| named(&dir, e))? {
            let path = entry.map_err(|e| named(&dir, e))?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            if keep(&relative) {
                let bytes = std::fs::read(&path).map_err(|e| named(&path, e))?;
                files.push((relative, bytes));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Every embedded file whose relative path `keep` accepts.
#[must_use]
pub fn embedded_tree(root: &Dir<'static>, keep: impl Fn(&str) -> bool) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![root];
    while let Some(dir) = pending.pop() {
        for file in dir.files() {
            let path = file.path().to_string_lossy().replace('\\', "/");
            if keep(&path) {
                files.push((path, file.contents().to_vec()));
            }
        }
        pending.extend(dir.dirs());
    }
    files.sort();
    files
}
