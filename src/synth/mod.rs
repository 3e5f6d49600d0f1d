//! placeholder
pub const DEFAULT_SEED: u64 = 20260701;
pub fn write_sample_city(_dir: &std::path::Path, _seed: u64) -> anyhow::Result<()> { anyhow::bail!("not yet") }
pub fn write_large_query_log(_dir: &std::path::Path, _n: usize, _seed: u64) -> anyhow::Result<()> { anyhow::bail!("not yet") }
