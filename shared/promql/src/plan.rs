//! Planning: finds every selector in a query and the time range it must fetch, so storage
//! can be read (asynchronously) before the synchronous evaluation starts.

use std::collections::HashMap;

use promql_parser::parser::{Expr, VectorSelector};

use crate::eval::{Grid, TimeCtx, at_ms, offset_ms, subquery_grid};

/// The fetch range (inclusive, ms) of one selector, keyed by the selector node's address.
pub(crate) type Plan<'a> = HashMap<usize, (i64, i64, &'a VectorSelector)>;

/// A stable key for a selector node inside one parsed AST.
pub(crate) fn selector_key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

/// Walks `expr` evaluated over `grid` and records each selector's fetch range.
pub(crate) fn plan<'a>(expr: &'a Expr, grid: &Grid, ctx: &TimeCtx, plan: &mut Plan<'a>) {
    match expr {
        Expr::VectorSelector(vs) => add(vs, grid, ctx, ctx.lookback, plan),
        Expr::MatrixSelector(ms) => add(&ms.vs, grid, ctx, crate::eval::range_ms(&ms.range), plan),
        Expr::Subquery(sq) => {
            let sub = subquery_grid(grid, sq, ctx);
            self::plan(&sq.expr, &sub, ctx, plan);
        }
        Expr::Aggregate(a) => {
            self::plan(&a.expr, grid, ctx, plan);
            if let Some(p) = &a.param {
                self::plan(p, grid, ctx, plan);
            }
        }
        Expr::Unary(u) => self::plan(&u.expr, grid, ctx, plan),
        Expr::Binary(b) => {
            self::plan(&b.lhs, grid, ctx, plan);
            self::plan(&b.rhs, grid, ctx, plan);
        }
        Expr::Paren(p) => self::plan(&p.expr, grid, ctx, plan),
        Expr::Call(c) => {
            for a in &c.args.args {
                self::plan(a, grid, ctx, plan);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn add<'a>(vs: &'a VectorSelector, grid: &Grid, ctx: &TimeCtx, range: i64, plan: &mut Plan<'a>) {
    let off = offset_ms(&vs.offset);
    let (lo, hi) = match at_ms(&vs.at, ctx) {
        Some(at) => (at - off, at - off),
        None => (grid.start - off, grid.end - off),
    };
    let r = (lo.saturating_sub(range), hi);
    plan.entry(selector_key(vs))
        .and_modify(|e| *e = (e.0.min(r.0), e.1.max(r.1), vs))
        .or_insert((r.0, r.1, vs));
}
