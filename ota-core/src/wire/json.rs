//! A small, strict, zero-copy JSON scanner for job documents (RFC 8259, spec §2.2).
//!
//! Why our own: the job parser must hand the raw text of `execution.jobDocument` to the
//! application (custom jobs, spec §2.2), name the offending key in its errors and read numbers
//! the way the reference agent does ([`crate::wire::number`]); it must not allocate and must not
//! recurse without bound.
//!
//! How it works: [`parse`] checks the whole input once ([`validate`]: UTF-8, grammar, nesting
//! at most [`MAX_DEPTH`], no lone surrogate escapes, nothing after the top value) without
//! recursion, then returns a [`Value`] view of the top value. Views are spans of the input;
//! navigating them ([`Object::get`], [`Array::iter`]) re-scans the already validated text
//! lazily, so nothing is stored and every lookup is a linear scan of one container.
//!
//! Supported: everything in RFC 8259. Not supported, on purpose: lone UTF-16 surrogates in
//! `\u` escapes (rejected, so every string can be unescaped to UTF-8), nesting deeper than
//! [`MAX_DEPTH`], a byte-order mark.

use core::fmt;

/// Deepest nesting of objects and arrays [`validate`] accepts. A job document nests 5 deep;
/// the limit bounds the work on hostile input (the scanner itself does not recurse).
pub const MAX_DEPTH: usize = 32;

/// What is wrong with a JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonErrorKind {
    /// The input is not UTF-8 (RFC 8259 §8.1).
    InvalidUtf8,
    /// The text ends inside a value.
    UnexpectedEnd,
    /// A byte that the grammar does not allow here.
    UnexpectedByte,
    /// A backslash escape other than `\" \\ \/ \b \f \n \r \t \uXXXX`.
    InvalidEscape,
    /// A `\u` escape of a lone UTF-16 surrogate.
    LoneSurrogate,
    /// An unescaped control character (below U+0020) inside a string.
    ControlCharacter,
    /// A malformed number (`01`, `1.`, `-`, `1e`).
    InvalidNumber,
    /// Objects and arrays nest deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Something other than whitespace after the top-level value.
    TrailingData,
    /// [`JsonStr::unescape_into`] was given a buffer too small for the text.
    BufferTooSmall,
}

/// A JSON error: what and where (byte offset into the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JsonError {
    /// What is wrong.
    pub kind: JsonErrorKind,
    /// Byte offset into the scanned input (for [`JsonErrorKind::BufferTooSmall`]: the number
    /// of bytes that would have been needed).
    pub offset: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            JsonErrorKind::InvalidUtf8 => "invalid UTF-8",
            JsonErrorKind::UnexpectedEnd => "unexpected end of JSON",
            JsonErrorKind::UnexpectedByte => "unexpected character",
            JsonErrorKind::InvalidEscape => "invalid escape",
            JsonErrorKind::LoneSurrogate => "lone UTF-16 surrogate escape",
            JsonErrorKind::ControlCharacter => "control character in string",
            JsonErrorKind::InvalidNumber => "invalid number",
            JsonErrorKind::TooDeep => "nesting too deep",
            JsonErrorKind::TrailingData => "data after the JSON value",
            JsonErrorKind::BufferTooSmall => "buffer too small, need",
        };
        write!(f, "{what} at byte {}", self.offset)
    }
}

impl core::error::Error for JsonError {}

