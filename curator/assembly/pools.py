"""Candidates, pools and freshness: what an assembly can draw from, and the plan over it.

Every live sample becomes a candidate with its category — fresh real, used real, synthetic or
unknown (a label below `min_origin_confidence` counts as unknown) — its size in the policy's unit,
and its rank: md5 of the seed, the number of earlier manifests that count as used (so later sets
of a lineage do not take the same used-real, synthetic and unknown rows again; :func:`_rank_salt`)
and its `content_hash`, so the selection depends only on the content, the seed and the store's
manifests (invariant 5). Exact duplicates collapse to the most trustworthy copy; synthetic samples
deeper than `max_generation` are left out. The candidates, grouped by (category, source,
generation), are the pools the planner (:mod:`curator.assembly.planner`) gives exact amounts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from curator.assembly.checks import POOL_LABELS, constraint_report, format_constraint_line
from curator.assembly.planner import CATEGORIES, Cell, Plan, Pool, plan
from curator.assembly.policy import DEFAULT_TOKEN_COLUMN, Policy, PolicyError, check_sources
from curator.store.catalog import store_path

if TYPE_CHECKING:
    import duckdb

    from curator.store.base import StoreBase as Store
    from curator.store.session import CatalogSession

DEFAULT_LINEAGE = "default"
TRUST_ORDER = "CASE origin WHEN 'real' THEN 0 WHEN 'synthetic' THEN 1 ELSE 2 END, generation NULLS LAST, origin_confidence DESC, collected_at NULLS LAST, sample_id"


@dataclass
class Assembly:
    """A planned assembly: the plan, and the DuckDB session holding its candidates."""

    policy: Policy
    lineage: str
    plan: Plan
    used_manifests: list[str]
    snapshot: list[dict[str, Any]]
    candidates: int

    def describe(self) -> str:
        """The plan as text: the amounts per pool, what was available, and the constraints."""
        from curator.core.output import render_table

        p = self.plan
        rows = []
        for cell in sorted(set(p.amounts) | set(p.available), key=Cell.key):
            pool = p.available.get(cell, Pool(0, 0))
            planned = p.amounts.get(cell, 0)
            rows.append(
                (
                    POOL_LABELS[cell.category],
                    "0"
                    if cell.category in ("fresh_real", "used_real")
                    else "-"
                    if cell.generation is None
                    else str(cell.generation),
                    cell.source,
                    f"{pool.units:,}",
                    f"{planned:,}",
                    f"{100 * planned / p.total:.1f}%" if p.total else "-",
                )
            )
        unit = p.unit
        lines = [
            f"lineage {self.lineage}: {len(self.used_manifests)} earlier manifest(s) count as used; {self.candidates:,} candidate samples",
            f"target {p.target:,} {unit}; planned {p.total:,} {unit}"
            + (" (shrunk)" if p.shrunk else ""),
            render_table(
                ["pool", "generation", "source", f"available {unit}", f"planned {unit}", "share"],
                rows,
                right=[False, True, False, True, True, True],
            ),
        ]
        lines += [f"note: {note}" for note in p.notes]
        lines.append("constraints:")
        deepest = max(
            (
                cell.generation or 0
                for cell, amount in p.amounts.items()
                if amount and cell.category != "unknown"
            ),
            default=0,
        )
        # The lowest confidence among the candidates of the planned pools: the chosen samples'
        # lowest is at least this (and every one counted as real or synthetic meets the floor).
        lowest = min(
            (
                pool.lowest_confidence
                for cell, pool in p.available.items()
                if p.amounts.get(cell) and cell.category != "unknown"
                if pool.lowest_confidence is not None
            ),
            default=1.0,
        )
        for item in constraint_report(
            self.policy,
            _plan_amounts(p),
            p.total,
            deepest_generation=deepest,
            lowest_confidence=lowest,
        ):
            lines.append(format_constraint_line(item))
        return "\n".join(lines)


def _plan_amounts(p: Plan) -> dict[str, int]:
    amounts: dict[str, int] = {cat: p.category_amount(cat) for cat in CATEGORIES}
    for cell, value in p.amounts.items():
        amounts[f"source:{cell.source}"] = amounts.get(f"source:{cell.source}", 0) + value
    return amounts


def _used_manifests(
    con: duckdb.DuckDBPyConnection, policy: Policy, lineage: str | None
) -> list[str]:
    """The earlier manifests whose content counts as used: the policy's explicit list (ids or
    names); else those of `lineage` (the assembly's, which :func:`resolve_lineage` has made
    agree with the policy's `freshness.lineage`); with no lineage at all, every manifest in the
    store (DESIGN.md's default)."""
    fresh = policy.freshness
    if fresh.manifests is not None:
        return resolve_manifests(con, fresh.manifests)
    if lineage is None:
        query, params = "SELECT manifest_id FROM cat.manifests ORDER BY created_at, manifest_id", []
    else:
        query, params = (
            "SELECT manifest_id FROM cat.manifests WHERE lineage = ? ORDER BY sequence",
            [lineage],
        )
    return [row[0] for row in con.execute(query, params).fetchall()]


def resolve_manifests(con: duckdb.DuckDBPyConnection, idents: tuple[str, ...]) -> list[str]:
    """The manifest ids `freshness.manifests` names, sorted: each entry is a manifest id or a
    manifest name. A name resolves as :func:`find_manifest` resolves it, to the latest manifest
    of that name (the highest sequence); a name used in more than one lineage is ambiguous.

    Raises:
        PolicyError: an entry names no manifest of the store, or a name is ambiguous (the
            message lists the candidates).
    """
    rows = con.execute("SELECT manifest_id, name, lineage, sequence FROM cat.manifests").fetchall()
    ids = {row[0] for row in rows}
    resolved = set()
    for ident in idents:
        if ident in ids:
            resolved.add(ident)
            continue
        named = sorted((r for r in rows if r[1] == ident), key=lambda r: (r[2], r[3], r[0]))
        if not named:
            raise PolicyError(
                f"`freshness.manifests` names `{ident}`, which is neither the id nor the name of a manifest of this store",
                "list them with `curator manifest list` (Python: `store.manifests()`)",
            )
        if len({r[2] for r in named}) > 1:
            listed = "; ".join(f"{r[0]} (lineage {r[2]} #{r[3]})" for r in named)
            raise PolicyError(
                f"`freshness.manifests` names `{ident}`, which matches {len(named)} manifests: {listed}",
                "give the manifest ids instead",
            )
        resolved.add(named[-1][0])
    return sorted(resolved)


def resolve_lineage(policy: Policy, lineage: str | None) -> str | None:
    """The lineage of an assembly: the one given (``--lineage``, ``lineage=``) or the policy's
    `freshness.lineage`, whichever is set; it is both the lineage the manifest is recorded in and
    the one whose earlier manifests count as used. ``None`` when neither is set.

    Raises:
        PolicyError: both are set and differ (the manifest would be recorded in one lineage while
            freshness is judged by the other, and content would be reused as fresh).
    """
    declared = policy.freshness.lineage
    if lineage and declared and lineage != declared:
        raise PolicyError(
            f'`--lineage {lineage}` differs from the policy\'s `freshness.lineage = "{declared}"`: '
            "the manifest would be recorded in one lineage while what is fresh is judged by the other",
            f"drop one of them, or make them agree (`--lineage {declared}`, Python: `lineage=`; or "
            f'`freshness.lineage = "{lineage}"`)',
        )
    return lineage or declared


def prepare(store: Store, policy: Policy, lineage: str | None, session: CatalogSession) -> Assembly:
    """Build the candidate table and plan the assembly."""
    con = session.con
    given_lineage = resolve_lineage(policy, lineage)
    lineage = given_lineage or DEFAULT_LINEAGE
    if policy.dedup.near:
        has_clusters = (
            con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_catalog = 'cat' AND table_name = 'duplicates'"
            ).fetchall()[0][0]
            and con.execute(
                "SELECT count(*) FROM cat.meta WHERE key = 'last_dedup_run'"
            ).fetchall()[0][0]
        )
        if not has_clusters:
            raise PolicyError(
                "`dedup.near = true` needs near-duplicate clusters, and `curator dedup` has not run on this store",
                "run `curator dedup` (Python: `store.dedup()`) first, or set `near = false` (exact duplicates are still removed)",
            )
    snapshot = [
        dict(zip(("path", "rows", "sha256"), row, strict=True))
        for row in con.execute(
            "SELECT path, rows, sha256 FROM cat.shards WHERE live ORDER BY path"
        ).fetchall()
    ]
    check_sources(
        policy,
        [
            row[0]
            for row in con.execute("SELECT DISTINCT source FROM cat.shards WHERE live").fetchall()
        ],
    )
    used = _used_manifests(con, policy, given_lineage)
    c = policy.constraints
    if used:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE used AS SELECT DISTINCT content_hash FROM cat.usage WHERE manifest_id IN (SELECT unnest(?::VARCHAR[]))",
            [used],
        )
    else:  # nothing used yet: no need to scan the ledger
        con.execute("CREATE OR REPLACE TEMP TABLE used (content_hash VARCHAR)")
    paths = [store_path(store.root, s["path"]) for s in snapshot]
    # Only a confidence floor needs each chosen sample's confidence (for the manifest's report).
    confidence_column = " origin_confidence," if c.min_origin_confidence > 0 else ""
    if not paths:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE pool AS SELECT NULL::VARCHAR AS sample_id, NULL::VARCHAR AS content_hash, NULL::VARCHAR AS category, NULL::VARCHAR AS origin, NULL::SMALLINT AS generation, NULL::VARCHAR AS model, NULL::VARCHAR AS source, NULL::BIGINT AS shard, NULL::BIGINT AS row, NULL::BIGINT AS size,"
            f"{' NULL::DOUBLE AS origin_confidence,' if confidence_column else ''} NULL::UHUGEINT AS rank WHERE false"
        )
    else:
        columns = {
            row[0]
            for row in con.execute(
                "DESCRIBE SELECT * FROM read_parquet(?, union_by_name = true)", [paths]
            ).fetchall()
        }
        unit = policy.target.unit
        if unit == "rows":
            size = "1"
        elif unit == "bytes":
            parts = []
            if "text" in columns:
                parts.append("strlen(text)")
            if "image" in columns:
                parts.append("octet_length(image)")
            size = f"coalesce({', '.join(parts)}, 0)" if parts else "0"
        else:
            token_column = policy.target.token_column or DEFAULT_TOKEN_COLUMN
            require_token_counts(con, paths, columns, token_column)
            if token_column == DEFAULT_TOKEN_COLUMN:
                require_one_tokenizer(paths, policy)
            size = f'greatest(coalesce(TRY_CAST("{token_column}" AS BIGINT), 0), 0)'
        fresh_after = policy.freshness.fresh_after
        fresh_clause = (
            "TRUE"
            if fresh_after is None
            else "(collected_at IS NOT NULL AND collected_at >= $fresh_after::TIMESTAMPTZ)"
        )
        params: dict[str, Any] = {"paths": paths, "confidence": c.min_origin_confidence}
        if fresh_after is not None:
            params["fresh_after"] = fresh_after
        max_generation = (
            "TRUE"
            if c.max_generation is None
            else f"NOT (category = 'synthetic' AND generation > {int(c.max_generation)})"
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE raw AS
            SELECT sample_id, content_hash, origin, generation, model, origin_confidence, collected_at, source,
                   file_index AS shard, file_row_number AS row, {size}::BIGINT AS size
            FROM read_parquet($paths, file_row_number = true, union_by_name = true)
            """,
            {"paths": paths},
        )
        if policy.dedup.exact:
            # Only contents with more than one copy need the (costly) ranking of their copies.
            con.execute(
                "CREATE OR REPLACE TEMP TABLE repeated AS SELECT content_hash FROM raw GROUP BY 1 HAVING count(*) > 1"
            )
            con.execute(
                f"""
                CREATE OR REPLACE TEMP VIEW kept_exact AS
                SELECT * FROM raw ANTI JOIN repeated USING (content_hash)
                UNION ALL
                SELECT * FROM (
                    SELECT * FROM raw SEMI JOIN repeated USING (content_hash)
                    QUALIFY row_number() OVER (PARTITION BY content_hash ORDER BY {TRUST_ORDER}) = 1
                )
                """
            )
        else:
            con.execute("CREATE OR REPLACE TEMP VIEW kept_exact AS SELECT * FROM raw")
        if not policy.dedup.near:
            con.execute("CREATE OR REPLACE TEMP VIEW kept AS SELECT * FROM kept_exact")
        else:
            # One sample per near-duplicate cluster, the most trustworthy by the labels as they
            # are now (`infer` may have relabelled members since `curator dedup` ran). Samples
            # ingested after that run are in no cluster yet.
            con.execute(
                f"""
                CREATE OR REPLACE TEMP VIEW kept AS SELECT * FROM kept_exact ANTI JOIN (
                    SELECT sample_id FROM (
                        SELECT r.sample_id, row_number() OVER (
                            PARTITION BY d.cluster_id ORDER BY {TRUST_ORDER}
                        ) AS place
                        FROM cat.duplicates d JOIN raw r USING (sample_id)
                    ) WHERE place > 1
                ) USING (sample_id)
                """
            )
        params.pop("paths")
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE pool AS
            SELECT * FROM (
                SELECT sample_id, content_hash, origin, generation, model, source, shard, row, size,{confidence_column}
                       CASE WHEN origin_confidence < $confidence THEN 'unknown'
                            WHEN origin = 'real' AND content_hash NOT IN (SELECT content_hash FROM used) AND {fresh_clause} THEN 'fresh_real'
                            WHEN origin = 'real' THEN 'used_real'
                            WHEN origin = 'synthetic' THEN 'synthetic'
                            ELSE 'unknown' END AS category,
                       md5_number('{_rank_salt(policy.seed, len(used))}' || content_hash) AS rank
                FROM kept
            ) WHERE {max_generation}
            """,
            params,
        )
        con.execute("DROP VIEW kept")
        con.execute("DROP VIEW kept_exact")
        if policy.dedup.exact:
            con.execute("DROP TABLE repeated")
        con.execute("DROP TABLE raw")
    available: dict[Cell, Pool] = {}
    least = "min(origin_confidence)" if confidence_column else "NULL::DOUBLE"
    for category, source, generation, rows, units, lowest in con.execute(
        "SELECT category, source, CASE WHEN category = 'synthetic' THEN generation END AS g, count(*), sum(size), "
        f"{least} FROM pool GROUP BY category, source, g ORDER BY ALL"
    ).fetchall():
        available[Cell(category, source, None if generation is None else int(generation))] = Pool(
            int(rows), int(units or 0), None if lowest is None else float(lowest)
        )
    candidates = sum(p.rows for p in available.values())
    result = plan(policy, available)
    return Assembly(
        policy=policy,
        lineage=lineage,
        plan=result,
        used_manifests=used,
        snapshot=snapshot,
        candidates=candidates,
    )


