//! Prometheus alert templates: a Go `text/template` subset and Prometheus' template functions.
//!
//! Why not a crate: the one Go-template crate on crates.io (`gtmpl` 0.7, last released 2021)
//! registers functions as plain `fn` pointers without context, so `query` (which needs the engine
//! and the tenant) and `externalURL` could only be built on globals. This interpreter covers what
//! alert templates use: text and `{{ }}` actions with `-` trimming, pipelines, parenthesised
//! sub-pipelines, fields (`.Labels.x`, `$labels.x`), variables (`:=`, `=`, `$`), `if`/`else if`/
//! `else`/`end`, `range` (with `$i, $v :=`), `with`, comments, and the functions listed in
//! [`FUNCTIONS`].
//!
//! Alertmanager's notification templates use the same engine through [`TemplateSet`]:
//! `define`/`template`, an arbitrary data value as `.`, the `KV` methods (`SortedPairs`,
//! `Names`, `Values`, `Remove`), `Alerts.Firing`/`Alerts.Resolved` and `join`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A template value (Go's `interface{}` as templates see it).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `nil`.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A map with string keys (labels, `args`).
    Map(BTreeMap<String, Value>),
    /// A list (query results).
    List(Vec<Value>),
    /// One query result sample: `.Labels`, `.Value`.
    Sample {
        /// The sample's labels (with `__name__`).
        labels: BTreeMap<String, String>,
        /// The value.
        value: f64,
    },
}

impl Value {
    /// A method call with arguments (`.CommonLabels.Remove .GroupLabels.Names`).
    fn method(&self, name: &str, args: &[Value]) -> Result<Value, String> {
        match (self, name, args) {
            (Value::Map(m), "Remove", [Value::List(names)]) => {
                let drop: Vec<String> = names.iter().map(Value::render).collect();
                Ok(Value::Map(
                    m.iter()
                        .filter(|(k, _)| !drop.contains(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ))
            }
            _ => Err(format!(
                "can't call method {name} with {} argument(s) on type {}",
                args.len(),
                self.type_name()
            )),
        }
    }

    fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Sample { .. } => true,
        }
    }

    fn as_f64(&self) -> Result<f64, String> {
        match self {
            Value::Int(i) => Ok(*i as f64),
            Value::Float(f) => Ok(*f),
            Value::Str(s) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("can't convert {s:?} to float")),
            Value::Bool(_) | Value::Nil | Value::Map(_) | Value::List(_) | Value::Sample { .. } => {
                Err(format!("can't convert {} to float", self.type_name()))
            }
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Map(_) => "map",
            Value::List(_) => "slice",
            Value::Sample { .. } => "sample",
        }
    }

    /// Renders the value as Go's `fmt.Sprint` would.
    pub fn render(&self) -> String {
        match self {
            Value::Nil => "<no value>".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => fmt_g(*f, None),
            Value::Str(s) => s.clone(),
            Value::Map(m) => {
                let parts: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.render()))
                    .collect();
                format!("map[{}]", parts.join(" "))
            }
            Value::List(l) => {
                let parts: Vec<String> = l.iter().map(Value::render).collect();
                format!("[{}]", parts.join(" "))
            }
            Value::Sample { labels, value } => {
                let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{map[{}] {}}}", parts.join(" "), fmt_g(*value, None))
            }
        }
    }

    fn field(&self, name: &str) -> Result<Value, String> {
        match self {
            Value::Map(m) => Ok(match m.get(name) {
                Some(v) => v.clone(),
                // Alertmanager's `KV` methods (a key of the same name wins, as for labels).
                None => match name {
                    "SortedPairs" => Value::List(
                        m.iter()
                            .map(|(k, v)| {
                                Value::Map(BTreeMap::from([
                                    ("Name".to_string(), Value::Str(k.clone())),
                                    ("Value".to_string(), v.clone()),
                                ]))
                            })
                            .collect(),
                    ),
                    "Names" => Value::List(m.keys().map(|k| Value::Str(k.clone())).collect()),
                    "Values" => Value::List(m.values().cloned().collect()),
                    _ => Value::Nil,
                },
            }),
            // Alertmanager's `Alerts.Firing`/`Alerts.Resolved` and `Pairs.Names`/`Pairs.Values`.
            Value::List(l) => match name {
                "Firing" | "Resolved" => {
                    let want = if name == "Firing" {
                        "firing"
                    } else {
                        "resolved"
                    };
                    Ok(Value::List(
                        l.iter()
                            .filter(|a| a.field("Status").ok() == Some(Value::Str(want.into())))
                            .cloned()
                            .collect(),
                    ))
                }
                "Names" | "Values" => {
                    let key = if name == "Names" { "Name" } else { "Value" };
                    l.iter()
                        .map(|p| p.field(key))
                        .collect::<Result<_, _>>()
                        .map(Value::List)
                }
                _ => Err(format!("can't evaluate field {name} in type slice")),
            },
            Value::Sample { labels, value } => match name {
                "Labels" => Ok(labels_value(labels)),
                "Value" => Ok(Value::Float(*value)),
                _ => Err(format!("can't evaluate field {name} in type sample")),
            },
            Value::Nil => Ok(Value::Nil),
            other => Err(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            )),
        }
    }
}

/// A map value from string labels.
pub fn labels_value(labels: &BTreeMap<String, String>) -> Value {
    Value::Map(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
            .collect(),
    )
}

/// Functions available in templates.
pub const FUNCTIONS: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "html",
    "js",
    "urlquery",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "sortByLabel",
    "args",
    "reReplaceAll",
    "match",
    "title",
    "toUpper",
    "toLower",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "pathPrefix",
    "externalURL",
    "safeHtml",
    "stripPort",
    "stripDomain",
    "parseDuration",
    "graphLink",
    "tableLink",
    "tmpl",
    "join",
    "stringSlice",
];

