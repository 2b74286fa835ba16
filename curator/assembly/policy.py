"""Mixing policies: what a training set must be, as a TOML file.

A policy names a target size in a unit (rows, bytes of content, or tokens from a column), the
constraints every assembled set must meet (fractions of the target, in its unit), which earlier
manifests make real data "used" (freshness), per-source weights and caps, deduplication, and the
output format. ``schemas/policy.schema.json`` is generated from :func:`policy_json_schema`.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from curator.core.errors import CuratorError, did_you_mean

Unit = Literal["rows", "bytes", "tokens"]
UNITS: tuple[str, ...] = ("rows", "bytes", "tokens")
#: The column a `tokens` target counts when `token_column` is not given.
DEFAULT_TOKEN_COLUMN = "n_tokens"


class PolicyError(CuratorError):
    """A policy file that is not valid TOML or does not match the policy schema."""


@dataclass(frozen=True)
class Target:
    """The size of the set: `amount` in `unit`; `token_column` names the column holding each
    sample's token count when the unit is ``tokens`` (default `n_tokens`, which `--tokenizer`
    and `curator tokens` add)."""

    unit: str = "rows"
    amount: int = 0
    token_column: str | None = None


@dataclass(frozen=True)
class Constraints:
    """Fractions of the target, in its unit. `unknown` counts as not real (invariant 3)."""

    min_fresh_real_fraction: float = 0.0
    min_real_fraction: float = 0.0
    max_synthetic_fraction: float = 1.0
    max_unknown_fraction: float = 1.0
    max_generation: int | None = None
    min_origin_confidence: float = 0.0


@dataclass(frozen=True)
class Freshness:
    """Which earlier manifests count as having used real content.

    `lineage`: the manifests of that lineage, which is also the lineage the assembly is recorded
    in (an assembly given another lineage is refused; given none, it takes this one); with no
    lineage here or given, every manifest in the store counts. `manifests`: an explicit list of
    manifest ids or names (a name is the latest manifest of that name) instead. `fresh_after`:
    real content collected before this date (or with no date) is never fresh.
    """

    lineage: str | None = None
    manifests: tuple[str, ...] | None = None
    fresh_after: datetime | None = None


@dataclass(frozen=True)
class SourceRule:
    """Weight (relative preference when drawing) and cap (`max_fraction` of the target) of one
    source. A weight of 0 excludes the source."""

    name: str
    weight: float = 1.0
    max_fraction: float = 1.0


@dataclass(frozen=True)
class Dedup:
    exact: bool = True
    near: bool = False


@dataclass(frozen=True)
class Output:
    """How the set is written. `format`: ``parquet``, ``jsonl``, or ``tokens`` (Parquet shards
    plus each shard's documents as token ids, encoded by `tokenizer`, each followed by
    `separator`: a token or token id, default the tokenizer's end-of-document token). Shards
    have `shard_rows` rows, unless `num_shards` fixes their number or `shards_multiple_of` makes
    it a multiple (so that a set divides evenly over data-parallel ranks)."""

    format: str = "parquet"
    shard_rows: int = 100_000
    on_shortfall: str = "error"
    num_shards: int | None = None
    shards_multiple_of: int | None = None
    tokenizer: str | None = None
    separator: str | int | None = None


@dataclass(frozen=True)
class Policy:
    """A validated mixing policy. Build one with :meth:`from_toml` or :meth:`from_dict`.

    >>> policy = Policy.from_dict({"target": {"rows": 1000},
    ...                            "constraints": {"min_fresh_real_fraction": 0.5}})
    >>> policy.target.amount, policy.constraints.min_fresh_real_fraction
    (1000, 0.5)
    """

    target: Target
    name: str | None = None
    seed: int = 0
    constraints: Constraints = field(default_factory=Constraints)
    freshness: Freshness = field(default_factory=Freshness)
    sources: tuple[SourceRule, ...] = ()
    dedup: Dedup = field(default_factory=Dedup)
    output: Output = field(default_factory=Output)

    @classmethod
    def from_toml(cls, path: str | Path) -> Policy:
        """Read and validate a policy file.

        Raises:
            PolicyError: unreadable file, invalid TOML, or a key that breaks the schema (the
                message names the key and the fix).
        """
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            raise PolicyError(
                f"cannot read policy `{path}`: no such file",
                f"check the path, or write an example there with `curator policy init {path}` (Python: `curator.assembly.policy.example_policy()` returns its text)",
            ) from exc
        except OSError as exc:
            raise PolicyError(
                f"cannot read policy `{path}`: {exc.strerror or exc}",
                "pass a readable policy TOML file",
            ) from exc
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise PolicyError(
                f"`{path}` is not UTF-8 text: byte 0x{raw[exc.start]:02x} on line {line}",
                "save the policy as UTF-8 (TOML files are UTF-8)",
            ) from exc
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(
                f"`{path}` is not valid TOML: {exc}",
                "fix the syntax; `curator policy init` writes an example",
            ) from exc
        output = data.get("output")
        if isinstance(output, dict) and isinstance(output.get("tokenizer"), str):
            # a path in a policy file is relative to the file, not to where curator runs
            output["tokenizer"] = os.path.join(
                os.path.dirname(os.path.realpath(path)), os.path.expanduser(output["tokenizer"])
            )
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "policy") -> Policy:
        """Validate a policy given as a dictionary (the parsed TOML)."""
        _check_finite(data, where, ())
        validate_policy_dict(data, where)
        target_data = data["target"]
        unit = next(u for u in UNITS if u in target_data)
        token_column = target_data.get("token_column")
        if unit == "tokens" and token_column is None:
            token_column = DEFAULT_TOKEN_COLUMN
        target = Target(unit=unit, amount=int(target_data[unit]), token_column=token_column)
        constraints = Constraints(**data.get("constraints", {}))
        fresh = data.get("freshness", {})
        fresh_after = fresh.get("fresh_after")
        if fresh_after is not None and not isinstance(fresh_after, date):
            raise PolicyError(
                f"{where}: `freshness.fresh_after` must be a TOML date or date-time, not {fresh_after!r}",
                "write the date without quotes, e.g. fresh_after = 2025-01-01 "
                "or fresh_after = 2025-01-01T00:00:00Z",
            )
        if isinstance(fresh_after, date) and not isinstance(fresh_after, datetime):
            fresh_after = datetime(fresh_after.year, fresh_after.month, fresh_after.day, tzinfo=UTC)
        elif isinstance(fresh_after, datetime) and fresh_after.tzinfo is None:
            fresh_after = fresh_after.replace(tzinfo=UTC)
        if "lineage" in fresh and "manifests" in fresh:
            raise PolicyError(
                f"{where}: `freshness.lineage` and `freshness.manifests` are both given",
                "use one: a lineage whose earlier manifests count as used, or an explicit list",
            )
        freshness = Freshness(
            lineage=fresh.get("lineage"),
            manifests=tuple(fresh["manifests"]) if "manifests" in fresh else None,
            fresh_after=fresh_after,
        )
        sources = tuple(SourceRule(**rule) for rule in data.get("sources", []))
        names = [rule.name for rule in sources]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise PolicyError(
                f"{where}: source `{duplicated[0]}` has two `[[sources]]` entries",
                "merge them into one",
            )
        return cls(
            target=target,
            name=data.get("name"),
            seed=int(data.get("seed", 0)),
            constraints=constraints,
            freshness=freshness,
            sources=sources,
            dedup=Dedup(**data.get("dedup", {})),
            output=_output(data.get("output", {}), where),
        )

    def source_rule(self, name: str) -> SourceRule:
        for rule in self.sources:
            if rule.name == name:
                return rule
        return SourceRule(name)

    def to_json(self) -> dict[str, Any]:
        """The canonical form recorded in manifests (stable key order, dates as ISO text)."""
        data = asdict(self)
        fresh_after = self.freshness.fresh_after
        data["freshness"]["fresh_after"] = fresh_after.isoformat() if fresh_after else None
        data["freshness"]["manifests"] = (
            list(self.freshness.manifests) if self.freshness.manifests is not None else None
        )
        data["sources"] = [asdict(rule) for rule in self.sources]
        return json.loads(json.dumps(data, sort_keys=True))


def _output(data: dict[str, Any], where: str) -> Output:
    """The `[output]` table, with what the schema cannot say: keys that exclude or need each
    other."""
    if "num_shards" in data and "shards_multiple_of" in data:
        raise PolicyError(
            f"{where}: `output.num_shards` and `output.shards_multiple_of` are both given",
            "use one: `num_shards` for an exact number of shards, `shards_multiple_of` for a "
            "multiple of the number of data-parallel ranks",
        )
    if "num_shards" in data and "shard_rows" in data:
        raise PolicyError(
            f"{where}: `output.num_shards` and `output.shard_rows` are both given",
            "use one: `num_shards` fixes the number of shards (their rows follow from the "
            "target), `shard_rows` their size",
        )
    tokens = data.get("format") == "tokens"
    if tokens and "tokenizer" not in data:
        raise PolicyError(
            f'{where}: `output.format` = "tokens" needs `output.tokenizer`',
            'give the path of a Hugging Face tokenizer.json, e.g. tokenizer = "tokenizer.json"',
        )
    for key in ("tokenizer", "separator"):
        if key in data and not tokens:
            raise PolicyError(
                f"{where}: `output.{key}` is given but `output.format` is "
                f'"{data.get("format", "parquet")}"',
                f'set `format = "tokens"` to write token arrays, or remove `{key}`',
            )
    return Output(**data)


def _fraction(description: str) -> dict[str, Any]:
    return {"type": "number", "minimum": 0, "maximum": 1, "description": description}


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema a policy (parsed from TOML) must match."""
    positive_int = {"type": "integer", "minimum": 1}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://curator.dev/schemas/policy.schema.json",
        "title": "curator mixing policy",
        "type": "object",
        "additionalProperties": False,
        "required": ["target"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "description": "Name of the assembled set."},
            "seed": {"type": "integer", "minimum": 0, "description": "Seed of the selection hash."},
            "target": {
                "type": "object",
                "additionalProperties": False,
                "description": "Size of the set: exactly one of rows, bytes (of content) or tokens.",
                "properties": {
                    "rows": positive_int,
                    "bytes": positive_int,
                    "tokens": positive_int,
                    "token_column": {
                        "type": "string",
                        "minLength": 1,
                        "default": DEFAULT_TOKEN_COLUMN,
                        "description": "With `tokens`: the column of each sample's token count "
                        "(default `n_tokens`, added by `--tokenizer` or `curator tokens`).",
                    },
                },
                "oneOf": [
                    {"required": ["rows"]},
                    {"required": ["bytes"]},
                    {"required": ["tokens"]},
                ],
            },
            "constraints": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "min_fresh_real_fraction": _fraction(
                        "Real content no earlier manifest of the lineage used."
                    ),
                    "min_real_fraction": _fraction("Real content, fresh or used."),
                    "max_synthetic_fraction": _fraction("Content made by a generative model."),
                    "max_unknown_fraction": _fraction(
                        "Content of unknown origin (or below min_origin_confidence)."
                    ),
                    "max_generation": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Deeper synthetic samples are never chosen.",
                    },
                    "min_origin_confidence": _fraction("Labels below it count as unknown."),
                },
            },
            "freshness": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "lineage": {"type": "string", "minLength": 1},
                    "manifests": {"type": "array", "items": {"type": "string"}},
                    "fresh_after": {"description": "A TOML date or date-time."},
                },
            },
            "sources": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "weight": {"type": "number", "minimum": 0},
                        "max_fraction": _fraction("Cap of this source's share."),
                    },
                },
            },
            "dedup": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"exact": {"type": "boolean"}, "near": {"type": "boolean"}},
            },
            "output": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "format": {
                        "enum": ["parquet", "jsonl", "tokens"],
                        "description": "tokens: Parquet shards plus token arrays "
                        "(tokens/<shard>.npy, tokens/<shard>.idx.npy); needs tokenizer.",
                    },
                    "shard_rows": {
                        **positive_int,
                        "description": "Rows per output shard; excludes num_shards.",
                    },
                    "on_shortfall": {"enum": ["error", "shrink"]},
                    "num_shards": {
                        **positive_int,
                        "description": "Exactly this many output shards (sizes differ by at "
                        "most one row); excludes shards_multiple_of and shard_rows.",
                    },
                    "shards_multiple_of": {
                        **positive_int,
                        "description": "A number of output shards that is a multiple of this "
                        "(e.g. the data-parallel world size); excludes num_shards.",
                    },
                    "tokenizer": {
                        "type": "string",
                        "minLength": 1,
                        "description": "With format tokens: a local Hugging Face tokenizer.json "
                        "(or a directory holding one); a relative path is relative to the policy "
                        "file.",
                    },
                    "separator": {
                        "type": ["string", "integer"],
                        "description": "With format tokens: the token (or token id) after each "
                        "document; default the tokenizer's end-of-document token.",
                    },
                },
            },
        },
    }


