"""The Gaussian self-consuming loop against what follows from the model directly.

Monte Carlo means are compared with exact expectations within 5 standard errors (std / sqrt(R)
of the repetitions); the seeds are fixed, so every test is deterministic.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from curator.core.errors import InputError
from curator.loop.simulate import (
    FITS,
    LOOPS,
    METRICS,
    MODES,
    SimulationConfig,
    compare_loops,
    plot_simulation,
    simulate,
)
from tests.conftest import invoke

REQUIRED_KEYS = {
    "generation",
    "mean_sq_error_mean",
    "cov_trace_mean",
    "log_cov_trace_median",
    "w2_sq_mean",
    "mean_sq_error_std",
    "cov_trace_std",
    "w2_sq_std",
}


def expected_moments(config: SimulationConfig) -> list[tuple[float, float]]:
    """Exact (E||mu_k||^2, E tr Sigma_k) for k = 1..K, by recursion over generations.

    Two identities give every case. For a training set z_1..z_n with mean zbar, the scatter's
    trace is sum ||z_i||^2 - n ||zbar||^2, and tr Sigma = that / d(n), d(n) = n - 1 (unbiased) or
    n (mle). Given generation k-1, a synthetic sample y has E y = mu_{k-1}, E ||y||^2 = ||mu||^2 +
    lam tr Sigma_{k-1}, and the mean of M of them has E ||ybar||^2 = ||mu||^2 + lam tr Sigma / M;
    a real sample x has E ||x||^2 = D and the mean of N has E ||xbar||^2 = D / N.

    - Generation 1: m_1 = D / N, t_1 = D (N - 1) / d(N).
    - replace, training set = M synthetic + `extra` real (0, generation 1's N, or N new):
      m_k = (M^2 (m + lam t / M) + 2 M extra c + extra D) / n^2 with n = M + extra and
      c = E[xbar_1 . mu_{k-1}] (augmentation; 0 for fresh real samples, which are independent);
      t_k = (M (m + lam t) + extra D - n m_k) / d(n); and c_k = (M c_{k-1} + D) / n, c_1 = D / N.
      With extra = 0 this is m_k = m + lam t / M and t_k = lam t (M - 1) / d(M).
    - accumulate, pool of n samples with q = E sum ||z||^2, mean mu_{k-1}; add M synthetic and
      (fresh) N new real: q' = q + M (m + lam t) + extra D, n' = n + M + extra,
      m_k = ((n + M)^2 m + M lam t + extra D) / n'^2, t_k = (q' - n' m_k) / d(n').
    """
    dim, n_real, n_syn, lam = config.dim, config.n_real, config.n_synthetic, config.lam

    def divisor(n: int) -> int:
        return n - 1 if config.fit == "unbiased" else n

    m, t = dim / n_real, dim * (n_real - 1) / divisor(n_real)
    moments = [(m, t)]
    if config.mode == "replace":
        extra = 0 if config.loop == "fully-synthetic" else n_real
        n = n_syn + extra
        cross = dim / n_real
        for _ in range(2, config.generations + 1):
            shared = cross if config.loop == "augmentation" else 0.0
            new_m = n_syn**2 * (m + lam * t / n_syn) + 2 * n_syn * extra * shared + extra * dim
            new_m /= n**2
            t = (n_syn * (m + lam * t) + extra * dim - n * new_m) / divisor(n)
            m, cross = new_m, (n_syn * cross + dim) / n
            moments.append((m, t))
    else:
        extra = n_real if config.loop == "fresh" else 0
        n, q = n_real, n_real * dim
        for _ in range(2, config.generations + 1):
            new_n = n + n_syn + extra
            q += n_syn * (m + lam * t) + extra * dim
            m = ((n + n_syn) ** 2 * m + n_syn * lam * t + extra * dim) / new_n**2
            t = (q - new_n * m) / divisor(new_n)
            n = new_n
            moments.append((m, t))
    return moments


def assert_within(row: dict, metric: str, expected: float, reps: int, k: float = 5.0) -> None:
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    error = std / math.sqrt(reps)
    assert abs(mean - expected) <= k * error + 1e-12, (
        f"generation {row['generation']}: {metric} {mean} vs {expected} "
        f"({(mean - expected) / error:+.1f} standard errors)"
    )


# -- exact expectations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dim", "n_real", "n_synthetic", "lam", "seed"),
    [(3, 10, 8, 0.9, 1), (4, 6, 3, 1.2, 2)],  # the second: M < D, so Sigma_k is singular
)
@pytest.mark.parametrize("fit", FITS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("loop", LOOPS)
def test_means_match_the_exact_expectations(loop, mode, fit, dim, n_real, n_synthetic, lam, seed):
    config = SimulationConfig(
        loop=loop,
        mode=mode,
        fit=fit,
        dim=dim,
        n_real=n_real,
        n_synthetic=n_synthetic,
        lam=lam,
        generations=6,
        reps=3000,
        seed=seed,
    )
    rows = simulate(config).rows
    for row, (mean_sq_error, cov_trace) in zip(rows[1:], expected_moments(config), strict=True):
        assert_within(row, "mean_sq_error", mean_sq_error, config.reps)
        assert_within(row, "cov_trace", cov_trace, config.reps)


def test_the_oracle_in_closed_form():
    """The recursions above reduce to the formulas in the issue where those exist."""
    dim, n, m, lam = 3, 10, 8, 0.9
    base = SimulationConfig(dim=dim, n_real=n, n_synthetic=m, lam=lam, generations=6)
    for k, (mse, trace) in enumerate(expected_moments(base), start=1):
        assert trace == pytest.approx(dim * lam ** (k - 1))
        assert mse == pytest.approx(dim / n + dim / m * sum(lam**j for j in range(1, k)))
    mle = dataclasses.replace(base, fit="mle")
    for k, (_, trace) in enumerate(expected_moments(mle), start=1):
        assert trace == pytest.approx(dim * (n - 1) / n * ((m - 1) / m * lam) ** (k - 1))


@pytest.mark.parametrize("fit", FITS)
def test_fully_synthetic_replace_closed_form(fit):
    """E tr Sigma_k = D c_N (lam c_M)^(k-1) with c_n = 1 (unbiased) or (n-1)/n (mle), and
    E||mu_k||^2 = D/N + (lam / M) sum_{j=1}^{k-1} E tr Sigma_j (so D/N + (D/M) sum_{j=1}^{k-1}
    lam^j for unbiased fits)."""
    dim, n, m, lam, reps = 2, 20, 5, 0.8, 4000
    config = SimulationConfig(
        dim=dim, n_real=n, n_synthetic=m, lam=lam, generations=8, reps=reps, fit=fit, seed=7
    )
    shrink = (lambda size: 1.0) if fit == "unbiased" else (lambda size: (size - 1) / size)
    rows = simulate(config).rows
    traces = [dim * shrink(n) * (lam * shrink(m)) ** (k - 1) for k in range(1, 9)]
    for k, row in enumerate(rows[1:], start=1):
        assert row["training_samples"] == (n if k == 1 else m)
        assert_within(row, "cov_trace", traces[k - 1], reps)
        assert_within(row, "mean_sq_error", dim / n + lam / m * sum(traces[: k - 1]), reps)


@pytest.mark.parametrize("fit", FITS)
def test_generation_one_w2_trace_quantiles_and_log_median_in_one_dimension(fit):
    """D = 1: (N-1) s^2 ~ chi2(N-1) with s^2 the unbiased variance; Sigma_1 = a s^2 with
    a = 1 (unbiased) or (N-1)/N (mle); E s = c4(N) = sqrt(2/(N-1)) Gamma(N/2) / Gamma((N-1)/2), so
    E W2^2 = E mu^2 + E (sigma - 1)^2 = 1/N + a - 2 sqrt(a) c4(N) + 1."""
    n, reps = 6, 20001  # odd: the median is one repetition's value
    rows = simulate(SimulationConfig(dim=1, n_real=n, generations=1, reps=reps, fit=fit)).rows
    row = rows[1]
    a = 1.0 if fit == "unbiased" else (n - 1) / n
    c4 = math.sqrt(2 / (n - 1)) * math.exp(math.lgamma(n / 2) - math.lgamma((n - 1) / 2))
    assert_within(row, "w2_sq", 1 / n + a - 2 * math.sqrt(a) * c4 + 1, reps)
    assert_within(row, "mean_sq_error", 1 / n, reps)
    # Quantiles of tr Sigma_1 = a chi2(N-1) / (N-1), within 5 standard errors of a sample quantile.
    trace = stats.chi2(df=n - 1, scale=a / (n - 1))
    for key, p in (("q05", 0.05), ("median", 0.5), ("q95", 0.95)):
        expected = trace.ppf(p)
        error = math.sqrt(p * (1 - p) / reps) / trace.pdf(expected)
        assert abs(row[f"cov_trace_{key}"] - expected) <= 5 * error, key
    assert row["log_cov_trace_median"] == pytest.approx(math.log(row["cov_trace_median"]))


def test_generation_zero_is_the_truth():
    rows = simulate(SimulationConfig(dim=5, generations=1, reps=10)).rows
    truth = rows[0]
    assert truth["generation"] == 0 and truth["training_samples"] is None
    for metric in ("mean_sq_error", "w2_sq"):
        for key in ("mean", "std", "q05", "median", "q95"):
            assert truth[f"{metric}_{key}"] == 0.0
    assert truth["cov_trace_mean"] == truth["cov_trace_median"] == 5.0
    assert truth["cov_trace_std"] == 0.0
    assert truth["log_cov_trace_median"] == math.log(5)


# -- collapse, and what fresh data does ---------------------------------------------------------


@pytest.mark.parametrize(("fit", "lam"), [("mle", 1.0), ("unbiased", 0.8)])
def test_fully_synthetic_collapses_and_fresh_stays_bounded(fit, lam):
    dim, n = 2, 10
    base = SimulationConfig(
        dim=dim, n_real=n, n_synthetic=10, lam=lam, fit=fit, generations=60, reps=300, seed=3
    )
    synthetic, augmentation, fresh = compare_loops(base)
    traces = [row["cov_trace_mean"] for row in synthetic.rows]
    # E tr Sigma_60 = D 0.9^60 = 0.0036 (mle), D 0.8^59 = 3e-6 (unbiased), from D at first.
    assert traces[-1] < 5e-3 * dim
    medians = [row["cov_trace_median"] for row in synthetic.rows[::10]]
    assert all(later < earlier / 2 for earlier, later in itertools.pairwise(medians))
    assert medians[-1] < 1e-4 * dim
    assert synthetic.rows[-1]["cov_trace_q95"] < 1e-2 * dim
    assert synthetic.rows[-1]["w2_sq_mean"] > dim  # W2^2 -> ||mu||^2 + D as Sigma -> 0
    for row in fresh.rows:
        assert 0.5 * dim < row["cov_trace_mean"] < 1.5 * dim
        assert row["mean_sq_error_mean"] < 2 * dim / n
        assert row["w2_sq_mean"] < 1.0
    # Keeping generation 1's real samples slows the collapse but does not stop its drift.
    assert fresh.rows[-1]["w2_sq_mean"] < augmentation.rows[-1]["w2_sq_mean"]
    assert augmentation.rows[-1]["w2_sq_mean"] < synthetic.rows[-1]["w2_sq_mean"]


def test_accumulating_keeps_generation_one_so_two_loops_coincide():
    """In mode accumulate the fully synthetic loop keeps generation 1's real samples, so it is the
    augmentation loop exactly (the two streams of random numbers are shared)."""
    config = SimulationConfig(
        dim=2, n_real=5, n_synthetic=4, generations=4, reps=20, mode="accumulate"
    )
    synthetic, augmentation, fresh = compare_loops(config)
    assert synthetic.rows == augmentation.rows
    assert [row["training_samples"] for row in synthetic.rows] == [None, 5, 9, 13, 17]
    assert [row["training_samples"] for row in fresh.rows] == [None, 5, 14, 23, 32]
    assert synthetic.rows[1] == fresh.rows[1]  # generation 1 is shared by every loop


def test_one_sample_with_an_mle_fit_collapses_at_once():
    rows = simulate(SimulationConfig(fit="mle", n_synthetic=1, generations=3, reps=10)).rows
    for row in rows[2:]:
        assert row["cov_trace_mean"] == 0.0 and row["log_cov_trace_median"] is None
        assert row["mean_sq_error_mean"] == rows[2]["mean_sq_error_mean"]
    result = simulate(SimulationConfig(fit="mle", n_synthetic=1, generations=2, reps=3))
    assert "-inf" in result.format_table().splitlines()[-1].split()


# -- properties ---------------------------------------------------------------------------------


configs = st.builds(
    SimulationConfig,
    loop=st.sampled_from(LOOPS),
    dim=st.integers(1, 3),
    n_real=st.integers(2, 6),
    n_synthetic=st.integers(2, 6),
    lam=st.floats(0.25, 2.0),
    generations=st.integers(1, 4),
    reps=st.integers(1, 12),
    fit=st.sampled_from(FITS),
    mode=st.sampled_from(MODES),
    seed=st.integers(0, 2**32),
)


@settings(max_examples=40, deadline=None)
@given(configs)
def test_deterministic_and_independent_of_chunking(config):
    rows = simulate(config).rows
    assert simulate(config).rows == rows
    assert simulate(config, max_chunk_bytes=1).rows == rows  # one repetition at a time
    assert len(rows) == config.generations + 1
    assert [row["training_samples"] for row in rows[1:]] == [
        config.training_samples(k) for k in range(1, config.generations + 1)
    ]


@settings(max_examples=40, deadline=None)
@given(configs)
def test_outputs_are_finite_non_negative_and_ordered(config):
    rows = simulate(config).rows
    assert rows[0]["cov_trace_mean"] == config.dim and rows[0]["w2_sq_mean"] == 0.0
    for row in rows:
        assert row.keys() >= REQUIRED_KEYS
        assert math.isfinite(row["log_cov_trace_median"])
        for metric in METRICS:
            values = [row[f"{metric}_{key}"] for key in ("mean", "std", "q05", "median", "q95")]
            assert all(math.isfinite(v) and v >= 0 for v in values), (metric, values)
            assert row[f"{metric}_q05"] <= row[f"{metric}_median"] <= row[f"{metric}_q95"]
        assert row["w2_sq_mean"] >= row["mean_sq_error_mean"]
    json.dumps(simulate(config).to_json(), allow_nan=False)


def test_seeds_matter():
    config = SimulationConfig(generations=2, reps=5)
    assert simulate(config).rows != simulate(dataclasses.replace(config, seed=1)).rows


# -- errors -------------------------------------------------------------------------------------

ERRORS = [
    (
        {"dim": 0},
        "`--dim` must be at least 1, got 0",
        "D is the dimension of the Gaussian, e.g. `--dim 2`",
    ),
    (
        {"reps": 0},
        "`--reps` must be at least 1, got 0",
        "the summaries average over the repetitions, e.g. `--reps 1000`",
    ),
    (
        {"lam": 0.0},
        "`--lam` must be a positive number, got 0.0",
        "λ scales the covariance each generation samples from: 1 keeps it, below 1 narrows it, "
        "e.g. `--lam 0.9`",
    ),
    (
        {"lam": -0.5},
        "`--lam` must be a positive number, got -0.5",
        "λ scales the covariance each generation samples from: 1 keeps it, below 1 narrows it, "
        "e.g. `--lam 0.9`",
    ),
    (
        {"n_synthetic": 1},
        "`--n-synthetic` is 1, so the fully synthetic loop fits each generation to 1 sample, "
        "but an unbiased fit needs at least 2",
        "use `--n-synthetic 2` or more, `--fit mle`, or `--mode accumulate`",
    ),
    (
        {"n_synthetic": 0},
        "`--n-synthetic` must be at least 1, got 0",
        "each generation draws M samples from the one before, e.g. `--n-synthetic 100`",
    ),
    (
        {"n_real": 1},
        "`--n-real` is 1, but an unbiased fit needs at least 2 samples",
        "use `--n-real 2` or more, or `--fit mle`",
    ),
    (
        {"generations": 0},
        "`--generations` must be at least 1, got 0",
        "generation 1 is the first fitted model, e.g. `--generations 20`",
    ),
    ({"seed": -1}, "`--seed` must be a non-negative integer, got -1", "pass e.g. `--seed 0`"),
    (
        {"reps": 100_000, "dim": 200},
        "`--reps` 100,000 with `--dim` 200 needs about 59.6 GiB for the fitted covariances "
        "(2 × reps × dim² numbers; at most 2 GiB)",
        "lower `--reps` or `--dim`",
    ),
    (
        {"n_real": 100_000_000},
        "`--n-real` 100,000,000 and `--n-synthetic` 100 with `--dim` 2 need about 4.5 GiB for "
        "one repetition's samples (at most 2 GiB)",
        "lower `--n-real`, `--n-synthetic` or `--dim`",
    ),
]


@pytest.mark.parametrize(("options", "message", "hint"), ERRORS)
def test_bad_configs_name_the_option(options, message, hint):
    with pytest.raises(InputError) as caught:
        SimulationConfig(**options)
    assert (caught.value.message, caught.value.hint) == (message, hint)


@pytest.mark.parametrize(("options", "message", "hint"), ERRORS)
def test_bad_options_on_the_command_line(runner, options, message, hint):
    args = []
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    result = runner.invoke(_cli(), ["simulate", *args])
    assert result.exit_code == 1
    assert result.output == f"Error: {message}\nHint: {hint}\n"


def test_one_synthetic_sample_is_fine_where_the_training_set_has_more():
    for options in ({"fit": "mle"}, {"loop": "augmentation"}, {"mode": "accumulate"}):
        SimulationConfig(n_synthetic=1, **options)
    SimulationConfig(n_synthetic=1, generations=1)  # generation 2 never happens


def test_python_values_of_the_wrong_type():
    with pytest.raises(InputError, match=r"`--loop` must be one of fully-synthetic, "):
        SimulationConfig(loop="mixed")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"`--dim` must be an integer, got 2.5"):
        SimulationConfig(dim=2.5)  # type: ignore[arg-type]
    assert SimulationConfig(dim=np.int64(3), lam=2).to_json()["dim"] == 3


def test_overflow_is_an_error():
    with pytest.raises(InputError) as caught:
        simulate(SimulationConfig(lam=1e100, generations=10, reps=3))
    assert str(caught.value) == (
        "the fitted covariance overflowed at generation 5 (`--lam` 1e+100 multiplies it about "
        "1e+100-fold per generation)\nHint: lower `--lam` or `--generations`"
    )


# -- the command line ---------------------------------------------------------------------------


def _cli():
    from curator.cli import cli

    return cli


def test_json_is_the_list_of_generations(runner):
    args = ["--loop", "fresh", "--dim", "3", "--n-real", "8", "--n-synthetic", "5"]
    args += ["--lam", "0.9", "--generations", "3", "--reps", "50", "--seed", "4", "--fit", "mle"]
    result = invoke(runner, "simulate", *args, "--mode", "accumulate", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert isinstance(rows, list) and [row["generation"] for row in rows] == [0, 1, 2, 3]
    assert all(row.keys() >= REQUIRED_KEYS for row in rows)
    config = SimulationConfig(
        loop="fresh",
        dim=3,
        n_real=8,
        n_synthetic=5,
        lam=0.9,
        generations=3,
        reps=50,
        seed=4,
        fit="mle",
        mode="accumulate",
    )
    assert rows == json.loads(json.dumps(simulate(config).rows))
    assert simulate(config).to_json()["config"] == dataclasses.asdict(config)


def test_table(runner):
    result = invoke(runner, "simulate", "--generations", "2", "--reps", "10")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "fully-synthetic loop (replace, unbiased fit): dim 2, 100 real, 100 synthetic, λ 1, "
        "10 repetitions, seed 0"
    )
    assert re.split(r"\s{2,}", lines[1]) == [
        "generation",
        "trained on",
        "E‖μ‖²",
        "sd",
        "E tr Σ",
        "sd",
        "median log tr Σ",
        "E W₂²",
        "sd",
    ]
    assert set(lines[2]) == {"-", " "}
    assert lines[3].split() == ["0", "-", "0", "0", "2", "0", "0.6931", "0", "0"]
    assert [line.split()[:2] for line in lines[4:]] == [["1", "100"], ["2", "100"]]
    assert len({len(line) for line in lines[1:]}) == 1  # aligned: every column right-justified


def test_compare_prints_every_loop(runner, tmp_path):
    result = invoke(runner, "simulate", "--compare", "--generations", "2", "--reps", "10")
    titles = [line for line in result.output.splitlines() if " loop (" in line]
    assert [title.split()[0] for title in titles] == list(LOOPS)
    result = invoke(runner, "simulate", "--compare", "--generations", "2", "--reps", "10", "--json")
    by_loop = json.loads(result.output)
    assert list(by_loop) == list(LOOPS) and all(len(rows) == 3 for rows in by_loop.values())


def test_plots(runner, tmp_path):
    png = tmp_path / "loops.png"
    result = invoke(
        runner, "simulate", "--compare", "--generations", "3", "--reps", "20", "--plot", str(png)
    )
    assert result.exit_code == 0, result.output
    assert result.output.endswith(f"Plot: {png}\n")
    assert png.read_bytes().startswith(b"\x89PNG")
    svg = tmp_path / "fresh.svg"
    results = [simulate(SimulationConfig(loop="fresh", generations=2, reps=5))]
    plot_simulation(results, str(svg))
    assert "<svg" in svg.read_text()[:1000]


def test_a_bad_plot_name_fails_before_the_run(runner, tmp_path):
    result = runner.invoke(_cli(), ["simulate", "--plot", str(tmp_path / "out.pdf")])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: `{tmp_path / 'out.pdf'}` is not a .png or .svg file name\n"
        "Hint: name the plot e.g. `--plot collapse.png`\n"
    )
    nowhere = tmp_path / "missing" / "out.png"
    result = runner.invoke(_cli(), ["simulate", "--plot", str(nowhere)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: `--plot {nowhere}`: the directory `{tmp_path / 'missing'}` does not exist\n"
        "Hint: create it first, or name a file in an existing directory\n"
    )
