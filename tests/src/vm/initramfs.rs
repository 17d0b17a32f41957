//! The guest's initramfs: busybox, an `/init` that prepares what iotfence
//! needs (proc, sysfs, devtmpfs, bpffs, loopback, `ip netns`, the modules),
//! and host files copied to the same paths, executables with their libraries.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Component, Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context};

use super::{cpio::Tree, modules::Module};

/// Debian's `busybox-static`: one static binary for the shell and tools.
pub const BUSYBOX: &str = "/bin/busybox";
/// The host's `/bin/sh` (dash) runs the caller's command: Debian's busybox
/// is a "standalone" shell that runs its own applets before anything on
/// PATH, which would shadow a real `ip` or `tc` with busybox's.
pub const SHELL: &str = "/bin/sh";

/// Where `/init` finds the modules it loads.
const MODULE_DIR: &str = "/lib/modules/iotfence-vm";

/// Adds host `path` at the same guest path. Symlinks along the way (the
/// usrmerge `/lib -> usr/lib`, `/lib64/ld-linux…`) are copied as symlinks
/// and followed, so the guest resolves paths exactly as the host does.
/// Directories are copied recursively.
pub fn add_host(tree: &mut Tree, path: &Path) -> anyhow::Result<()> {
    add_depth(tree, Path::new("/"), path, 0)
        .with_context(|| format!("adding {} to the initramfs", path.display()))
}

/// Like `add_host`, for a guest tree kept in host directory `root` (another
/// architecture's extracted packages): `path` is the guest path, and
/// symlinks, absolute ones too, are followed inside `root`.
pub fn add_rooted(tree: &mut Tree, root: &Path, path: &Path) -> anyhow::Result<()> {
    add_depth(tree, root, path, 0).with_context(|| {
        format!(
            "adding {} (from {}) to the initramfs",
            path.display(),
            root.display()
        )
    })
}

/// Where guest path `guest` lies on the host, under `root`.
fn on_host(root: &Path, guest: &Path) -> PathBuf {
    root.join(guest.strip_prefix("/").unwrap_or(guest))
}

fn add_depth(tree: &mut Tree, root: &Path, path: &Path, depth: usize) -> anyhow::Result<()> {
    if depth > 40 {
        bail!("too many symlinks");
    }
    let mut cur = PathBuf::from("/");
    let comps: Vec<Component> = path.components().collect();
    for (i, c) in comps.iter().enumerate() {
        match c {
            Component::ParentDir => {
                cur.pop();
                continue;
            }
            Component::Normal(n) => cur.push(n),
            _ => continue,
        }
        let host = on_host(root, &cur);
        let meta = fs::symlink_metadata(&host).with_context(|| format!("{}", host.display()))?;
        if meta.is_symlink() {
            let target = fs::read_link(&host)?;
            if !tree.has_entry(&cur) {
                tree.symlink(&cur, &target);
            }
            let mut next = cur.parent().unwrap_or(Path::new("/")).join(&target);
            next.extend(&comps[i + 1..]);
            return add_depth(tree, root, &next, depth + 1);
        }
    }
    let host = on_host(root, &cur);
    let meta = fs::metadata(&host)?;
    if meta.is_dir() {
        for e in fs::read_dir(&host)? {
            add_depth(tree, root, &cur.join(e?.file_name()), depth)?;
        }
    } else if !tree.contains(&cur) {
        let data = fs::read(&host).with_context(|| format!("reading {}", host.display()))?;
        tree.file(&cur, meta.permissions().mode() & 0o7777, data);
    }
    Ok(())
}

/// The shared libraries and loader `ldd` finds for `exe` (none if static).
pub fn libraries(exe: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(exe)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if String::from_utf8_lossy(&out.stderr).contains("not a dynamic executable")
            || text.contains("statically linked")
        {
            return Ok(Vec::new());
        }
        bail!(
            "ldd {}: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if let Some(l) = text.lines().find(|l| l.contains("not found")) {
        bail!("ldd {}: {}", exe.display(), l.trim());
    }
    // `libx.so => /path (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)`;
    // the vDSO has no path.
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect())
}

/// Puts the modules and `/init` into `tree`; `nonce` keeps the markers
/// unique to this boot, so a command's output can never fake them.
pub fn add_init(tree: &mut Tree, modules: &[Module], command: &str, nonce: &str, shell: &str) {
    let mut insmod = String::new();
    for m in modules {
        let path = format!("{MODULE_DIR}/{}.ko", m.name);
        tree.file(Path::new(&path), 0o644, m.image.clone());
        insmod += &format!("insmod {path} || fail insmod {}\n", m.name);
    }
    tree.file(
        Path::new("/iotfence-vm/command.sh"),
        0o755,
        command.as_bytes().to_vec(),
    );
    // The kernel opens /dev/console for init's stdio before any mount.
    tree.char_dev(Path::new("/dev/console"), 5, 1);
    tree.file(
        Path::new("/init"),
        0o755,
        init_script(&insmod, nonce, shell).into_bytes(),
    );
}

fn init_script(insmod: &str, nonce: &str, shell: &str) -> String {
    format!(
        r#"#!{BUSYBOX} sh
# Applets at their usual paths; files already there (e.g. a real /usr/sbin/ip)
# are kept, as busybox never overwrites.
{BUSYBOX} mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp /run /var /root
{BUSYBOX} --install -s
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
fail() {{ echo "IOTFENCE-VM-SETUP-FAILED-{nonce}: $*"; poweroff -f; exit 1; }}
mount -t proc proc /proc || fail mount proc
mount -t sysfs sysfs /sys || fail mount sysfs
mount -t devtmpfs devtmpfs /dev || fail mount devtmpfs
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp || fail mount /tmp
mount -t tmpfs tmpfs /run || fail mount /run
mount -t bpf bpf /sys/fs/bpf || fail mount bpffs
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
# `ip netns` keeps its namespaces under /var/run/netns (a shared mount it
# sets up itself); /run is a tmpfs so that bind mount works.
[ -e /var/run ] || ln -s /run /var/run
mkdir -p /run/netns
ip link set lo up || fail loopback
{insmod}echo "IOTFENCE-VM-START-{nonce}"
{shell} /iotfence-vm/command.sh </dev/null 2>&1
echo "IOTFENCE-VM-EXIT-{nonce}=$?"
poweroff -f
"#
    )
}