_HINTS = {
    "additionalProperties": "remove it, or check its spelling against `curator policy init`",
    "oneOf": "give exactly one of `rows`, `bytes` or `tokens`",
    "required": "add it",
    "enum": "use one of the allowed values",
    "minimum": "use a larger value",
    "maximum": "use a smaller value",
    "type": "use a value of the right type",
}


def validate_policy_dict(data: dict[str, Any], where: str = "policy") -> None:
    """Raise PolicyError naming the first offending key (in document order) and the fix."""
    import jsonschema

    # TOML dates are not JSON: the schema only checks their presence.
    validator = jsonschema.Draft202012Validator(policy_json_schema())
    errors = sorted(
        validator.iter_errors(_jsonable(data)),
        key=lambda e: (list(map(str, e.absolute_path)), e.validator),
    )
    if not errors:
        return
    error = errors[0]
    key = _key_path(error.absolute_path) or "(top level)"
    hint = _HINTS.get(str(error.validator), "see `curator policy init` for the format")
    if error.validator == "additionalProperties":
        valid = list(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(valid))
        key = _key_path([*error.absolute_path, extra[0]]) if extra else key
        message = f"{where}: unknown key `{key}`"
        hint = _unknown_key_hint(extra[0] if extra else "", list(error.absolute_path), valid)
    elif error.validator == "required":
        message = f"{where}: `{key}` is missing {error.message.split(' is a required')[0]}"
    elif error.validator == "oneOf":
        message = f"{where}: `{key}` must give exactly one of `rows`, `bytes` or `tokens`"
    else:
        message = f"{where}: `{key}`: {error.message}"
    raise PolicyError(message, hint)


