//! The layout of every sheet a person fills in and sends back: its name,
//! the header row, the columns the tool writes and the input columns with
//! their drop-downs. Defined once here; `build` writes the tool's columns
//! in this order, `sheets` writes, protects and validates the inputs from
//! it, and `worksheet` reads a returned workbook back by it. A column
//! added here appears in all three.

/// What an officer may type in an input column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// One of these (a drop-down; anything else is refused on return).
    Choice(&'static [&'static str]),
    /// Free text.
    Text,
    /// A date.
    Date,
}

/// A sheet's columns: those the tool writes, then the inputs.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub sheet: &'static str,
    pub tool: &'static [&'static str],
    pub inputs: &'static [(&'static str, Input)],
}

/// The header row of every table sheet (0-based: a title, a blank row,
/// then the header).
pub const HEADER_ROW: u32 = 2;

const YES_NO: &[&str] = &["是", "否"];

/// Point 6(1): the sample worksheet. One row is one sampled record and
/// everything its four answers rest on: the account (its holder below it,
/// and its agency when a subordinate one's), the query, the request form
/// that explains it (number and purpose; approver and approval time) and
/// the form's 查詢事由. Who audited and when is asked once, in the sign-off
/// below the table ([`SIGN_OFF`]), not on every row. It prints one A4
/// page wide at legible size.
pub const SAMPLE_WORKSHEET: Layout = Layout {
    sheet: "抽查工作底稿",
    tool: &[
        "序號",
        "帳號",
        "查詢時間",
        "查詢項目",
        "被查詢人",
        "查詢目的",
        "紀錄表",
        "核准",
        "查詢事由",
        "系統預檢",
    ],
    inputs: &[
        ("紀錄表已填具", Input::Choice(YES_NO)),
        ("主管事前核可", Input::Choice(YES_NO)),
        ("事由與查詢相符", Input::Choice(&["是", "否", "不確定"])),
        ("異常", Input::Choice(&["無", "有"])),
        ("說明", Input::Text),
    ],
};

/// Inputs the sample worksheet had on every row before its sign-off
/// asked them once: a worksheet sent out with them still comes back.
pub const SAMPLE_WORKSHEET_BEFORE_SIGN_OFF: &[(&str, Input)] =
    &[("稽核人員", Input::Text), ("稽核日期", Input::Date)];

/// The sign-off below every sheet a person fills in: who filled it in,
/// the unit's head and the day, each asked once (for the sample worksheet
/// the first is its auditor, the last its audit day). The labels sit in
/// the second column, the answers beside them.
pub const SIGN_OFF: [(&str, Input); 3] = [
    ("填表人（簽章）", Input::Text),
    ("單位主管（簽章）", Input::Text),
    ("日期", Input::Date),
];

/// The inputs of the account review (帳號清查, and the city-wide review
/// of officer accounts).
pub const ACCOUNT_REVIEW_INPUTS: &[(&str, Input)] = &[
    (
        "處理結果",
        Input::Choice(&["已廢止", "已調整權限", "保留", "其他"]),
    ),
    ("說明", Input::Text),
    ("處理人", Input::Text),
    ("處理日", Input::Date),
];

/// What was done about each query finding (異常查詢) and each account
/// not in the roster (清冊外帳號): the unit writes it down, and the
/// ethics unit's involvement (point 6(3)) has its date.
pub const FOLLOW_UP_INPUTS: &[(&str, Input)] = &[
    ("處理情形", Input::Text),
    ("政風通知日", Input::Date),
    ("完成日", Input::Date),
];

/// Point 6(3): the investigation record of the anomalies a returned
/// worksheet confirmed, investigated with the ethics unit.
pub const INVESTIGATION: Layout = Layout {
    sheet: "調查紀錄",
    tool: &[
        "序號",
        "帳號",
        "查詢時間",
        "查詢項目",
        "被查詢人",
        "確認之異常",
    ],
    inputs: &[
        ("會同調查之政風人員", Input::Text),
        ("調查經過", Input::Text),
        (
            "結論",
            Input::Choice(&["異常屬實", "經查無異常", "移送懲處", "其他"]),
        ),
        ("處置", Input::Text),
        ("完成日", Input::Date),
    ],
};

/// Point 6(3): the investigation record of the duties a returned
/// internal audit found 不符合, investigated with the ethics unit.
pub const INTERNAL_INVESTIGATION: Layout = Layout {
    sheet: "調查紀錄",
    tool: &["序號", "查核項目", "依據", "不符合情形"],
    inputs: INVESTIGATION.inputs,
};

/// Points 4(2), 6(4): what a unit did about what its external audit found
/// 不符合, recorded by the unit and returned.
pub const EXTERNAL_FOLLOW_UP: Layout = Layout {
    sheet: "改善紀錄",
    tool: &["序號", "查核項目", "依據", "不符合情形"],
    inputs: &[
        ("改善措施", Input::Text),
        ("會同之政風人員", Input::Text),
        ("完成日", Input::Date),
    ],
};

/// The inputs of the internal audit's checklist: one decision per duty
/// (查核結果), how it was checked and on what evidence (what the system
/// cannot show, the auditor attests), and what was found.
pub const INTERNAL_AUDIT_INPUTS: &[(&str, Input)] = &[
    ("查核結果", Input::Choice(&["符合", "不符合", "不適用"])),
    ("查核方式", Input::Text),
    ("佐證", Input::Text),
    ("說明", Input::Text),
];

impl Layout {
    /// Every header, the tool's then the inputs.
    pub fn headers(&self) -> Vec<&'static str> {
        self.tool
            .iter()
            .copied()
            .chain(self.inputs.iter().map(|(h, _)| *h))
            .collect()
    }

    /// The column of `header` (0-based), tool or input.
    ///
    /// # Panics
    /// If the layout has no such column: a programming error a test
    /// meets first.
    pub fn column(&self, header: &str) -> usize {
        self.headers()
            .iter()
            .position(|h| *h == header)
            .unwrap_or_else(|| panic!("{}: no column {header}", self.sheet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_unique_and_columns_found_by_name() {
        let h = SAMPLE_WORKSHEET.headers();
        let unique: std::collections::BTreeSet<_> = h.iter().collect();
        assert_eq!(unique.len(), h.len());
        assert_eq!(SAMPLE_WORKSHEET.column("帳號"), 1);
        assert_eq!(SAMPLE_WORKSHEET.column("異常"), 13);
    }
}
