"""Reads an Ember block with pyarrow and DuckDB and checks it against expected JSON.

usage: read_block.py BLOCK.parquet EXPECTED.json
EXPECTED: {"series": [{"labels": {...}, "samples": [[t, "hex bits of v"], ...]}, ...]}
"""
import json
import struct
import sys

import duckdb
import pyarrow.parquet as pq


def uvarint(b, pos):
    v = shift = 0
    while True:
        x = b[pos]
        pos += 1
        v |= (x & 0x7F) << shift
        if x < 0x80:
            return v, pos
        shift += 7


def varint(b, pos):
    u, pos = uvarint(b, pos)
    return (u >> 1) ^ -(u & 1), pos


def decode_chunk(b):
    """Ember chunk format (docs/BLOCKS.md): returns [(t, float)]."""
    n, pos = uvarint(b, 0)
    if n == 0:
        return []
    t, pos = varint(b, pos)
    ts = [t]
    delta = 0
    for _ in range(n - 1):
        dod, pos = varint(b, pos)
        delta += dod
        t += delta
        ts.append(t)
    mode = b[pos]
    pos += 1
    vals = []
    if mode == 0:
        prev = 0
        for _ in range(n):
            (x,) = struct.unpack_from("<Q", b, pos)
            pos += 8
            prev ^= x
            vals.append(struct.unpack("<d", struct.pack("<Q", prev))[0])
    elif mode in (1, 2):
        e = b[pos]
        pos += 1
        m = d = 0
        for _ in range(n):
            x, pos = varint(b, pos)
            d = x if mode == 1 else d + x
            m += d
            vals.append(m / 10**e)
    elif mode == 3:
        (v,) = struct.unpack_from("<d", b, pos)
        vals = [v] * n
    else:
        raise ValueError(f"unknown value mode {mode}")
    return list(zip(ts, vals))


def bits(v):
    return struct.unpack("<Q", struct.pack("<d", v))[0]


def main():
    path, expected_path = sys.argv[1], sys.argv[2]
    expected = json.load(open(expected_path))
    want = {tuple(sorted(s["labels"].items())): [(t, int(h, 16)) for t, h in s["samples"]] for s in expected["series"]}

    # pyarrow: schema, rows, labels and decoded samples.
    table = pq.read_table(path)
    cols = table.column_names
    assert cols[0] == "l___name__", cols
    for c in ("s_series_hash", "s_min_t", "s_max_t", "s_samples", "s_chunk"):
        assert c in cols, (c, cols)
    assert table.num_rows == len(want), (table.num_rows, len(want))
    meta = pq.ParquetFile(path).metadata
    kv = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items()}
    assert kv.get("ember.block.version") == "1", kv
    rows = table.to_pylist()
    names = [r["l___name__"] for r in rows]
    assert names == sorted(names), "rows sorted by metric name"
    got = {}
    for r in rows:
        labels = {c[2:]: r[c] for c in cols if c.startswith("l_") and r[c] is not None}
        samples = decode_chunk(r["s_chunk"])
        assert len(samples) == r["s_samples"]
        got[tuple(sorted(labels.items()))] = [(t, bits(v)) for t, v in samples]
    assert got == want, "pyarrow: decoded samples differ"
    dict_cols = [meta.row_group(0).column(i) for i in range(meta.num_columns)]
    enc = {c.path_in_schema: c.encodings for c in dict_cols}
    assert any("DICTIONARY" in e for e in map(str, enc["l___name__"])), enc["l___name__"]
    assert all(c.compression == "ZSTD" for c in dict_cols), [c.compression for c in dict_cols]

    # DuckDB: SQL over the same file.
    con = duckdb.connect()
    res = con.sql(
        f"select l___name__, count(*) as series, sum(s_samples) as samples, min(s_min_t) as lo "
        f"from read_parquet('{path}') group by 1 order by 1"
    ).fetchall()
    by_name = {}
    for labels, samples in want.items():
        name = dict(labels)["__name__"]
        n, c = by_name.get(name, (0, 0))
        by_name[name] = (n + 1, c + len(samples))
    assert [(r[0], r[1], int(r[2])) for r in res] == [(k, v[0], v[1]) for k, v in sorted(by_name.items())], res
    rg = con.sql(f"select count(distinct row_group_id) from parquet_metadata('{path}')").fetchall()[0][0]
    assert rg == meta.num_row_groups, (rg, meta.num_row_groups)
    print(f"ok: {table.num_rows} series, {sum(len(v) for v in want.values())} samples, {rg} row groups")


main()