// ---------------------------------------------------------------------------------------------
// Parsing

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Lit(Value),
    Dot(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Sub(Box<Pipeline>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
struct Pipeline {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    /// `{{ template "name" pipeline }}`.
    Call(String, Option<Pipeline>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
    /// `{{ define }}`d templates (only when parsed through [`TemplateSet`]).
    defines: BTreeMap<String, Vec<Node>>,
}

/// Named templates (`{{ define "x" }}…{{ end }}`), as Alertmanager loads its default and user
/// template files, and the templates that call them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateSet {
    defines: BTreeMap<String, Vec<Node>>,
}

impl TemplateSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the `define`s of a template file (text outside them is ignored, as in Go).
    pub fn add(&mut self, src: &str) -> Result<(), String> {
        let t = parse_mode(src, true)?;
        self.defines.extend(t.defines);
        Ok(())
    }

    /// True when `name` is defined.
    pub fn has(&self, name: &str) -> bool {
        self.defines.contains_key(name)
    }

    /// Parses a template that may `define` and call (`template`) named templates.
    pub fn parse(&self, src: &str) -> Result<Template, String> {
        parse_mode(src, true)
    }

    /// Executes `t` with `data` as `.` and `$`; `ctx` provides `externalURL` and `query`.
    pub fn execute(&self, t: &Template, data: Value, ctx: &Context<'_>) -> Result<String, String> {
        let mut ex = Exec {
            ctx,
            vars: vec![("$".to_string(), data.clone())],
            out: String::new(),
            steps: 0,
            defines: [&t.defines, &self.defines],
            depth: 0,
        };
        ex.run(&t.nodes, &data)?;
        Ok(ex.out)
    }

    /// Parses and executes `src` (see [`TemplateSet::execute`]).
    pub fn expand(&self, src: &str, data: Value, ctx: &Context<'_>) -> Result<String, String> {
        let t = self.parse(src)?;
        self.execute(&t, data, ctx)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Num(String),
    Ident(String),
    Field(Vec<String>),
    Var(String, Vec<String>),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

fn split_fields(s: &str) -> Vec<String> {
    s.split('.')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let word = |i: &mut usize| {
        let start = *i;
        while *i < chars.len()
            && (chars[*i].is_alphanumeric() || chars[*i] == '_' || chars[*i] == '.')
        {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
                // fields after a parenthesised pipeline: (...).Field
                if i < chars.len() && chars[i] == '.' {
                    let w = word(&mut i);
                    out.push(Tok::Field(split_fields(&w)));
                }
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1;
            }
            '"' => {
                i += 1;
                let mut s = String::new();
                loop {
                    let Some(&ch) = chars.get(i) else {
                        return Err("unterminated quoted string".into());
                    };
                    i += 1;
                    match ch {
                        '"' => break,
                        '\\' => {
                            let Some(&e) = chars.get(i) else {
                                return Err("unterminated quoted string".into());
                            };
                            i += 1;
                            match e {
                                'n' => s.push('\n'),
                                't' => s.push('\t'),
                                'r' => s.push('\r'),
                                '\\' => s.push('\\'),
                                '"' => s.push('"'),
                                '\'' => s.push('\''),
                                other => return Err(format!("unknown escape sequence \\{other}")),
                            }
                        }
                        other => s.push(other),
                    }
                }
                out.push(Tok::Str(s));
            }
            '`' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                if i >= chars.len() {
                    return Err("unterminated raw quoted string".into());
                }
                out.push(Tok::Str(chars[start..i].iter().collect()));
                i += 1;
            }
            '$' => {
                i += 1;
                let w = word(&mut i);
                let mut parts = w.splitn(2, '.');
                let name = format!("${}", parts.next().unwrap_or(""));
                let fields = parts.next().map(split_fields).unwrap_or_default();
                out.push(Tok::Var(name, fields));
            }
            '.' => {
                let w = word(&mut i);
                out.push(Tok::Field(split_fields(&w)));
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+')
                    && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '.'
                        || ((chars[i] == '-' || chars[i] == '+')
                            && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                out.push(Tok::Num(chars[start..i].iter().collect()));
            }
            c if c.is_alphabetic() || c == '_' => {
                let w = word(&mut i);
                out.push(Tok::Ident(w));
            }
            other => return Err(format!("unexpected {other:?} in action")),
        }
    }
    Ok(out)
}

fn parse_num(s: &str) -> Result<Value, String> {
    if let Ok(i) = s.parse::<i64>() {
        return Ok(Value::Int(i));
    }
    if let Some(h) = s.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(h, 16)
    {
        return Ok(Value::Int(i));
    }
    s.parse::<f64>()
        .map(Value::Float)
        .map_err(|_| format!("bad number syntax: {s:?}"))
}

struct PipeParser<'a> {
    toks: &'a [Tok],
    pos: usize,
}

impl PipeParser<'_> {
    fn pipeline(&mut self, allow_decl: bool) -> Result<Pipeline, String> {
        let mut decl = Vec::new();
        let mut assign = false;
        if allow_decl {
            // $x := … | $i, $x := … | $x = …
            let save = self.pos;
            let mut names = Vec::new();
            while let Some(Tok::Var(name, fields)) = self.toks.get(self.pos) {
                if !fields.is_empty() {
                    break;
                }
                names.push(name.clone());
                self.pos += 1;
                if self.toks.get(self.pos) == Some(&Tok::Comma) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
            match self.toks.get(self.pos) {
                Some(Tok::Declare) if !names.is_empty() => {
                    self.pos += 1;
                    decl = names;
                }
                Some(Tok::Assign) if names.len() == 1 => {
                    self.pos += 1;
                    decl = names;
                    assign = true;
                }
                _ => self.pos = save,
            }
        }
        let mut cmds = Vec::new();
        loop {
            let mut args = Vec::new();
            while let Some(t) = self.toks.get(self.pos) {
                let arg = match t {
                    Tok::Pipe | Tok::RParen => break,
                    Tok::Str(s) => Arg::Lit(Value::Str(s.clone())),
                    Tok::Num(n) => Arg::Lit(parse_num(n)?),
                    Tok::Ident(w) => match w.as_str() {
                        "true" => Arg::Lit(Value::Bool(true)),
                        "false" => Arg::Lit(Value::Bool(false)),
                        "nil" => Arg::Lit(Value::Nil),
                        _ => {
                            if !FUNCTIONS.contains(&w.as_str()) {
                                return Err(format!("function {w:?} not defined"));
                            }
                            Arg::Ident(w.clone())
                        }
                    },
                    Tok::Field(f) => Arg::Dot(f.clone()),
                    Tok::Var(n, f) => Arg::Var(n.clone(), f.clone()),
                    Tok::LParen => {
                        self.pos += 1;
                        let inner = self.pipeline(false)?;
                        if self.toks.get(self.pos) != Some(&Tok::RParen) {
                            return Err("unclosed left paren".into());
                        }
                        let mut fields = Vec::new();
                        if let Some(Tok::Field(f)) = self.toks.get(self.pos + 1) {
                            fields = f.clone();
                            self.pos += 1;
                        }
                        Arg::Sub(Box::new(inner), fields)
                    }
                    Tok::Declare | Tok::Assign | Tok::Comma => {
                        return Err("unexpected declaration".into());
                    }
                };
                args.push(arg);
                self.pos += 1;
            }
            if args.is_empty() {
                return Err("missing value for command".into());
            }
            cmds.push(args);
            if self.toks.get(self.pos) == Some(&Tok::Pipe) {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(Pipeline { decl, assign, cmds })
    }
}

fn parse_pipeline(src: &str, allow_decl: bool) -> Result<Pipeline, String> {
    let toks = lex(src)?;
    let mut p = PipeParser {
        toks: &toks,
        pos: 0,
    };
    let pipe = p.pipeline(allow_decl)?;
    if p.pos != toks.len() {
        return Err(format!("unexpected token in {src:?}"));
    }
    Ok(pipe)
}

enum Item {
    Text(String),
    Action(String),
}

fn scan(src: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[open + 2..];
        let (after, trim_left) = match after.strip_prefix("- ") {
            Some(a) => (a, true),
            None => (after, false),
        };
        if trim_left {
            text = text.trim_end();
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        let close = find_close(after).ok_or("unclosed action")?;
        let mut inner = &after[..close];
        trim_next = false;
        if let Some(s) = inner.strip_suffix(" -") {
            inner = s;
            trim_next = true;
        }
        items.push(Item::Action(inner.trim().to_string()));
        rest = &after[close + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        items.push(Item::Text(text.to_string()));
    }
    Ok(items)
}

/// Finds the `}}` closing an action, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

enum BlockEnd {
    Eof,
    End,
    Else(Option<String>),
}

/// Where parsed `define`s go; `None` when they are not allowed (alert templates).
type Defines = Option<BTreeMap<String, Vec<Node>>>;

/// The quoted name at the start of `rest` and what follows it.
fn quoted_name(rest: &str) -> Result<(String, &str), String> {
    let toks = rest.trim_start();
    let (open, body) = match toks.chars().next() {
        Some(c @ ('"' | '`')) => (c, &toks[1..]),
        _ => return Err(format!("expected a quoted template name in {rest:?}")),
    };
    let end = body
        .find(open)
        .ok_or_else(|| format!("unterminated template name in {rest:?}"))?;
    Ok((body[..end].to_string(), body[end + 1..].trim()))
}

fn parse_list(
    items: &[Item],
    pos: &mut usize,
    defs: &mut Defines,
) -> Result<(Vec<Node>, BlockEnd), String> {
    let mut nodes = Vec::new();
    while *pos < items.len() {
        let item = &items[*pos];
        *pos += 1;
        match item {
            Item::Text(t) => nodes.push(Node::Text(t.clone())),
            Item::Action(a) => {
                let (kw, rest) = match a.split_once(char::is_whitespace) {
                    Some((k, r)) => (k, r.trim()),
                    None => (a.as_str(), ""),
                };
                if a.starts_with("/*") {
                    if !a.ends_with("*/") {
                        return Err("unclosed comment".into());
                    }
                    continue;
                }
                match kw {
                    "end" => return Ok((nodes, BlockEnd::End)),
                    "else" => {
                        let cond = rest.strip_prefix("if").map(|r| r.trim().to_string());
                        if !rest.is_empty() && cond.is_none() {
                            return Err(format!("unexpected {a:?}"));
                        }
                        return Ok((nodes, BlockEnd::Else(cond)));
                    }
                    "if" | "range" | "with" => {
                        let pipe = parse_pipeline(rest, true)?;
                        let node = parse_block(kw, pipe, items, pos, defs)?;
                        nodes.push(node);
                    }
                    "define" if defs.is_some() => {
                        let (name, tail) = quoted_name(rest)?;
                        if !tail.is_empty() {
                            return Err(format!("unexpected {tail:?} in define"));
                        }
                        let (body, end) = parse_list(items, pos, defs)?;
                        if !matches!(end, BlockEnd::End) {
                            return Err(format!("define {name:?} has no matching end"));
                        }
                        if let Some(d) = defs.as_mut() {
                            d.insert(name, body);
                        }
                    }
                    "template" if defs.is_some() => {
                        let (name, tail) = quoted_name(rest)?;
                        let pipe = if tail.is_empty() {
                            None
                        } else {
                            Some(parse_pipeline(tail, false)?)
                        };
                        nodes.push(Node::Call(name, pipe));
                    }
                    "define" | "template" | "block" | "break" | "continue" => {
                        return Err(format!("{kw:?} is not supported in alert templates"));
                    }
                    _ => nodes.push(Node::Action(parse_pipeline(a, true)?)),
                }
            }
        }
    }
    Ok((nodes, BlockEnd::Eof))
}

fn parse_block(
    kw: &str,
    pipe: Pipeline,
    items: &[Item],
    pos: &mut usize,
    defs: &mut Defines,
) -> Result<Node, String> {
    let (body, end) = parse_list(items, pos, defs)?;
    let else_nodes = match end {
        BlockEnd::Eof => return Err(format!("unexpected EOF in {kw}")),
        BlockEnd::End => Vec::new(),
        BlockEnd::Else(None) => {
            let (e, end2) = parse_list(items, pos, defs)?;
            if !matches!(end2, BlockEnd::End) {
                return Err(format!("expected end after else in {kw}"));
            }
            e
        }
        BlockEnd::Else(Some(cond)) => {
            // else if: a nested if that shares our end.
            let p = parse_pipeline(&cond, true)?;
            vec![parse_block("if", p, items, pos, defs)?]
        }
    };
    Ok(match kw {
        "if" => Node::If(pipe, body, else_nodes),
        "range" => Node::Range(pipe, body, else_nodes),
        _ => Node::With(pipe, body, else_nodes),
    })
}

/// Parses a template.
pub fn parse(src: &str) -> Result<Template, String> {
    parse_mode(src, false)
}

fn parse_mode(src: &str, allow_defines: bool) -> Result<Template, String> {
    let items = scan(src)?;
    let mut pos = 0;
    let mut defs: Defines = allow_defines.then(BTreeMap::new);
    let (nodes, end) = parse_list(&items, &mut pos, &mut defs)?;
    match end {
        BlockEnd::Eof => Ok(Template {
            nodes,
            defines: defs.unwrap_or_default(),
        }),
        BlockEnd::End => Err("unexpected {{end}}".into()),
        BlockEnd::Else(_) => Err("unexpected {{else}}".into()),
    }
}

/// The literal query strings a template passes to `query` (so a caller can run them first).
pub fn query_literals(src: &str) -> Vec<String> {
    let Ok(t) = parse(src) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    fn walk_pipe(p: &Pipeline, out: &mut Vec<String>) {
        for cmd in &p.cmds {
            if let (Some(Arg::Ident(f)), Some(Arg::Lit(Value::Str(q)))) = (cmd.first(), cmd.get(1))
                && f == "query"
            {
                out.push(q.clone());
            }
            for a in cmd {
                if let Arg::Sub(inner, _) = a {
                    walk_pipe(inner, out);
                }
            }
        }
    }
    fn walk(nodes: &[Node], out: &mut Vec<String>) {
        for n in nodes {
            match n {
                Node::Text(_) => {}
                Node::Action(p) => walk_pipe(p, out),
                Node::If(p, a, b) | Node::Range(p, a, b) | Node::With(p, a, b) => {
                    walk_pipe(p, out);
                    walk(a, out);
                    walk(b, out);
                }
                Node::Call(_, p) => {
                    if let Some(p) = p {
                        walk_pipe(p, out);
                    }
                }
            }
        }
    }
    walk(&t.nodes, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Execution

/// Answers `query` calls: the samples of an instant query, or an error message.
pub type QueryFn<'a> = dyn Fn(&str) -> Result<Vec<(BTreeMap<String, String>, f64)>, String> + 'a;

/// What a template sees.
pub struct Context<'a> {
    /// The alert's labels (`$labels`, `.Labels`).
    pub labels: BTreeMap<String, String>,
    /// External labels (`$externalLabels`, `.ExternalLabels`).
    pub external_labels: BTreeMap<String, String>,
    /// External URL (`externalURL`, `.ExternalURL`).
    pub external_url: String,
    /// The alert's value (`$value`, `.Value`).
    pub value: f64,
    /// Runs `query`.
    pub query: Option<&'a QueryFn<'a>>,
}

struct Exec<'a, 'c> {
    ctx: &'c Context<'a>,
    vars: Vec<(String, Value)>,
    out: String,
    steps: usize,
    /// Named templates: the template's own, then the set's.
    defines: [&'c BTreeMap<String, Vec<Node>>; 2],
    depth: usize,
}

/// Nesting limit of `{{ template }}` calls (Go's is 100000 but recursion must end).
const MAX_DEPTH: usize = 100;

const MAX_STEPS: usize = 100_000;

/// Parses and expands `src` in `ctx`, as Prometheus expands alert labels and annotations.
pub fn expand(src: &str, ctx: &Context<'_>) -> Result<String, String> {
    if !src.contains("{{") {
        return Ok(src.to_string());
    }
    let t = parse(src)?;
    t.execute(ctx)
}

impl Template {
    /// Executes the template in `ctx`.
    pub fn execute(&self, ctx: &Context<'_>) -> Result<String, String> {
        let labels = labels_value(&ctx.labels);
        let ext = labels_value(&ctx.external_labels);
        let mut root = BTreeMap::new();
        root.insert("Labels".to_string(), labels.clone());
        root.insert("ExternalLabels".to_string(), ext.clone());
        root.insert(
            "ExternalURL".to_string(),
            Value::Str(ctx.external_url.clone()),
        );
        root.insert("Value".to_string(), Value::Float(ctx.value));
        let root = Value::Map(root);
        let mut ex = Exec {
            ctx,
            vars: vec![
                ("$".to_string(), root.clone()),
                ("$labels".to_string(), labels),
                ("$externalLabels".to_string(), ext),
                (
                    "$externalURL".to_string(),
                    Value::Str(ctx.external_url.clone()),
                ),
                ("$value".to_string(), Value::Float(ctx.value)),
            ],
            out: String::new(),
            steps: 0,
            defines: [&self.defines, &self.defines],
            depth: 0,
        };
        ex.run(&self.nodes, &root)?;
        Ok(ex.out)
    }
}

impl Exec<'_, '_> {
    fn run(&mut self, nodes: &[Node], dot: &Value) -> Result<(), String> {
        for n in nodes {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return Err("template too expensive".into());
            }
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Call(name, p) => {
                    let body = self
                        .defines
                        .iter()
                        .find_map(|d| d.get(name))
                        .ok_or_else(|| format!("no such template {name:?}"))?;
                    let data = match p {
                        Some(p) => self.pipeline(p, dot)?,
                        None => Value::Nil,
                    };
                    if self.depth >= MAX_DEPTH {
                        return Err(format!("template {name:?}: calls nested too deeply"));
                    }
                    let saved = std::mem::replace(&mut self.vars, vec![("$".into(), data.clone())]);
                    self.depth += 1;
                    let r = self.run(body, &data);
                    self.depth -= 1;
                    self.vars = saved;
                    r?;
                }
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&v.render());
                    }
                }
                Node::If(p, a, b) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    let r = if v.truthy() {
                        self.run(a, dot)
                    } else {
                        self.run(b, dot)
                    };
                    self.vars.truncate(mark);
                    r?;
                }
                Node::With(p, a, b) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    let r = if v.truthy() {
                        self.run(a, &v)
                    } else {
                        self.run(b, dot)
                    };
                    self.vars.truncate(mark);
                    r?;
                }
                Node::Range(p, a, b) => {
                    let mark = self.vars.len();
                    let inner = Pipeline {
                        decl: Vec::new(),
                        assign: false,
                        cmds: p.cmds.clone(),
                    };
                    let v = self.pipeline(&inner, dot)?;
                    let elems: Vec<(Value, Value)> = match v {
                        Value::List(l) => l
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (Value::Int(i as i64), v))
                            .collect(),
                        Value::Map(m) => m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect(),
                        Value::Nil => Vec::new(),
                        Value::Int(n) => (0..n.max(0))
                            .map(|i| (Value::Int(i), Value::Int(i)))
                            .collect(),
                        other => {
                            return Err(format!("range can't iterate over {}", other.render()));
                        }
                    };
                    let r = if elems.is_empty() {
                        self.run(b, dot)
                    } else {
                        let mut r = Ok(());
                        for (k, v) in elems {
                            let m2 = self.vars.len();
                            match p.decl.as_slice() {
                                [one] => self.vars.push((one.clone(), v.clone())),
                                [ki, vi] => {
                                    self.vars.push((ki.clone(), k));
                                    self.vars.push((vi.clone(), v.clone()));
                                }
                                _ => {}
                            }
                            r = self.run(a, &v);
                            self.vars.truncate(m2);
                            if r.is_err() {
                                break;
                            }
                        }
                        r
                    };
                    self.vars.truncate(mark);
                    r?;
                }
            }
        }
        Ok(())
    }

    fn var(&self, name: &str) -> Result<Value, String> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("undefined variable: {name}"))
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, String> {
        let mut prev: Option<Value> = None;
        for cmd in &p.cmds {
            prev = Some(self.command(cmd, dot, prev)?);
        }
        let v = prev.unwrap_or(Value::Nil);
        if p.assign {
            if let Some(name) = p.decl.first() {
                let slot = self
                    .vars
                    .iter_mut()
                    .rev()
                    .find(|(n, _)| n == name)
                    .ok_or_else(|| format!("undefined variable: {name}"))?;
                slot.1 = v.clone();
            }
        } else if let Some(name) = p.decl.first() {
            self.vars.push((name.clone(), v.clone()));
        }
        Ok(v)
    }

    fn arg(&mut self, a: &Arg, dot: &Value) -> Result<Value, String> {
        match a {
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Dot(fields) => follow(dot.clone(), fields),
            Arg::Var(n, fields) => follow(self.var(n)?, fields),
            Arg::Ident(f) => self.call(f, Vec::new()),
            Arg::Sub(p, fields) => {
                let v = self.pipeline(p, dot)?;
                follow(v, fields)
            }
        }
    }

    fn command(&mut self, cmd: &[Arg], dot: &Value, piped: Option<Value>) -> Result<Value, String> {
        if let Some(Arg::Ident(f)) = cmd.first() {
            let mut args = Vec::with_capacity(cmd.len());
            for a in &cmd[1..] {
                args.push(self.arg(a, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            return self.call(f, args);
        }
        if cmd.len() > 1 || piped.is_some() {
            // A method call with arguments: `.CommonLabels.Remove .GroupLabels.Names`.
            let (recv, name) = match cmd.first() {
                Some(Arg::Dot(f)) if !f.is_empty() => {
                    (follow(dot.clone(), &f[..f.len() - 1])?, &f[f.len() - 1])
                }
                Some(Arg::Var(v, f)) if !f.is_empty() => {
                    (follow(self.var(v)?, &f[..f.len() - 1])?, &f[f.len() - 1])
                }
                _ => return Err("can't give argument to non-function".into()),
            };
            let mut args = Vec::with_capacity(cmd.len());
            for a in &cmd[1..] {
                args.push(self.arg(a, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            return recv.method(name, &args);
        }
        match cmd.first() {
            Some(a) => self.arg(a, dot),
            None => Ok(Value::Nil),
        }
    }

    fn call(&mut self, f: &str, args: Vec<Value>) -> Result<Value, String> {
        call_function(self.ctx, f, args).map_err(|e| format!("error calling {f}: {e}"))
    }
}

fn follow(mut v: Value, fields: &[String]) -> Result<Value, String> {
    for f in fields {
        v = v.field(f)?;
    }
    Ok(v)
}

fn want(args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!("wrong number of args: want {n} got {}", args.len()));
    }
    Ok(())
}

fn s(v: &Value) -> String {
    v.render()
}

fn cmp(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        _ => {
            let (x, y) = (a.as_f64()?, b.as_f64()?);
            x.partial_cmp(&y)
                .ok_or_else(|| "incomparable values".to_string())
        }
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            matches!(cmp(a, b), Ok(std::cmp::Ordering::Equal))
        }
        _ => a == b,
    }
}

fn call_function(ctx: &Context<'_>, f: &str, args: Vec<Value>) -> Result<Value, String> {
    use std::cmp::Ordering;
    let num = |i: usize| -> Result<f64, String> { args.get(i).ok_or("missing argument")?.as_f64() };
    Ok(match f {
        "and" => {
            let mut last = Value::Nil;
            for a in args {
                if !a.truthy() {
                    return Ok(a);
                }
                last = a;
            }
            last
        }
        "or" => {
            let mut last = Value::Nil;
            for a in args {
                if a.truthy() {
                    return Ok(a);
                }
                last = a;
            }
            last
        }
        "not" => {
            want(&args, 1)?;
            Value::Bool(!args[0].truthy())
        }
        "len" => {
            want(&args, 1)?;
            Value::Int(match &args[0] {
                Value::Str(s) => s.len(),
                Value::Map(m) => m.len(),
                Value::List(l) => l.len(),
                other => return Err(format!("len of type {}", other.type_name())),
            } as i64)
        }
        "index" => {
            let mut it = args.into_iter();
            let mut v = it.next().ok_or("missing argument")?;
            for k in it {
                v = match (&v, &k) {
                    (Value::Map(m), key) => m.get(&s(key)).cloned().unwrap_or(Value::Nil),
                    (Value::List(l), Value::Int(i)) => l
                        .get(usize::try_from(*i).map_err(|_| "index out of range")?)
                        .cloned()
                        .ok_or("index out of range")?,
                    (Value::Sample { .. }, key) => v.field(&s(key))?,
                    _ => return Err(format!("can't index item of type {}", v.type_name())),
                };
            }
            v
        }
        "print" => {
            // Go's Sprint: spaces between operands when neither is a string.
            let mut out = String::new();
            for (i, a) in args.iter().enumerate() {
                if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
                    out.push(' ');
                }
                out.push_str(&s(a));
            }
            Value::Str(out)
        }
        "println" => {
            let parts: Vec<String> = args.iter().map(s).collect();
            Value::Str(format!("{}\n", parts.join(" ")))
        }
        "printf" => {
            let mut it = args.into_iter();
            let fmt = s(&it.next().ok_or("missing format")?);
            Value::Str(sprintf(&fmt, &it.collect::<Vec<_>>()))
        }
        "html" => Value::Str(html_escape(&args.iter().map(s).collect::<String>())),
        "js" => Value::Str(
            args.iter()
                .map(s)
                .collect::<String>()
                .replace('\\', "\\\\")
                .replace('\'', "\\'")
                .replace('"', "\\\"")
                .replace('<', "\\u003C")
                .replace('>', "\\u003E"),
        ),
        "urlquery" => Value::Str(url_query_escape(&args.iter().map(s).collect::<String>())),
        "eq" => {
            let first = args.first().ok_or("missing argument")?;
            Value::Bool(args[1..].iter().any(|b| equal(first, b)))
        }
        "ne" => {
            want(&args, 2)?;
            Value::Bool(!equal(&args[0], &args[1]))
        }
        "lt" | "le" | "gt" | "ge" => {
            want(&args, 2)?;
            let o = cmp(&args[0], &args[1])?;
            Value::Bool(match f {
                "lt" => o == Ordering::Less,
                "le" => o != Ordering::Greater,
                "gt" => o == Ordering::Greater,
                _ => o != Ordering::Less,
            })
        }
        "query" => {
            want(&args, 1)?;
            let q = ctx.query.ok_or("query is not available here")?;
            let rows = q(&s(&args[0]))?;
            Value::List(
                rows.into_iter()
                    .map(|(labels, value)| Value::Sample { labels, value })
                    .collect(),
            )
        }
        "first" => {
            want(&args, 1)?;
            match &args[0] {
                Value::List(l) => l
                    .first()
                    .cloned()
                    .ok_or("first() called on vector with no elements")?,
                _ => return Err("first() needs a query result".into()),
            }
        }
        "label" => {
            want(&args, 2)?;
            match &args[1] {
                Value::Sample { labels, .. } => {
                    Value::Str(labels.get(&s(&args[0])).cloned().unwrap_or_default())
                }
                _ => Value::Str(String::new()),
            }
        }
        "value" => {
            want(&args, 1)?;
            match &args[0] {
                Value::Sample { value, .. } => Value::Float(*value),
                _ => return Err("value() needs a sample".into()),
            }
        }
        "strvalue" => {
            want(&args, 1)?;
            match &args[0] {
                Value::Sample { labels, .. } => {
                    Value::Str(labels.get("__value__").cloned().unwrap_or_default())
                }
                _ => Value::Str(String::new()),
            }
        }
        "sortByLabel" => {
            want(&args, 2)?;
            let key = s(&args[0]);
            let mut l = match &args[1] {
                Value::List(l) => l.clone(),
                _ => return Err("sortByLabel needs a query result".into()),
            };
            l.sort_by(|a, b| {
                let g = |v: &Value| match v {
                    Value::Sample { labels, .. } => labels.get(&key).cloned().unwrap_or_default(),
                    _ => String::new(),
                };
                g(a).cmp(&g(b))
            });
            Value::List(l)
        }
        "args" => Value::Map(
            args.into_iter()
                .enumerate()
                .map(|(i, v)| (format!("arg{i}"), v))
                .collect(),
        ),
        "reReplaceAll" => {
            want(&args, 3)?;
            // Go's ReplaceAllString: unanchored.
            let re = regex::Regex::new(&s(&args[0])).map_err(|e| e.to_string())?;
            Value::Str(
                re.replace_all(&s(&args[2]), go_replacement(&s(&args[1])).as_str())
                    .into_owned(),
            )
        }
        "match" => {
            want(&args, 2)?;
            let re = regex::Regex::new(&s(&args[0])).map_err(|e| e.to_string())?;
            Value::Bool(re.is_match(&s(&args[1])))
        }
        "title" => {
            want(&args, 1)?;
            Value::Str(title(&s(&args[0])))
        }
        "toUpper" => {
            want(&args, 1)?;
            Value::Str(s(&args[0]).to_uppercase())
        }
        "toLower" => {
            want(&args, 1)?;
            Value::Str(s(&args[0]).to_lowercase())
        }
        "humanize" => {
            want(&args, 1)?;
            Value::Str(humanize(num(0)?))
        }
        "humanize1024" => {
            want(&args, 1)?;
            Value::Str(humanize1024(num(0)?))
        }
        "humanizeDuration" => {
            want(&args, 1)?;
            Value::Str(humanize_duration(num(0)?))
        }
        "humanizePercentage" => {
            want(&args, 1)?;
            Value::Str(format!("{}%", fmt_g(num(0)? * 100.0, Some(4))))
        }
        "humanizeTimestamp" => {
            want(&args, 1)?;
            Value::Str(humanize_timestamp(num(0)?))
        }
        "toTime" => {
            want(&args, 1)?;
            Value::Str(humanize_timestamp(num(0)?))
        }
        "parseDuration" => {
            want(&args, 1)?;
            let ms = ember_config::duration::parse_prom_duration_ms(&s(&args[0]))?;
            Value::Float(ms as f64 / 1000.0)
        }
        "pathPrefix" => Value::Str(url_path(&ctx.external_url)),
        "externalURL" => Value::Str(ctx.external_url.clone()),
        "safeHtml" => {
            want(&args, 1)?;
            Value::Str(s(&args[0]))
        }
        "stripPort" => {
            want(&args, 1)?;
            Value::Str(strip_port(&s(&args[0])))
        }
        "stripDomain" => {
            want(&args, 1)?;
            let h = s(&args[0]);
            let (host, port) = match h.rsplit_once(':') {
                Some((a, p)) if !a.contains(':') => (a.to_string(), format!(":{p}")),
                _ => (h.clone(), String::new()),
            };
            if host.parse::<std::net::IpAddr>().is_ok() {
                Value::Str(h)
            } else {
                Value::Str(format!("{}{port}", host.split('.').next().unwrap_or("")))
            }
        }
        "graphLink" | "tableLink" => {
            want(&args, 1)?;
            let tab = if f == "graphLink" { 0 } else { 1 };
            Value::Str(format!(
                "/graph?g0.expr={}&g0.tab={tab}",
                url_query_escape(&s(&args[0]))
            ))
        }
        "tmpl" => return Err("tmpl is not supported".into()),
        "join" => {
            want(&args, 2)?;
            match &args[1] {
                Value::List(l) => Value::Str(
                    l.iter()
                        .map(Value::render)
                        .collect::<Vec<_>>()
                        .join(&s(&args[0])),
                ),
                other => return Err(format!("join needs a list, got {}", other.type_name())),
            }
        }
        "stringSlice" => Value::List(args.into_iter().map(|a| Value::Str(s(&a))).collect()),
        other => return Err(format!("function {other:?} not defined")),
    })
}

