//! Where the datapath's maps are pinned, and the one way to open one: every
//! caller (daemon, metrics, tests, benchmarks) goes through here, so the
//! layout under the pin directory is written down once.

use std::path::{Path, PathBuf};

use anyhow::Context;
use aya::maps::{Map, MapData, MapError};

/// The directory the loader pins maps in.
pub fn map_dir(pin_dir: &Path) -> PathBuf {
    pin_dir.join("maps")
}

/// The directory programs are pinned in (with the record of what they
/// are, see `verified`).
pub fn prog_dir(pin_dir: &Path) -> PathBuf {
    pin_dir.join("progs")
}

/// The pin of map `name` under `pin_dir`.
pub fn map_path(pin_dir: &Path, name: &str) -> PathBuf {
    map_dir(pin_dir).join(name)
}

/// The pinned map `name`, untyped (for its info or fd).
pub fn map_data(pin_dir: &Path, name: &str) -> anyhow::Result<MapData> {
    let p = map_path(pin_dir, name);
    MapData::from_pin(&p).with_context(|| format!("opening {}", p.display()))
}

/// The pinned map `name` as a typed handle (`HashMap`, `PerCpuArray`, ...);
/// the map's kernel type picks the variant.
pub fn open_pinned<T: TryFrom<Map, Error = MapError>>(
    pin_dir: &Path,
    name: &str,
) -> anyhow::Result<T> {
    let map = Map::from_map_data(map_data(pin_dir, name)?)?;
    T::try_from(map).with_context(|| format!("map {name} has an unexpected type"))
}