class MissingTokenCounts(PolicyError):
    """A `tokens` target over samples that have no token count."""


#: What adds `n_tokens` to samples already in a store.
TOKENS_COMMAND = "curator tokens --tokenizer PATH"


def require_token_counts(
    con: duckdb.DuckDBPyConnection, paths: list[str], columns: set[str], token_column: str
) -> None:
    """A `tokens` target needs a count for every text sample: the column must exist, and no
    text sample may have it null (images have no tokens and are not counted).

    Raises:
        MissingTokenCounts: naming the column, the sources lacking counts and the command that
            adds them (``curator tokens --tokenizer PATH``).
    """
    counted_by_curator = token_column == DEFAULT_TOKEN_COLUMN
    if token_column not in columns:
        if not counted_by_curator:
            raise MissingTokenCounts(
                f"`target.token_column` {token_column!r} is not a column of the store",
                "ingest samples with a token-count column, drop `token_column` to count "
                f"`{DEFAULT_TOKEN_COLUMN}` (added by `{TOKENS_COMMAND}`), or use `rows` or `bytes`",
            )
        sources = [
            row[0]
            for row in con.execute(
                "SELECT DISTINCT source FROM read_parquet(?, union_by_name = true) ORDER BY 1",
                [paths],
            ).fetchall()
        ]
        raise MissingTokenCounts(
            f"`target.tokens` counts `{DEFAULT_TOKEN_COLUMN}`, and no sample of the store has "
            f"token counts (sources without them: {', '.join(f'`{s}`' for s in sources)})",
            f"add them with `{TOKENS_COMMAND}` (Python: `store.tokens(PATH)`), or ingest with "
            "`--tokenizer PATH`; or name your own count column with `target.token_column`",
        )
    text_only = "text IS NOT NULL AND " if "text" in columns else ""
    missing = con.execute(
        f'SELECT source, count(*) FROM read_parquet(?, union_by_name = true) WHERE {text_only}"{token_column}" IS NULL '
        "GROUP BY 1 ORDER BY 1",
        [paths],
    ).fetchall()
    if not missing:
        return
    total = sum(int(n) for _s, n in missing)
    by_source = ", ".join(f"`{source}` ({int(n):,})" for source, n in missing)
    if counted_by_curator:
        if len(missing) == 1:
            source = missing[0][0]
            fix = (
                f"add them with `{TOKENS_COMMAND} --source {source}` "
                f'(Python: `store.tokens(PATH, source="{source}")`)'
            )
        else:
            fix = f"add them with `{TOKENS_COMMAND}` (Python: `store.tokens(PATH)`)"
    else:
        fix = f"give every sample a `{token_column}`, or drop `token_column` and run `{TOKENS_COMMAND}`"
    raise MissingTokenCounts(
        f"`target.tokens` counts `{token_column}`, which {total:,} "
        f"{'sample has' if total == 1 else 'samples have'} no value for; by source: {by_source}",
        fix,
    )