def _key_path(path: Any) -> str:
    """``["sources", 0, "name"]`` → ``sources[0].name``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _unknown_key_hint(key: str, table_path: list[Any], valid: list[str]) -> str:
    """Name the table, the closest valid key (difflib) and every valid key of that table."""

    names = [str(p) for p in table_path if not isinstance(p, int)]
    if not names:
        table = "the top level"
    elif names[-1] == "sources":
        table = "`[[sources]]`"
    else:
        table = f"`[{'.'.join(names)}]`"
    listed = ", ".join(f"`{name}`" for name in valid)
    return f"{did_you_mean(key, valid)}the keys of {table} are {listed}"


def _check_finite(value: Any, where: str, path: tuple[Any, ...]) -> None:
    """TOML allows `nan` and `inf`, which no bound of the schema catches (nan compares false)."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, where, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, where, (*path, i))
    elif isinstance(value, float) and not math.isfinite(value):
        key = _key_path(path)
        wanted = "a fraction between 0 and 1" if "fraction" in key else "a finite number"
        raise PolicyError(f"{where}: `{key}` is {value}, not a finite number", f"give {wanted}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


EXAMPLE_POLICY = """\
# A curator mixing policy. Check it against a store with: curator policy check THIS_FILE
name = "gen-2"
seed = 7                      # same store + same policy + same seed => the same selection

[target]
rows = 800_000                # or: bytes = 4_000_000_000, or: tokens = … (counts `n_tokens`)

[constraints]                 # fractions of the target, in its unit; unknown counts as not real
min_fresh_real_fraction = 0.5 # real content no earlier manifest of the lineage used
min_real_fraction = 0.6
max_synthetic_fraction = 0.4
max_unknown_fraction = 0.0
max_generation = 3            # deeper synthetic samples are never chosen
min_origin_confidence = 0.9   # labels below this count as unknown

[freshness]
lineage = "main"              # the set's lineage: its earlier manifests count as used
# manifests = ["…"]           # or an explicit list of manifest ids or names
# fresh_after = 2025-01-01    # real content collected earlier is never fresh

# Optional: weights (preference) and caps per source. "web-2021" is a PLACEHOLDER: put a source
# of your store here (`curator policy init --store STORE` writes the store's own sources), or
# delete this table; a source the store lacks is an error.
[[sources]]
name = "web-2021"             # placeholder
weight = 2.0
max_fraction = 0.7

[dedup]
exact = true                  # one copy of each content, the most trustworthy
near = false                  # near-duplicate clusters (needs `curator dedup`)

[output]
format = "parquet"            # or "jsonl", or "tokens" (with tokenizer = "tokenizer.json")
shard_rows = 100_000          # or: num_shards = 64, or: shards_multiple_of = 8 (the world size)
on_shortfall = "error"        # or "shrink": the largest set that meets every constraint
"""


def example_policy(sources: list[tuple[str, int]] | None = None) -> str:
    """The commented example policy; given a store's sources (name, rows), its `[[sources]]`
    tables name them (weight 1, no cap) instead of the placeholder."""
    if sources is None:
        return EXAMPLE_POLICY
    start = EXAMPLE_POLICY.index("# Optional: weights")
    end = EXAMPLE_POLICY.index("[dedup]")
    tables = (
        "# Weights (preference) and caps (max_fraction of the target) per source of the store.\n"
    )
    for name, rows in sources:
        tables += (
            f"[[sources]]                   # {rows:,} row{'s' if rows != 1 else ''} in the store\n"
            f"name = {json.dumps(name)}\nweight = 1.0\nmax_fraction = 1.0\n\n"
        )
    if not sources:
        tables = "# [[sources]] tables name the store's sources; it has none yet.\n\n"
    return EXAMPLE_POLICY[:start] + tables + EXAMPLE_POLICY[end:]


def check_sources(policy: Policy, store_sources: list[str]) -> None:
    """Every `[[sources]]` name must be a source of the store: a misspelt name would cap nothing.

    Raises:
        PolicyError: naming the unknown source, the closest store source and the store's sources.
    """

    known = sorted(set(store_sources))
    for index, rule in enumerate(policy.sources):
        if rule.name in known:
            continue
        listed = ", ".join(f"`{name}`" for name in known) or "none yet"
        raise PolicyError(
            f"`sources[{index}].name` is `{rule.name}`, which is not a source of the store "
            f"(its sources: {listed})",
            did_you_mean(rule.name, known)
            + "use one of the store's sources, or delete the `[[sources]]` table",
        )


if __name__ == "__main__":  # pragma: no cover - regenerates schemas/policy.schema.json
    print(json.dumps(policy_json_schema(), indent=2))
