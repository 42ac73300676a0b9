/// Parse a duration such as "10s" or "5m" into seconds.
pub fn parse_duration(text: &str) -> Option<u64> {
    let (number, unit) = text.split_at(text.len() - 1);
    let value: u64 = number.parse().ok()?;
    match unit {
        "s" => Some(value),
        "m" => Some(value * 60),
        "h" => Some(value * 3600),
        _ => None,
    }
}

pub struct Tokenizer {
    pos: usize,
}

impl Tokenizer {
    /// Skip whitespace and return the next word.
    pub fn next_word<'a>(&mut self, input: &'a str) -> Option<&'a str> {
        let rest = &input[self.pos..];
        let start = rest.find(|c: char| !c.is_whitespace())?;
        let end = rest[start..].find(char::is_whitespace).map_or(rest.len(), |e| start + e);
        self.pos += end;
        Some(&rest[start..end])
    }
}