def counting_tokenizer(path: str) -> dict[str, Any] | None:
    """The tokenizer (path, sha256, vocab_size) whose `n_tokens` a store shard carries, from its
    footer; None when it has no counts — no column, or only nulls (a shard of images, which a
    tokenizer given to ingest leaves uncounted)."""
    import pyarrow.parquet as pq

    from curator.core.schema import footer_tokenizer

    metadata = pq.ParquetFile(path).metadata
    counted = footer_tokenizer(metadata.schema.to_arrow_schema().metadata)
    leaves = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
    if counted is None or DEFAULT_TOKEN_COLUMN not in leaves:
        return None
    column = leaves.index(DEFAULT_TOKEN_COLUMN)
    nulls = 0
    for group in range(metadata.num_row_groups):
        statistics = metadata.row_group(group).column(column).statistics
        if statistics is None or not statistics.has_null_count:
            return dict(counted)  # unknown: take the footer at its word
        nulls += statistics.null_count
    return None if nulls == metadata.num_rows else dict(counted)


class MixedTokenizers(PolicyError):
    """A `tokens` target over counts from more than one tokenizer, or token arrays encoded by
    another tokenizer than the one that counted."""


def require_one_tokenizer(paths: list[str], policy: Policy) -> None:
    """A `tokens` target adds up `n_tokens`: they must all come from one tokenizer, or the
    fractions would mix units; with token arrays, from the tokenizer that encodes them, or the
    arrays would not hold the mix that the counts promise. Reads each shard's footer.

    Raises:
        MixedTokenizers: naming the tokenizers, the sources each counted, and the command that
            counts them again with one.
    """
    excluded = {rule.name for rule in policy.sources if rule.weight == 0}
    by_sha: dict[str, tuple[str, set[str]]] = {}
    for path in paths:
        source = os.path.basename(os.path.dirname(path))  # shards/<source>/<shard>.parquet
        counted = counting_tokenizer(path)
        if counted is None or source in excluded:
            continue
        entry = by_sha.setdefault(str(counted.get("sha256")), (str(counted.get("path")), set()))
        entry[1].add(source)

    def described(sha: str) -> str:
        name, sources = by_sha[sha]
        return f"`{name}` (sha256 {sha[:12]}…; {', '.join(f'`{s}`' for s in sorted(sources))})"

    if len(by_sha) > 1:
        raise MixedTokenizers(
            f"`target.tokens` counts `{DEFAULT_TOKEN_COLUMN}`, which {len(by_sha)} tokenizers "
            f"counted: {'; '.join(described(sha) for sha in sorted(by_sha))}; their tokens do not "
            "add up",
            f"count every source with one tokenizer: `{TOKENS_COMMAND}` (it counts again the "
            "shards another tokenizer counted; Python: `store.tokens(PATH)`)",
        )
    output = policy.output
    if output.format != "tokens" or output.tokenizer is None or not by_sha:
        return
    from curator.core.tokenizer import TokenizerError, tokenizer_file, tokenizer_sha256

    try:
        encoding = tokenizer_sha256(tokenizer_file(output.tokenizer))
    except TokenizerError:
        return  # the token output reports an unusable tokenizer itself
    (counting,) = by_sha
    if encoding != counting:
        raise MixedTokenizers(
            f"`output.tokenizer` `{output.tokenizer}` (sha256 {encoding[:12]}…) is not the "
            f"tokenizer that counted `{DEFAULT_TOKEN_COLUMN}`, {described(counting)}: the token "
            "arrays would not hold the mix the counts promise",
            f"count with the tokenizer that writes the arrays: `curator tokens --tokenizer "
            f"{output.tokenizer}`, or set `output.tokenizer` to `{by_sha[counting][0]}`",
        )


