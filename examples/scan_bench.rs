use polars::prelude::*;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let mode = std::env::args().nth(2).unwrap_or_default();
    let t = std::time::Instant::now();
    let lf = LazyCsvReader::new(PlRefPath::try_from_path(std::path::Path::new(&path)).unwrap())
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .finish()
        .unwrap();
    let lf = match mode.as_str() {
        "strip" => lf.select([all().as_expr().str().strip_chars(lit(NULL))]),
        "upper" => lf.select([col("被查詢人身分證號").str().to_uppercase()]),
        "regex" => lf.select([col("被查詢人身分證號").str().contains(lit(r"^[A-Z][A-Z0-9][0-9]{8}$"), true)]),
        "time" => lf.select([col("查詢時間").str().strptime(DataType::Datetime(TimeUnit::Microseconds, None), StrptimeOptions { format: Some("%Y-%m-%d %H:%M:%S".into()), strict: false, exact: true, cache: false }, lit("raise"))]),
        "replace" => lf.select([col("機關").str().to_uppercase().replace_strict(lit(Series::new("a".into(), ["KHB","KPB"])), lit(Series::new("b".into(), ["KHB","KPB"])), Some(lit(NULL).cast(DataType::String)), Some(DataType::String))]),
        _ => lf,
    };
    let df = lf.collect_with_engine(Engine::Streaming).unwrap().unwrap_single();
    eprintln!("{mode}: {} rows in {:?}", df.height(), t.elapsed());
}
