//! Cursor pagination: ids are time-ordered, so "after this id" is a stable cursor.

/// Which page to read.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Continue after (or, for newest-first lists, before) this id.
    pub cursor: Option<String>,
    pub limit: u32,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 500;

    pub fn new(cursor: Option<String>, limit: Option<u32>) -> Self {
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT).clamp(1, Self::MAX_LIMIT);
        PageRequest { cursor, limit }
    }

    /// Rows to fetch: one more than the limit tells whether a next page exists.
    pub(crate) fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

/// A page of rows.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    pub(crate) fn from_rows(mut items: Vec<T>, req: &PageRequest, id: impl Fn(&T) -> &str) -> Self {
        let limit = req.limit as usize;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|t| id(t).to_owned())
        } else {
            None
        };
        Page { items, next_cursor }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}