const fn err(kind: JsonErrorKind, offset: usize) -> JsonError {
    JsonError { kind, offset }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_ws(b: &[u8], mut p: usize) -> usize {
    while b.get(p).is_some_and(|&c| is_ws(c)) {
        p += 1;
    }
    p
}

fn hex4(b: &[u8], p: usize) -> Option<u16> {
    let digits = b.get(p..p.checked_add(4)?)?;
    let mut v: u16 = 0;
    for &d in digits {
        v = (v << 4) | char::from(d).to_digit(16)? as u16;
    }
    Some(v)
}

fn is_high_surrogate(u: u16) -> bool {
    (0xD800..0xDC00).contains(&u)
}

fn is_low_surrogate(u: u16) -> bool {
    (0xDC00..0xE000).contains(&u)
}

/// Check a string starting at the `"` at `p`; return the offset after the closing quote.
fn scan_string(b: &[u8], p: usize) -> Result<usize, JsonError> {
    let mut p = p + 1;
    loop {
        match b.get(p) {
            None => return Err(err(JsonErrorKind::UnexpectedEnd, p)),
            Some(b'"') => return Ok(p + 1),
            Some(b'\\') => {
                let esc = p;
                match b.get(p + 1) {
                    None => return Err(err(JsonErrorKind::UnexpectedEnd, p + 1)),
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => p += 2,
                    Some(b'u') => {
                        let u = hex4(b, p + 2).ok_or(err(JsonErrorKind::InvalidEscape, esc))?;
                        p += 6;
                        if is_high_surrogate(u) {
                            let low = match (b.get(p), b.get(p + 1)) {
                                (Some(b'\\'), Some(b'u')) => hex4(b, p + 2),
                                _ => None,
                            };
                            if !low.is_some_and(is_low_surrogate) {
                                return Err(err(JsonErrorKind::LoneSurrogate, esc));
                            }
                            p += 6;
                        } else if is_low_surrogate(u) {
                            return Err(err(JsonErrorKind::LoneSurrogate, esc));
                        }
                    }
                    Some(_) => return Err(err(JsonErrorKind::InvalidEscape, esc)),
                }
            }
            Some(&c) if c < 0x20 => return Err(err(JsonErrorKind::ControlCharacter, p)),
            Some(_) => p += 1,
        }
    }
}

fn skip_digits(b: &[u8], mut p: usize) -> usize {
    while b.get(p).is_some_and(u8::is_ascii_digit) {
        p += 1;
    }
    p
}

/// Check a number starting at `p`; return the offset after it.
fn scan_number(b: &[u8], start: usize) -> Result<usize, JsonError> {
    let bad = err(JsonErrorKind::InvalidNumber, start);
    let mut p = start;
    if b.get(p) == Some(&b'-') {
        p += 1;
    }
    match b.get(p) {
        Some(b'0') => p += 1,
        Some(b'1'..=b'9') => p = skip_digits(b, p),
        _ => return Err(bad),
    }
    if b.get(p) == Some(&b'.') {
        let q = skip_digits(b, p + 1);
        if q == p + 1 {
            return Err(bad);
        }
        p = q;
    }
    if matches!(b.get(p), Some(b'e' | b'E')) {
        p += 1;
        if matches!(b.get(p), Some(b'+' | b'-')) {
            p += 1;
        }
        let q = skip_digits(b, p);
        if q == p {
            return Err(bad);
        }
        p = q;
    }
    // `01`, `1a`: a number must end at a delimiter.
    match b.get(p) {
        Some(c) if c.is_ascii_alphanumeric() || *c == b'.' => Err(bad),
        _ => Ok(p),
    }
}

fn scan_literal(b: &[u8], p: usize, word: &[u8]) -> Result<usize, JsonError> {
    let end = p + word.len();
    match b.get(p..end) {
        Some(w) if w == word => Ok(end),
        Some(_) => Err(err(JsonErrorKind::UnexpectedByte, p)),
        None => Err(err(JsonErrorKind::UnexpectedEnd, b.len())),
    }
}

/// After `{` or `,` in an object: expect `"key" :` and return the offset after the colon.
fn scan_key(b: &[u8], p: usize) -> Result<usize, JsonError> {
    let p = skip_ws(b, p);
    match b.get(p) {
        Some(b'"') => {}
        Some(_) => return Err(err(JsonErrorKind::UnexpectedByte, p)),
        None => return Err(err(JsonErrorKind::UnexpectedEnd, p)),
    }
    let p = skip_ws(b, scan_string(b, p)?);
    match b.get(p) {
        Some(b':') => Ok(p + 1),
        Some(_) => Err(err(JsonErrorKind::UnexpectedByte, p)),
        None => Err(err(JsonErrorKind::UnexpectedEnd, p)),
    }
}

/// Check that `input` is one strict JSON value (RFC 8259) with at most [`MAX_DEPTH`] levels of
/// nesting (spec §2.2: the reference agent runs `JSON_Validate` on the whole payload first).
///
/// Iterative: the open containers are a bit stack in a `u32`, so stack use is constant.
pub fn validate(input: &[u8]) -> Result<(), JsonError> {
    if let Err(e) = core::str::from_utf8(input) {
        return Err(err(JsonErrorKind::InvalidUtf8, e.valid_up_to()));
    }
    let b = input;
    // Bit i set: the container at depth i is an object.
    let mut objects: u32 = 0;
    let mut depth: usize = 0;
    let mut p = 0;
    loop {
        // Expect a value at p.
        p = skip_ws(b, p);
        let mut next_value = false;
        match b.get(p) {
            Some(&open @ (b'{' | b'[')) => {
                if depth >= MAX_DEPTH {
                    return Err(err(JsonErrorKind::TooDeep, p));
                }
                let q = skip_ws(b, p + 1);
                let close = if open == b'{' { b'}' } else { b']' };
                if b.get(q) == Some(&close) {
                    p = q + 1;
                } else {
                    let bit = 1u32 << depth;
                    if open == b'{' {
                        objects |= bit;
                        p = scan_key(b, q)?;
                    } else {
                        objects &= !bit;
                        p = q;
                    }
                    depth += 1;
                    continue;
                }
            }
            Some(b'"') => p = scan_string(b, p)?,
            Some(b't') => p = scan_literal(b, p, b"true")?,
            Some(b'f') => p = scan_literal(b, p, b"false")?,
            Some(b'n') => p = scan_literal(b, p, b"null")?,
            Some(b'-' | b'0'..=b'9') => p = scan_number(b, p)?,
            Some(_) => return Err(err(JsonErrorKind::UnexpectedByte, p)),
            None => return Err(err(JsonErrorKind::UnexpectedEnd, p)),
        }
        // After a value: close containers or move to the next element.
        while !next_value {
            p = skip_ws(b, p);
            let Some(top) = depth.checked_sub(1) else {
                return if p == b.len() {
                    Ok(())
                } else {
                    Err(err(JsonErrorKind::TrailingData, p))
                };
            };
            let in_object = objects & (1u32 << top) != 0;
            match b.get(p) {
                Some(b',') => {
                    p = if in_object {
                        scan_key(b, p + 1)?
                    } else {
                        p + 1
                    };
                    next_value = true;
                }
                Some(b'}') if in_object => {
                    p += 1;
                    depth = top;
                }
                Some(b']') if !in_object => {
                    p += 1;
                    depth = top;
                }
                Some(_) => return Err(err(JsonErrorKind::UnexpectedByte, p)),
                None => return Err(err(JsonErrorKind::UnexpectedEnd, p)),
            }
        }
    }
}

/// [`validate`] `input` and return a view of its top-level value.
///
/// ```
/// use ota_core::wire::json;
/// let doc = json::parse(br#"{"afr_ota":{"files":[{"filesize":10}]}}"#).unwrap();
/// let files = doc.get("afr_ota").and_then(|v| v.get("files")).unwrap();
/// assert_eq!(files.raw(), r#"[{"filesize":10}]"#);
/// ```
pub fn parse(input: &[u8]) -> Result<Value<'_>, JsonError> {
    validate(input)?;
    let text = core::str::from_utf8(input)
        .map_err(|e| err(JsonErrorKind::InvalidUtf8, e.valid_up_to()))?;
    let start = skip_ws(text.as_bytes(), 0);
    Ok(Value::at(text, start))
}