fn go_replacement(r: &str) -> String {
    // Go uses $1 / ${1} like the regex crate; only `$name` parsing differs in edge cases.
    r.to_string()
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter && c.is_alphanumeric() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

fn strip_port(h: &str) -> String {
    if let Some(rest) = h.strip_prefix('[')
        && let Some((host, _)) = rest.split_once(']')
    {
        return host.to_string();
    }
    match h.rsplit_once(':') {
        Some((host, _)) if !host.contains(':') => host.to_string(),
        _ => h.to_string(),
    }
}

fn url_path(u: &str) -> String {
    let after_scheme = u.split_once("://").map(|(_, r)| r).unwrap_or(u);
    match after_scheme.find('/') {
        Some(i) => after_scheme[i..].to_string(),
        None => String::new(),
    }
}

fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&#34;"),
            '\'' => o.push_str("&#39;"),
            '\0' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// Query-escapes like Go's `url.QueryEscape`.
pub fn url_query_escape(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            b' ' => o.push('+'),
            _ => {
                let _ = write!(o, "%{b:02X}");
            }
        }
    }
    o
}

fn humanize_timestamp(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return fmt_g(v, Some(4));
    }
    // model.TimeFromUnixNano(int64(v * 1e9)): millisecond precision.
    let ms = ((v * 1e9) as i64) / 1_000_000;
    let secs = ms.div_euclid(1000);
    let nanos = (ms.rem_euclid(1000) * 1_000_000) as u32;
    match chrono::DateTime::from_timestamp(secs, nanos.min(999_999_999)) {
        Some(t) => {
            let frac = if nanos == 0 {
                String::new()
            } else {
                format!(".{nanos:09}").trim_end_matches('0').to_string()
            };
            format!("{}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"))
        }
        None => fmt_g(v, Some(4)),
    }
}

