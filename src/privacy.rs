//! Masking of personal data for anything a person reads: national IDs of
//! people queried (`A123456789` → `A12****789`) and their names (`王小明` →
//! `王○明`). One definition, used as a plain function and as a polars
//! expression, so every output masks the same way.

use polars::prelude::*;

/// `A123456789` → `A12****789`; anything shorter than 7 characters is
/// masked whole, so a malformed ID never leaks in part.
pub fn mask_national_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() < 7 {
        return "*".repeat(chars.len().max(3));
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{head}****{tail}")
}

/// The same masking as [`mask_national_id`], over a string column.
pub fn mask_national_id_expr(id: Expr) -> Expr {
    let len = id.clone().str().len_chars();
    when(len.clone().gt_eq(lit(7u32)))
        .then(concat_str(
            [
                id.clone().str().slice(lit(0i64), lit(3u64)),
                lit("****"),
                id.str().slice(lit(-3i64), lit(3u64)),
            ],
            "",
            false,
        ))
        .otherwise(lit("***"))
}

/// `王小明` → `王○明`, `王明` → `王○`, `歐陽小明` → `歐○○明`: the first and
/// last characters stay, the ones between become ○.
pub fn mask_name(name: &str) -> String {
    let chars: Vec<char> = name.trim().chars().collect();
    match chars.len() {
        0 => String::new(),
        1 => "○".into(),
        2 => format!("{}○", chars[0]),
        n => format!("{}{}{}", chars[0], "○".repeat(n - 2), chars[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_masked() {
        assert_eq!(mask_national_id("A123456789"), "A12****789");
        assert_eq!(mask_national_id("A12"), "***");
        // docs/sampling.md § 9: short IDs keep only their length (at
        // least three stars); seven or more keep three at each end.
        assert_eq!(mask_national_id("A1234"), "*****");
        assert_eq!(mask_national_id("AB1234567"), "AB1****567");
        assert_eq!(mask_name("王小明"), "王○明");
        assert_eq!(mask_name("王明"), "王○");
        assert_eq!(mask_name("歐陽小明"), "歐○○明");
    }

    #[test]
    fn the_expression_masks_like_the_function() {
        let ids = ["A123456789", "AB12345678", "A12", "B2234567"];
        let df = df!("id" => ids).unwrap();
        let out = df
            .lazy()
            .select([mask_national_id_expr(col("id"))])
            .collect()
            .unwrap();
        let got: Vec<String> = out
            .column("id")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap().to_owned())
            .collect();
        let want: Vec<String> = ids.iter().map(|i| mask_national_id(i)).collect();
        assert_eq!(got, want);
    }
}

/// `text` with every national ID in it masked as [`mask_national_id`]
/// masks one: a letter, then 1, 2, 8, 9 or A to D, then eight digits,
/// standing apart from other letters and digits. Free text typed by a
/// person (a form's 查詢事由, a returned worksheet's 說明) may hold one.
pub fn mask_ids_in_text(text: &str) -> String {
    // An ID typed through a Chinese input method comes in full-width
    // letters and digits (Ａ１２３…): matched as their ASCII forms, and
    // every other character left as it was written.
    let written: Vec<char> = text.chars().collect();
    let chars: Vec<char> = text
        .chars()
        .map(|c| match c {
            'Ａ'..='Ｚ' | 'ａ'..='ｚ' | '０'..='９' => {
                char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
            }
            c => c,
        })
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let fits = i + 10 <= chars.len()
            && (i == 0 || !chars[i - 1].is_ascii_alphanumeric())
            && chars.get(i + 10).is_none_or(|c| !c.is_ascii_alphanumeric())
            && chars[i].is_ascii_alphabetic()
            && matches!(
                chars[i + 1].to_ascii_uppercase(),
                '1' | '2' | '8' | '9' | 'A'..='D'
            )
            && chars[i + 2..i + 10].iter().all(char::is_ascii_digit);
        if fits {
            let id: String = chars[i..i + 10].iter().collect();
            out.push_str(&mask_national_id(&id.to_ascii_uppercase()));
            i += 10;
        } else {
            out.push(written[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn ids_in_free_text_are_masked_and_nothing_else() {
        let masked = mask_ids_in_text(
            "查詢 A123456789 之投保，另 b212345678；單號 F2026-000001、X1234567890；全形 Ｃ１２３４５６７８９",
        );
        assert!(
            !masked.contains("Ｃ１２３４") && !masked.contains("C123456789"),
            "{masked}"
        );
        assert_eq!(mask_ids_in_text("全形ＡＢＣ"), "全形ＡＢＣ");
        assert!(
            !masked.contains("A123456789") && !masked.contains("b212345678"),
            "{masked}"
        );
        assert!(masked.contains(&mask_national_id("A123456789")), "{masked}");
        assert!(
            masked.contains("F2026-000001") && masked.contains("X1234567890"),
            "{masked}"
        );
        assert_eq!(mask_ids_in_text("無"), "無");
    }
}