/// End of the (validated) value starting at `p`. Never panics; on text that is not valid JSON
/// it returns some offset in `p..=len`.
fn value_end(b: &[u8], p: usize) -> usize {
    match b.get(p) {
        Some(b'"') => string_end(b, p),
        Some(b'{' | b'[') => {
            let mut depth: usize = 0;
            let mut q = p;
            while let Some(&c) = b.get(q) {
                match c {
                    b'"' => {
                        q = string_end(b, q);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return q + 1;
                        }
                    }
                    _ => {}
                }
                q += 1;
            }
            q
        }
        Some(_) => {
            let mut q = p;
            while b
                .get(q)
                .is_some_and(|&c| !is_ws(c) && !matches!(c, b',' | b']' | b'}'))
            {
                q += 1;
            }
            q
        }
        None => p,
    }
}

/// Offset after the closing quote of the string whose opening quote is at `p`.
fn string_end(b: &[u8], p: usize) -> usize {
    let mut q = p + 1;
    while let Some(&c) = b.get(q) {
        match c {
            b'"' => return q + 1,
            b'\\' => q += 2,
            _ => q += 1,
        }
    }
    b.len()
}

/// The JSON type of a [`Value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `{...}`
    Object,
    /// `[...]`
    Array,
    /// `"..."`
    String,
    /// `-1.5e3`
    Number,
    /// `true` / `false`
    Bool,
    /// `null`
    Null,
}

