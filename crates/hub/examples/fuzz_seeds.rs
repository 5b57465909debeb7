//! Writes the committed seed corpus of the fuzz targets (see docs/fuzzing.md):
//!
//! ```text
//! cargo run -p quire-hub --features harness --example fuzz_seeds -- fuzz/corpus
//! ```
//!
//! One file per seed, `<folder>/<target>/<seed>`; the seeds too large to
//! commit are left to the property tests, which generate them.

use std::path::PathBuf;

use quire_hub::harness::seeds;

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".to_owned()),
    );
    let mut written = 0;
    for seed in seeds().into_iter().filter(|s| s.committed()) {
        let dir = root.join(seed.target.name());
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(seed.name), &seed.input)?;
        written += 1;
    }
    println!("{written} seeds written under {}", root.display());
    Ok(())
}
