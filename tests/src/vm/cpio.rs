//! An in-memory file tree written as a `newc` cpio archive, the format the
//! kernel unpacks as its initramfs (uncompressed: under TCG the guest would
//! spend longer inflating it than qemu spends reading it).

use std::{
    collections::BTreeMap,
    io::{self, Write},
    path::{Component, Path, PathBuf},
};

#[derive(Debug, Clone)]
enum Entry {
    Dir,
    File { mode: u32, data: Vec<u8> },
    Symlink(PathBuf),
    CharDev { major: u32, minor: u32 },
}

/// Absolute guest paths → entries. Parent directories are implied, and a
/// path through a symlink already in the tree is stored at its target, as
/// unpacking it would (Debian's `/lib -> usr/lib` must stay a symlink).
#[derive(Default)]
pub struct Tree {
    entries: BTreeMap<PathBuf, Entry>,
}

impl Tree {
    pub fn file(&mut self, path: &Path, mode: u32, data: Vec<u8>) {
        self.put(path, Entry::File { mode, data });
    }

    pub fn symlink(&mut self, path: &Path, target: &Path) {
        self.put(path, Entry::Symlink(target.to_owned()));
    }

    pub fn char_dev(&mut self, path: &Path, major: u32, minor: u32) {
        self.put(path, Entry::CharDev { major, minor });
    }

    /// Whether `path` (resolved through the tree's symlinks) is present.
    pub fn contains(&self, path: &Path) -> bool {
        self.entries.contains_key(&self.resolve(path))
    }

    /// Whether `path` itself, unresolved, is present.
    pub fn has_entry(&self, path: &Path) -> bool {
        self.entries.contains_key(path)
    }

    fn put(&mut self, path: &Path, entry: Entry) {
        let parent = self.resolve(path.parent().unwrap_or(Path::new("/")));
        let path = parent.join(path.file_name().expect("a file name"));
        let mut dir = PathBuf::from("/");
        for c in parent.components().skip(1) {
            dir.push(c);
            self.entries.entry(dir.clone()).or_insert(Entry::Dir);
        }
        self.entries.insert(path, entry);
    }

    /// Follows symlinks of the tree in every component of `path`.
    fn resolve(&self, path: &Path) -> PathBuf {
        let mut out = PathBuf::from("/");
        let mut rest: Vec<Component> = path.components().rev().collect();
        let mut hops = 0;
        while let Some(c) = rest.pop() {
            match c {
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(n) => {
                    let next = out.join(n);
                    match self.entries.get(&next) {
                        Some(Entry::Symlink(t)) if hops < 40 => {
                            hops += 1;
                            if t.is_absolute() {
                                out = PathBuf::from("/");
                            }
                            rest.extend(t.components().rev().collect::<Vec<_>>());
                        }
                        _ => out = next,
                    }
                }
            }
        }
        out
    }

    /// Writes the archive; parents sort before children in the map.
    pub fn write_newc(&self, w: &mut impl Write) -> io::Result<()> {
        for (ino, (path, entry)) in (1u32..).zip(&self.entries) {
            let name = path.to_string_lossy();
            let name = name.trim_start_matches('/');
            let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match entry {
                Entry::Dir => (0o040755, &[], (0, 0)),
                Entry::File { mode, data } => (0o100000 | mode, data, (0, 0)),
                Entry::Symlink(t) => (0o120777, t.as_os_str().as_encoded_bytes(), (0, 0)),
                Entry::CharDev { major, minor } => (0o020600, &[], (*major, *minor)),
            };
            record(w, ino, mode, name, data, rdev)?;
        }
        record(w, 0, 0, "TRAILER!!!", &[], (0, 0))
    }
}

fn record(
    w: &mut impl Write,
    ino: u32,
    mode: u32,
    name: &str,
    data: &[u8],
    (rmaj, rmin): (u32, u32),
) -> io::Result<()> {
    let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        data.len() as u32,
        0, // devmajor
        0, // devminor
        rmaj,
        rmin,
        name.len() as u32 + 1,
        0, // check
    ];
    let mut header = String::from("070701");
    for f in fields {
        header += &format!("{f:08x}");
    }
    w.write_all(header.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    pad(w, 110 + name.len() + 1)?;
    w.write_all(data)?;
    pad(w, data.len())
}

fn pad(w: &mut impl Write, len: usize) -> io::Result<()> {
    w.write_all(&[0; 3][..(4 - len % 4) % 4])
}