/// A view of one value of a validated JSON text: its span and its absolute position.
///
/// Cheap to copy; navigation re-scans the text (see the module docs).
#[derive(Clone, Copy)]
pub struct Value<'a> {
    doc: &'a str,
    start: usize,
    end: usize,
}

impl<'a> Value<'a> {
    fn at(doc: &'a str, start: usize) -> Self {
        let end = value_end(doc.as_bytes(), start);
        Value { doc, start, end }
    }

    /// The value's exact text, e.g. `{"afr_ota":{...}}` or `"a\/b"` (quotes included): what
    /// the reference agent hands to a custom-job callback (spec §2.2).
    pub fn raw(&self) -> &'a str {
        self.doc.get(self.start..self.end).unwrap_or("")
    }

    /// Byte offset of the value in the parsed input, for error messages.
    pub fn offset(&self) -> usize {
        self.start
    }

    /// The value's JSON type.
    pub fn kind(&self) -> Kind {
        match self.doc.as_bytes().get(self.start) {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            _ => Kind::Number,
        }
    }

    /// `true` for JSON `null`.
    pub fn is_null(&self) -> bool {
        self.kind() == Kind::Null
    }

    /// The object view, if this is an object.
    pub fn as_object(&self) -> Option<Object<'a>> {
        (self.kind() == Kind::Object).then_some(Object(*self))
    }

    /// The array view, if this is an array.
    pub fn as_array(&self) -> Option<Array<'a>> {
        (self.kind() == Kind::Array).then_some(Array(*self))
    }

    /// The string view, if this is a string.
    pub fn as_str(&self) -> Option<JsonStr<'a>> {
        if self.kind() != Kind::String {
            return None;
        }
        let inner = self.doc.get(self.start + 1..self.end.checked_sub(1)?)?;
        Some(JsonStr {
            escaped: inner,
            offset: self.start + 1,
        })
    }

    /// The number's text (e.g. `-1.5e3`), if this is a number.
    pub fn as_number(&self) -> Option<&'a str> {
        (self.kind() == Kind::Number).then(|| self.raw())
    }

    /// The boolean, if this is `true` or `false`.
    pub fn as_bool(&self) -> Option<bool> {
        match self.raw() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// Shorthand for `as_object()?.get(key)`.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.as_object()?.get(key)
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value({:?} @{})", self.raw(), self.start)
    }
}

/// Two values are equal when their texts are (not a semantic comparison).
impl PartialEq for Value<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.raw() == other.raw()
    }
}

impl Eq for Value<'_> {}

/// An object view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Object<'a>(Value<'a>);

impl<'a> Object<'a> {
    /// The value of `key`: exact match on the unescaped key, first occurrence wins, duplicates
    /// are not detected (spec §2.2, as the reference's coreJSON search).
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.iter().find(|(k, _)| k.eq_str(key)).map(|(_, v)| v)
    }

    /// The members in document order.
    pub fn iter(&self) -> Members<'a> {
        Members {
            doc: self.0.doc,
            pos: self.0.start + 1,
            end: self.0.end,
        }
    }

    /// The object as a plain value (for [`Value::raw`] and [`Value::offset`]).
    pub fn value(&self) -> Value<'a> {
        self.0
    }
}

