//! Kernel modules for the guest, in load order. Debian's image packages ship
//! no `modules.dep` (depmod runs at install time), so dependencies come from
//! each module's own `.modinfo` section (`depends=a,b`), as depmod reads them.

use std::{
    collections::{BTreeMap, HashSet},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context};

/// A module to `insmod`: its name and its decompressed ELF image.
pub struct Module {
    pub name: String,
    pub image: Vec<u8>,
}

/// `wanted` and everything they depend on, dependencies first; modules
/// built into the kernel (listed in `modules.builtin`) are left out.
pub fn resolve(modules_dir: &Path, wanted: &[&str]) -> anyhow::Result<Vec<Module>> {
    let files = index(&modules_dir.join("kernel"))?;
    let builtin: HashSet<String> = fs::read_to_string(modules_dir.join("modules.builtin"))
        .with_context(|| format!("reading {}/modules.builtin", modules_dir.display()))?
        .lines()
        .map(module_name)
        .collect();
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for w in wanted {
        visit(&normal(w), &files, &builtin, &mut seen, &mut order, 0)?;
    }
    Ok(order)
}

fn visit(
    name: &str,
    files: &BTreeMap<String, PathBuf>,
    builtin: &HashSet<String>,
    seen: &mut HashSet<String>,
    order: &mut Vec<Module>,
    depth: usize,
) -> anyhow::Result<()> {
    if depth > 64 {
        bail!("module dependency cycle through {name}");
    }
    if builtin.contains(name) || !seen.insert(name.to_owned()) {
        return Ok(());
    }
    let path = files
        .get(name)
        .with_context(|| format!("module {name} is neither built in nor shipped"))?;
    let image = decompress(path)?;
    for dep in depends(&image).with_context(|| format!("reading {}", path.display()))? {
        visit(&normal(&dep), files, builtin, seen, order, depth + 1)?;
    }
    order.push(Module {
        name: name.to_owned(),
        image,
    });
    Ok(())
}

/// Module name → file, for every `*.ko[.xz|.zst|.gz]` below `dir`.
fn index(dir: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains(".ko") {
                out.insert(module_name(&p.to_string_lossy()), p);
            }
        }
    }
    Ok(out)
}

/// `kernel/net/sched/cls-bpf.ko.xz` → `cls_bpf` (the kernel treats `-` as `_`).
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    normal(file.split(".ko").next().unwrap_or(file))
}

fn normal(name: &str) -> String {
    name.replace('-', "_")
}

fn decompress(path: &Path) -> anyhow::Result<Vec<u8>> {
    let s = path.to_string_lossy();
    let tool = if s.ends_with(".ko") {
        return fs::read(path).with_context(|| format!("reading {s}"));
    } else if s.ends_with(".xz") {
        "xz"
    } else if s.ends_with(".zst") {
        "zstd"
    } else if s.ends_with(".gz") {
        "gzip"
    } else {
        bail!("unknown module compression: {s}");
    };
    let out = Command::new(tool)
        .args(["-dc"])
        .arg(path)
        .output()
        .with_context(|| format!("running {tool} -dc {s} (install {tool})"))?;
    if !out.status.success() {
        bail!("{tool} -dc {s}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// The `depends=` entry of an ELF64 module's `.modinfo` section.
fn depends(elf: &[u8]) -> anyhow::Result<Vec<String>> {
    let modinfo = section(elf, ".modinfo").context("no .modinfo section")?;
    Ok(modinfo
        .split(|b| *b == 0)
        .filter_map(|kv| kv.strip_prefix(b"depends="))
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|d| !d.is_empty())
        .collect())
}

/// The bytes of the named section of a little-endian ELF64 file.
fn section<'a>(elf: &'a [u8], want: &str) -> Option<&'a [u8]> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?) as usize);
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?) as usize);
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?) as usize);
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None; // not ELF64 little-endian
    }
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28)?, u16_at(0x3a)?, u16_at(0x3c)?, u16_at(0x3e)?);
    let header = |i: usize| shoff + i * shentsize;
    let bytes = |i: usize| -> Option<&'a [u8]> {
        let (off, size) = (u64_at(header(i) + 0x18)?, u64_at(header(i) + 0x20)?);
        elf.get(off..off.checked_add(size)?)
    };
    let names = bytes(shstrndx)?;
    (0..shnum).find_map(|i| {
        let n = u32_at(header(i))?;
        let name = names.get(n..)?.split(|b| *b == 0).next()?;
        (name == want.as_bytes()).then(|| bytes(i)).flatten()
    })
}
