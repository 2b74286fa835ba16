"""Policy values and names that used to reach internal errors or do nothing: each is a clear
error naming the key, with a hint."""

from __future__ import annotations

import pytest

from curator.assembly.planner import Cell, Pool, ShortfallError, plan
from curator.assembly.policy import (
    EXAMPLE_POLICY,
    Policy,
    PolicyError,
    check_sources,
    example_policy,
)


def _error(tmp_path, text: str | bytes) -> PolicyError:
    path = tmp_path / "p.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        Policy.from_toml(path)
    return caught.value


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (
            "[target]\nrows = 10\n[constraints]\nmin_real_fraction = nan\n",
            "`constraints.min_real_fraction` is nan, not a finite number",
            "give a fraction between 0 and 1",
        ),
        (
            '[target]\nrows = 10\n[[sources]]\nname = "web"\nweight = inf\n',
            "`sources[0].weight` is inf, not a finite number",
            "give a finite number",
        ),
        (
            '[target]\nrows = 10\n[freshness]\nfresh_after = "not a date"\n',
            "`freshness.fresh_after` must be a TOML date or date-time, not 'not a date'",
            "write the date without quotes, e.g. fresh_after = 2025-01-01 or fresh_after = 2025-01-01T00:00:00Z",
        ),
        (
            "[target]\nrows = 10\n[constraints]\nmin_fresh_real_fractoin = 0.5\n",
            "unknown key `constraints.min_fresh_real_fractoin`",
            "did you mean `min_fresh_real_fraction`? the keys of `[constraints]` are "
            "`min_fresh_real_fraction`, `min_real_fraction`, `max_synthetic_fraction`, "
            "`max_unknown_fraction`, `max_generation`, `min_origin_confidence`",
        ),
        (
            '[target]\nrows = 10\n[[sources]]\nname = "web"\nmax_fractoin = 0.5\n',
            "unknown key `sources[0].max_fractoin`",
            "did you mean `max_fraction`? the keys of `[[sources]]` are `name`, `weight`, `max_fraction`",
        ),
        (
            "sead = 3\n[target]\nrows = 10\n",
            "unknown key `sead`",
            "did you mean `seed`? the keys of the top level are `name`, `seed`, `target`, "
            "`constraints`, `freshness`, `sources`, `dedup`, `output`",
        ),
        (
            "[target]\nrows = 10\nbogus = 1\n",
            "unknown key `target.bogus`",
            "the keys of `[target]` are `rows`, `bytes`, `tokens`, `token_column`",
        ),
    ],
)
def test_bad_values_and_misspelt_keys_are_errors_naming_the_key(tmp_path, text, message, hint):
    error = _error(tmp_path, text)
    assert (error.message, error.hint) == (f"{tmp_path / 'p.toml'}: {message}", hint)


def test_a_policy_file_that_is_not_utf8_or_missing(tmp_path):
    error = _error(tmp_path, b'name = "caf\xe9"\n[target]\nrows = 10\n')
    assert error.message == f"`{tmp_path / 'p.toml'}` is not UTF-8 text: byte 0xe9 on line 1"
    assert error.hint == "save the policy as UTF-8 (TOML files are UTF-8)"
    with pytest.raises(PolicyError) as caught:
        Policy.from_toml(tmp_path / "nosuch.toml")
    assert caught.value.message == f"cannot read policy `{tmp_path / 'nosuch.toml'}`: no such file"
    assert caught.value.hint == (
        f"check the path, or write an example there with `curator policy init {tmp_path / 'nosuch.toml'}` "
        "(Python: `curator.assembly.policy.example_policy()` returns its text)"
    )


def test_a_source_the_store_lacks_is_an_error_with_did_you_mean():
    policy = Policy.from_dict(
        {"target": {"rows": 10}, "sources": [{"name": "web-2O21", "max_fraction": 0.7}]}
    )
    with pytest.raises(PolicyError) as caught:
        check_sources(policy, ["web-2021", "books", "web-2021"])
    assert caught.value.message == (
        "`sources[0].name` is `web-2O21`, which is not a source of the store "
        "(its sources: `books`, `web-2021`)"
    )
    assert caught.value.hint == (
        "did you mean `web-2021`? use one of the store's sources, or delete the `[[sources]]` table"
    )
    check_sources(
        Policy.from_dict({"target": {"rows": 10}, "sources": [{"name": "books"}]}), ["books"]
    )