/// Iterator over the members of an [`Object`].
#[derive(Clone, Debug)]
pub struct Members<'a> {
    doc: &'a str,
    pos: usize,
    end: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (JsonStr<'a>, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.doc.as_bytes();
        let mut p = skip_ws(b, self.pos);
        if b.get(p) == Some(&b',') {
            p = skip_ws(b, p + 1);
        }
        if p >= self.end || b.get(p) != Some(&b'"') {
            self.pos = self.end;
            return None;
        }
        let key = Value::at(self.doc, p).as_str()?;
        p = skip_ws(b, string_end(b, p));
        if b.get(p) != Some(&b':') {
            self.pos = self.end;
            return None;
        }
        let value = Value::at(self.doc, skip_ws(b, p + 1));
        self.pos = value.end;
        Some((key, value))
    }
}

/// An array view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Array<'a>(Value<'a>);

impl<'a> Array<'a> {
    /// The elements in document order.
    pub fn iter(&self) -> Elements<'a> {
        Elements {
            doc: self.0.doc,
            pos: self.0.start + 1,
            end: self.0.end,
        }
    }

    /// The array as a plain value.
    pub fn value(&self) -> Value<'a> {
        self.0
    }
}

/// Iterator over the elements of an [`Array`].
#[derive(Clone, Debug)]
pub struct Elements<'a> {
    doc: &'a str,
    pos: usize,
    end: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.doc.as_bytes();
        let mut p = skip_ws(b, self.pos);
        if b.get(p) == Some(&b',') {
            p = skip_ws(b, p + 1);
        }
        if p >= self.end || matches!(b.get(p), None | Some(b']')) {
            self.pos = self.end;
            return None;
        }
        let value = Value::at(self.doc, p);
        self.pos = value.end.max(p + 1);
        Some(value)
    }
}

/// A JSON string as it appears in the text (escapes kept), with allocation-free ways to read
/// it unescaped.
///
/// The reference agent never unescapes (spec §2.2, §12: `"a\/b"` reaches the PAL as `a\/b`);
/// we do, so a path or URL written with `\/` or `\u00e9` means what it says.
#[derive(Clone, Copy)]
pub struct JsonStr<'a> {
    escaped: &'a str,
    offset: usize,
}

impl<'a> JsonStr<'a> {
    /// The text between the quotes, escapes not decoded.
    pub fn escaped(&self) -> &'a str {
        self.escaped
    }

    /// Byte offset of the first character after the opening quote in the parsed input.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The text without escapes, if it has none (the common case, borrowed as is).
    pub fn as_plain(&self) -> Option<&'a str> {
        (!self.escaped.contains('\\')).then_some(self.escaped)
    }

    /// The unescaped characters.
    pub fn chars(&self) -> Unescape<'a> {
        Unescape {
            rest: self.escaped.chars(),
        }
    }

    /// Length in bytes of the unescaped UTF-8 text.
    pub fn unescaped_len(&self) -> usize {
        self.chars().map(char::len_utf8).sum()
    }

    /// `true` when the unescaped text is empty.
    pub fn is_empty(&self) -> bool {
        self.escaped.is_empty()
    }

    /// Compare the unescaped text with `s`, without allocating.
    pub fn eq_str(&self, s: &str) -> bool {
        match self.as_plain() {
            Some(plain) => plain == s,
            None => self.chars().eq(s.chars()),
        }
    }

    /// Write the unescaped text into `buf` and return it. Fails with
    /// [`JsonErrorKind::BufferTooSmall`] (offset = bytes needed) if it does not fit.
    pub fn unescape_into<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, JsonError> {
        let needed = self.unescaped_len();
        let out = buf
            .get_mut(..needed)
            .ok_or(err(JsonErrorKind::BufferTooSmall, needed))?;
        let mut at = 0;
        for c in self.chars() {
            // `needed` was summed from the same characters, so this never fails; checked
            // anyway because `encode_utf8` panics on a short slot.
            let slot = out
                .get_mut(at..at + c.len_utf8())
                .ok_or(err(JsonErrorKind::BufferTooSmall, needed))?;
            at += c.encode_utf8(slot).len();
        }
        core::str::from_utf8(out).map_err(|_| err(JsonErrorKind::InvalidUtf8, self.offset))
    }

    /// The unescaped text in a fixed-capacity string, or `None` if it is longer than `N`.
    pub fn to_string<const N: usize>(&self) -> Option<heapless::String<N>> {
        let mut s = heapless::String::new();
        for c in self.chars() {
            s.push(c).ok()?;
        }
        Some(s)
    }
}

