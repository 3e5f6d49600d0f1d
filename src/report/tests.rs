use super::*;

#[test]
fn cjk_counts_double() {
    assert_eq!(display_width("abc"), 3);
    assert_eq!(display_width("衛生局"), 6);
    assert_eq!(display_width("A12****789"), 10);
    assert_eq!(display_width("（全形）"), 8);
}

#[test]
fn period_labels_read_as_officers_write_them() {
    assert_eq!(period_label("2026H1"), "2026年上半年（民國115年）");
    assert_eq!(period_label("2026"), "2026年全年（民國115年）");
    assert_eq!(period_label("2026Q3"), "2026年第三季（民國115年）");
    assert_eq!(
        period_label("2026-02-01..2026-02-28"),
        "2026-02-01..2026-02-28"
    );
}

#[test]
fn formula_lookalikes_are_recognised() {
    for s in ["=1+1", "+886", "-1", "@SUM(A1)", "\tx", "\rx"] {
        assert!(looks_like_formula(s), "{s:?}");
    }
    for s in ["a=1", "衛生局", "", "1-2"] {
        assert!(!looks_like_formula(s), "{s:?}");
    }
}