def test_the_example_source_is_a_placeholder_and_a_store_gives_its_own():
    assert 'name = "web-2021"             # placeholder' in EXAMPLE_POLICY
    assert "is a PLACEHOLDER" in EXAMPLE_POLICY
    text = example_policy([("books", 1200), ("web", 34)])
    assert "web-2021" not in text
    assert (
        '[[sources]]                   # 1,200 rows in the store\nname = "books"\nweight = 1.0\n'
        "max_fraction = 1.0\n" in text
    )
    import tomllib

    parsed = Policy.from_dict(tomllib.loads(text))
    assert [rule.name for rule in parsed.sources] == ["books", "web"]


def test_a_floor_the_source_caps_forbid_names_both_settings():
    policy = Policy.from_dict(
        {
            "target": {"rows": 1000},
            "constraints": {"min_fresh_real_fraction": 0.9},
            "sources": [{"name": "web", "max_fraction": 0.7}],
        }
    )
    available = {
        Cell("fresh_real", "web"): Pool(5000, 5000),
        Cell("synthetic", "gen", 1): Pool(5000, 5000),
    }
    with pytest.raises(ShortfallError) as caught:
        plan(policy, available)
    assert caught.value.message == (
        "`min_fresh_real_fraction = 0.9` cannot be met by a set of any size: fresh real data comes "
        "only from source `web`, capped by `sources.web.max_fraction = 0.7`"
    )
    assert caught.value.hint == (
        "these settings conflict: lower `min_fresh_real_fraction` to at most 0.7, or raise "
        "`sources.web.max_fraction` to at least 0.9"
    )


def test_caps_that_leave_less_than_a_whole_set_are_named():
    policy = Policy.from_dict(
        {
            "target": {"rows": 1000},
            "constraints": {"max_synthetic_fraction": 0.2, "max_unknown_fraction": 0.0},
            "sources": [{"name": "web", "max_fraction": 0.7}],
        }
    )
    available = {
        Cell("fresh_real", "web"): Pool(5000, 5000),
        Cell("synthetic", "gen", 1): Pool(5000, 5000),
    }
    with pytest.raises(ShortfallError) as caught:
        plan(policy, available)
    assert caught.value.message == (
        "the caps leave room for at most 0.9 of a set of any size: "
        "`sources.web.max_fraction = 0.7`, `max_synthetic_fraction = 0.2`"
    )
    assert caught.value.hint == (
        "these settings conflict: raise them to add up to at least 1 (they add up to 0.9)"
    )


def test_the_hint_number_agrees_with_the_message_when_caps_bind():
    # 1,298 fresh real rows, but source `a` (1,000 of them) is capped at 0.3: 0.3 T + 298 >= 0.5 T
    settings = {
        "constraints": {"min_fresh_real_fraction": 0.5},
        "sources": [{"name": "a", "max_fraction": 0.3}],
    }
    policy = Policy.from_dict({"target": {"rows": 3000}, **settings})
    available = {
        Cell("fresh_real", "a"): Pool(1000, 1000),
        Cell("fresh_real", "b"): Pool(298, 298),
        Cell("synthetic", "gen", 1): Pool(5000, 5000),
    }
    with pytest.raises(ShortfallError) as caught:
        plan(policy, available)
    assert caught.value.message == (
        "`min_fresh_real_fraction` 0.5 of 3,000 rows needs 1,500 fresh real rows; 1,298 are "
        "available, and the caps (`sources.a.max_fraction` 0.3) let at most 1,198 of them in"
    )
    assert caught.value.hint == (
        'lower the target to 1,490, add fresh real data, or set `on_shortfall = "shrink"`'
    )
    assert plan(Policy.from_dict({"target": {"rows": 1490}, **settings}), available).total == 1490