/// Prometheus' `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return fmt_g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", fmt_g(v, Some(4)))
}

/// Prometheus' `humanize1024`: binary prefixes, 4 significant digits.
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return fmt_g(v, Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", fmt_g(v, Some(4)))
}

/// Prometheus' `humanizeDuration` (seconds in).
pub fn humanize_duration(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return fmt_g(v, Some(4));
    }
    if v == 0.0 {
        return "0s".to_string();
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        let a = v.abs();
        let secs = a as i64;
        let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
        if d != 0 {
            return format!("{sign}{d}d {h}h {m}m {s}s");
        }
        if h != 0 {
            return format!("{sign}{h}h {m}m {s}s");
        }
        if m != 0 {
            return format!("{sign}{m}m {s}s");
        }
        return format!("{sign}{}s", fmt_g(a, Some(4)));
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", fmt_g(v, Some(4)))
}

/// Go's `%g` (`prec = None`: shortest, as `%v` prints a float64).
pub fn fmt_g(v: f64, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let neg = v.is_sign_negative() && v != 0.0;
    let a = v.abs();
    let e = match prec {
        Some(p) => format!("{:.*e}", p.max(1) - 1, a),
        None => format!("{a:e}"),
    };
    let (mant, exp) = e.split_once('e').unwrap_or((e.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    if a == 0.0 {
        digits = "0".into();
    }
    let nd = digits.len() as i32;
    let dp = exp + 1;
    let mut eprec = prec.map(|p| p.max(1) as i32).unwrap_or(nd);
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if prec.is_none() {
        eprec = 6;
    }
    let x = dp - 1;
    let body = if x < -4 || x >= eprec {
        let mut p = prec.map(|p| p.max(1) as i32).unwrap_or(nd);
        if p > nd {
            p = nd;
        }
        let mut m = digits[..1].to_string();
        if p > 1 {
            m.push('.');
            m.push_str(&digits[1..p as usize]);
        }
        let sign = if x < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", x.abs())
    } else {
        let mut p = prec.map(|p| p.max(1) as i32).unwrap_or(nd);
        if p > dp {
            p = nd;
        }
        let frac = (p - dp).max(0);
        let digit = |i: i32| -> char {
            if i >= 0 && i < nd {
                digits.as_bytes()[i as usize] as char
            } else {
                '0'
            }
        };
        let mut o = String::new();
        if dp > 0 {
            for i in 0..dp {
                o.push(digit(i));
            }
        } else {
            o.push('0');
        }
        if frac > 0 {
            o.push('.');
            for i in 0..frac {
                o.push(digit(dp + i));
            }
        }
        o
    };
    if neg { format!("-{body}") } else { body }
}

/// Go's `fmt.Sprintf` for the verbs templates use (`%s %v %d %f %e %g %x %q %t %%`).
pub fn sprintf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let chars: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    let mut ai = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut minus = false;
        let mut plus = false;
        let mut zero = false;
        let mut space = false;
        while i < chars.len() && matches!(chars[i], '-' | '+' | '0' | ' ' | '#') {
            match chars[i] {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                _ => {}
            }
            i += 1;
        }
        let mut width = None;
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        if i > start {
            width = chars[start..i]
                .iter()
                .collect::<String>()
                .parse::<usize>()
                .ok();
        }
        let mut prec = None;
        if i < chars.len() && chars[i] == '.' {
            i += 1;
            let ps = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            prec = Some(
                chars[ps..i]
                    .iter()
                    .collect::<String>()
                    .parse::<usize>()
                    .unwrap_or(0),
            );
        }
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(ai) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        ai += 1;
        let num = arg.as_f64().ok();
        let mut body = match verb {
            'v' | 's' => match (verb, prec) {
                ('s', Some(p)) => arg.render().chars().take(p).collect(),
                _ => arg.render(),
            },
            'q' => format!("{:?}", arg.render()),
            't' => arg.render(),
            'd' => match (arg, num) {
                (Value::Int(n), _) => n.to_string(),
                (Value::Float(f), _) => format!("%!d(float64={})", fmt_g(*f, None)),
                (_, Some(n)) => format!("{}", n as i64),
                _ => format!("%!d({})", arg.render()),
            },
            'f' | 'F' => match num {
                Some(n) if n.is_finite() => format!("{:.*}", prec.unwrap_or(6), n),
                Some(n) => fmt_g(n, None),
                None => format!("%!f({})", arg.render()),
            },
            'e' | 'E' => match num {
                Some(n) if n.is_finite() => {
                    let r = format!("{:.*e}", prec.unwrap_or(6), n);
                    let (m, e) = r.split_once('e').unwrap_or((r.as_str(), "0"));
                    let e: i32 = e.parse().unwrap_or(0);
                    let sign = if e < 0 { '-' } else { '+' };
                    let s = format!("{m}e{sign}{:02}", e.abs());
                    if verb == 'E' { s.to_uppercase() } else { s }
                }
                Some(n) => fmt_g(n, None),
                None => format!("%!e({})", arg.render()),
            },
            'g' | 'G' => match num {
                Some(n) => fmt_g(n, prec),
                None => format!("%!g({})", arg.render()),
            },
            'x' | 'X' => {
                let s = match arg {
                    Value::Int(n) => format!("{n:x}"),
                    Value::Str(s) => s.bytes().map(|b| format!("{b:02x}")).collect(),
                    other => other.render(),
                };
                if verb == 'X' { s.to_uppercase() } else { s }
            }
            other => format!("%!{other}({})", arg.render()),
        };
        if matches!(verb, 'd' | 'f' | 'F' | 'e' | 'E' | 'g' | 'G') && !body.starts_with('-') {
            if plus {
                body.insert(0, '+');
            } else if space {
                body.insert(0, ' ');
            }
        }
        if let Some(w) = width {
            let len = body.chars().count();
            if len < w {
                let pad = w - len;
                if minus {
                    body.push_str(&" ".repeat(pad));
                } else if zero && matches!(verb, 'd' | 'f' | 'F' | 'e' | 'E' | 'g' | 'G') {
                    let (sign, rest) = match body.chars().next() {
                        Some(c @ ('-' | '+' | ' ')) => (c.to_string(), body[1..].to_string()),
                        _ => (String::new(), body.clone()),
                    };
                    body = format!("{sign}{}{rest}", "0".repeat(pad));
                } else {
                    body = format!("{}{body}", " ".repeat(pad));
                }
            }
        }
        out.push_str(&body);
    }
    if ai < args.len() {
        let extra: Vec<String> = args[ai..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.render()))
            .collect();
        let _ = write!(out, "%!(EXTRA {})", extra.join(", "));
    }
    out
}