impl fmt::Debug for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonStr({:?})", self.escaped)
    }
}

/// Writes the unescaped text.
impl fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        self.chars().try_for_each(|c| f.write_char(c))
    }
}

/// Equal when the unescaped texts are equal (`"\/"` equals `"/"`).
impl PartialEq for JsonStr<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.chars().eq(other.chars())
    }
}

impl Eq for JsonStr<'_> {}

impl PartialEq<str> for JsonStr<'_> {
    fn eq(&self, other: &str) -> bool {
        self.eq_str(other)
    }
}

impl PartialEq<&str> for JsonStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.eq_str(other)
    }
}

/// Iterator over the unescaped characters of a [`JsonStr`].
#[derive(Clone, Debug)]
pub struct Unescape<'a> {
    rest: core::str::Chars<'a>,
}

impl Unescape<'_> {
    fn hex4(&mut self) -> Option<u16> {
        let mut v: u16 = 0;
        for _ in 0..4 {
            v = (v << 4) | self.rest.next()?.to_digit(16)? as u16;
        }
        Some(v)
    }
}

impl Iterator for Unescape<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let c = self.rest.next()?;
        if c != '\\' {
            return Some(c);
        }
        Some(match self.rest.next()? {
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let u = self.hex4()?;
                let code = if is_high_surrogate(u) {
                    // Validated text: a low surrogate escape follows.
                    let mut low_part = self.rest.clone();
                    let low = match (low_part.next(), low_part.next()) {
                        (Some('\\'), Some('u')) => {
                            self.rest = low_part;
                            self.hex4()?
                        }
                        _ => return Some(char::REPLACEMENT_CHARACTER),
                    };
                    0x10000 + ((u32::from(u) - 0xD800) << 10) + (u32::from(low) & 0x3FF)
                } else {
                    u32::from(u)
                };
                char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
            }
            // `"`, `\` and `/` stand for themselves.
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use proptest::prelude::*;
    use std::string::String;
    use std::vec::Vec;

    fn kind_of(s: &str) -> Result<(), JsonErrorKind> {
        validate(s.as_bytes()).map_err(|e| e.kind)
    }

    #[test]
    fn accepts_every_value_type_and_whitespace() {
        for s in [
            "{}",
            "[]",
            " \t\r\n{ } ",
            "\"\"",
            "0",
            "-0",
            "1.5",
            "-1.5e+3",
            "2E-7",
            "true",
            "false",
            "null",
            r#"{"a":[1,{"b":null}],"c":"d"}"#,
            r#"["\"\\\/\b\f\n\r\t\u00e9"]"#,
            r#""\ud83d\ude00""#,
            "\"é😀\"",
        ] {
            assert_eq!(kind_of(s), Ok(()), "{s:?}");
        }
    }

    #[test]
    fn rejects_malformed_text_with_kind_and_offset() {
        let cases: &[(&str, JsonErrorKind, usize)] = &[
            ("", JsonErrorKind::UnexpectedEnd, 0),
            ("not a json", JsonErrorKind::UnexpectedByte, 0),
            ("{\"a\":1,}", JsonErrorKind::UnexpectedByte, 7),
            ("[1,]", JsonErrorKind::UnexpectedByte, 3),
            ("[1 2]", JsonErrorKind::UnexpectedByte, 3),
            ("{\"a\" 1}", JsonErrorKind::UnexpectedByte, 5),
            ("{a:1}", JsonErrorKind::UnexpectedByte, 1),
            ("{\"a\":1", JsonErrorKind::UnexpectedEnd, 6),
            ("[1}", JsonErrorKind::UnexpectedByte, 2),
            ("\"abc", JsonErrorKind::UnexpectedEnd, 4),
            ("\"a\\x\"", JsonErrorKind::InvalidEscape, 2),
            ("\"\\u12g4\"", JsonErrorKind::InvalidEscape, 1),
            ("\"\\ud800\"", JsonErrorKind::LoneSurrogate, 1),
            ("\"\\udc00\"", JsonErrorKind::LoneSurrogate, 1),
            ("\"\\ud800\\u0041\"", JsonErrorKind::LoneSurrogate, 1),
            ("\"a\nb\"", JsonErrorKind::ControlCharacter, 2),
            ("01", JsonErrorKind::InvalidNumber, 0),
            ("1.", JsonErrorKind::InvalidNumber, 0),
            ("-", JsonErrorKind::InvalidNumber, 0),
            ("1e", JsonErrorKind::InvalidNumber, 0),
            ("NaN", JsonErrorKind::UnexpectedByte, 0),
            ("tru", JsonErrorKind::UnexpectedEnd, 3),
            ("nul1", JsonErrorKind::UnexpectedByte, 0),
            ("{} {}", JsonErrorKind::TrailingData, 3),
        ];
        for &(s, kind, offset) in cases {
            assert_eq!(
                validate(s.as_bytes()),
                Err(JsonError { kind, offset }),
                "{s:?}"
            );
        }
        assert_eq!(
            validate(b"\"\xff\""),
            Err(JsonError {
                kind: JsonErrorKind::InvalidUtf8,
                offset: 1
            })
        );
    }

    #[test]
    fn nesting_is_limited_to_max_depth() {
        let ok = String::from("[").repeat(MAX_DEPTH) + &String::from("]").repeat(MAX_DEPTH);
        assert_eq!(kind_of(&ok), Ok(()));
        let deep =
            String::from("[").repeat(MAX_DEPTH + 1) + &String::from("]").repeat(MAX_DEPTH + 1);
        assert_eq!(kind_of(&deep), Err(JsonErrorKind::TooDeep));
        let deep_obj = String::from("{\"a\":").repeat(MAX_DEPTH + 1) + "1" + &"}".repeat(33);
        assert_eq!(kind_of(&deep_obj), Err(JsonErrorKind::TooDeep));
        // An empty container counts as a level too.
        let empty_past_limit =
            String::from("[").repeat(MAX_DEPTH) + "{}" + &String::from("]").repeat(MAX_DEPTH);
        assert_eq!(kind_of(&empty_past_limit), Err(JsonErrorKind::TooDeep));
    }

    #[test]
    fn object_lookup_matches_unescaped_keys_and_first_occurrence_wins() {
        let v = parse(br#" {"a":1, "a":2, "k\u0065y":"v", "x\/y" : [ ] } "#).unwrap();
        assert_eq!(v.kind(), Kind::Object);
        assert_eq!(v.raw(), r#"{"a":1, "a":2, "k\u0065y":"v", "x\/y" : [ ] }"#);
        assert_eq!(v.get("a").unwrap().as_number(), Some("1"));
        assert_eq!(v.get("key").unwrap().as_str().unwrap(), "v");
        assert_eq!(v.get("x/y").unwrap().raw(), "[ ]");
        assert!(v.get("k\\u0065y").is_none());
        assert!(v.get("b").is_none());
        let keys: Vec<String> = v
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, _)| k.to_string::<8>().unwrap().as_str().into())
            .collect();
        assert_eq!(keys, ["a", "a", "key", "x/y"]);
    }

    #[test]
    fn array_iteration_yields_each_element_with_its_span() {
        let v = parse(br#"[ 1 , "two", {"three":[3]}, [], null, true ]"#).unwrap();
        let raws: Vec<&str> = v.as_array().unwrap().iter().map(|e| e.raw()).collect();
        assert_eq!(
            raws,
            ["1", "\"two\"", r#"{"three":[3]}"#, "[]", "null", "true"]
        );
        let kinds: Vec<Kind> = v.as_array().unwrap().iter().map(|e| e.kind()).collect();
        assert_eq!(
            kinds,
            [
                Kind::Number,
                Kind::String,
                Kind::Object,
                Kind::Array,
                Kind::Null,
                Kind::Bool
            ]
        );
        assert_eq!(parse(b"[]").unwrap().as_array().unwrap().iter().count(), 0);
        assert_eq!(parse(b"{}").unwrap().as_object().unwrap().iter().count(), 0);
    }

    #[test]
    fn raw_span_of_nested_values_ignores_brackets_inside_strings() {
        let v = parse(br#"{"doc":{"s":"}]\"{[","n":[1]},"after":true}"#).unwrap();
        assert_eq!(v.get("doc").unwrap().raw(), r#"{"s":"}]\"{[","n":[1]}"#);
        assert_eq!(v.get("after").unwrap().as_bool(), Some(true));
        assert_eq!(v.get("doc").unwrap().offset(), 7);
    }

    #[test]
    fn strings_unescape_including_surrogate_pairs() {
        let v = parse(br#""a\/b\u00e9\ud83d\ude00\n\"\\\t""#).unwrap();
        let s = v.as_str().unwrap();
        assert_eq!(s.escaped(), r#"a\/b\u00e9\ud83d\ude00\n\"\\\t"#);
        let want = "a/bé😀\n\"\\\t";
        assert_eq!(s.unescaped_len(), want.len());
        assert!(s.eq_str(want));
        assert!(!s.eq_str("a/b"));
        let mut buf = [0u8; 32];
        assert_eq!(s.unescape_into(&mut buf), Ok(want));
        assert_eq!(std::format!("{s}"), want);
        assert_eq!(s.as_plain(), None);
        let mut small = [0u8; 5];
        assert_eq!(
            s.unescape_into(&mut small),
            Err(JsonError {
                kind: JsonErrorKind::BufferTooSmall,
                offset: want.len()
            })
        );
        assert_eq!(s.to_string::<4>(), None);
        assert_eq!(s.to_string::<32>().unwrap().as_str(), want);
    }

    #[test]
    fn plain_strings_are_borrowed_as_is() {
        let v = parse(b"\"plain\"").unwrap();
        assert_eq!(v.as_str().unwrap().as_plain(), Some("plain"));
        assert_eq!(v.as_str().unwrap().offset(), 1);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(v) = parse(&input) {
                walk(v, 0);
            }
        }

        #[test]
        fn arbitrary_json_like_text_never_panics(input in r#"[\[\]{}",:0-9a-z\\ .eE+-]{0,64}"#) {
            if let Ok(v) = parse(input.as_bytes()) {
                walk(v, 0);
            }
        }

        #[test]
        fn any_string_round_trips_through_escaping(s in "\\PC{0,40}", escape_all: bool) {
            let mut text = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => text.push_str("\\\""),
                    '\\' => text.push_str("\\\\"),
                    c if (c as u32) < 0x20 || escape_all => {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) {
                            text.push_str(&std::format!("\\u{u:04x}"));
                        }
                    }
                    c => text.push(c),
                }
            }
            text.push('"');
            let v = parse(text.as_bytes()).unwrap();
            let js = v.as_str().unwrap();
            prop_assert!(js.eq_str(&s));
            prop_assert_eq!(js.unescaped_len(), s.len());
            let mut buf = [0u8; 200];
            prop_assert_eq!(js.unescape_into(&mut buf), Ok(s.as_str()));
        }
    }

    fn walk(v: Value<'_>, depth: usize) {
        assert!(depth <= MAX_DEPTH + 1);
        let _ = (v.raw(), v.kind(), v.as_bool(), v.as_number());
        if let Some(s) = v.as_str() {
            let mut buf = [0u8; 512];
            let _ = s.unescape_into(&mut buf);
            let _ = s.unescaped_len();
        }
        if let Some(o) = v.as_object() {
            for (k, m) in o.iter() {
                let _ = k.unescaped_len();
                walk(m, depth + 1);
            }
        }
        if let Some(a) = v.as_array() {
            for e in a.iter() {
                walk(e, depth + 1);
            }
        }
    }
}