def token_counts(store_root: str, policy: Policy, selection: str) -> dict[str, Any] | None:
    """The manifest's `token_counts` for a `tokens` target: the column counted, and the
    tokenizers (path, sha256, vocabulary size) whose counts the chosen samples carry, read from
    the footers of the store shards they came from (the `shard` column of the `selection`
    file). None for a rows or bytes target; no tokenizers for a column curator did not count."""
    import json

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if policy.target.unit != "tokens":
        return None
    column = policy.target.token_column or DEFAULT_TOKEN_COLUMN
    found: dict[str, dict[str, Any]] = {}
    if column == DEFAULT_TOKEN_COLUMN:
        shards = pc.unique(pq.read_table(selection, columns=["shard"])["shard"]).to_pylist()
        for relative in sorted(shards):
            counted = counting_tokenizer(store_path(store_root, relative))
            if counted is not None:
                found[json.dumps(counted, sort_keys=True)] = {
                    "path": counted.get("path"),
                    "sha256": counted.get("sha256"),
                    "vocab_size": counted.get("vocab_size"),
                }
    return {"column": column, "tokenizers": [found[key] for key in sorted(found)]}


def _rank_salt(seed: int, earlier: int) -> str:
    """What the content hash is ranked with: the seed, and the number of earlier manifests that
    count as used. Without the count, every set of a lineage would take the same used-real,
    synthetic and unknown rows (the first by rank); with it, each set draws them afresh, and the
    same store, policy and seed still give the same selection (the count is part of the store's
    state). The first set of a lineage ranks by the seed alone."""
    return f"{int(seed)}:" if earlier == 0 else f"{int(seed)}:{earlier}:"
