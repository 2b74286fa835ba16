"""The Gaussian self-consuming loop: model collapse, and what fresh real data does about it.

The smallest model of the loop that DESIGN.md's researcher runs at full scale. The true
distribution is N(0, I_D) and is generation 0. Generation 1 is a Gaussian fitted to N real samples
(sample mean, and sample covariance with divisor n - 1 for an ``unbiased`` fit or n for ``mle``).
Each generation k >= 2 is fitted to M samples drawn from generation k - 1's model, N(mu, lam *
Sigma), and, by loop:

- ``fully-synthetic``: nothing else;
- ``augmentation``: the same N real samples that generation 1 was fitted to;
- ``fresh``: N new real samples.

In mode ``accumulate`` the training set of generation k also keeps every sample that trained an
earlier generation (so ``fully-synthetic`` and ``augmentation`` coincide: both keep generation 1's
real samples and add M synthetic ones per generation); in mode ``replace`` it does not.

Every quantity is computed for ``reps`` independent repetitions at once (numpy arrays of shape
``(reps, n, dim)``) and summarised per generation: E||mu_k||^2 (the mean's squared error),
E tr Sigma_k, the median of log tr Sigma_k and E W2^2(N(mu_k, Sigma_k), N(0, I)), each with its
standard deviation and 5 % / 50 % / 95 % quantiles over the repetitions.

Training sets are never stored: each is reduced to its count, mean and scatter matrix (merged with
Chan's pairwise update, the numerically stable form of count / sum / sum of outer products), so
memory is O(reps * dim^2) plus one chunk of one generation's samples. Real and synthetic samples
come from two streams of ``numpy.random.Generator(PCG64)`` spawned from the seed and consumed in
(generation, repetition, sample, coordinate) order, so a seed gives the same numbers whatever the
chunking, and the three loops share their random numbers (generation 1 is the same in all three).

>>> result = simulate(SimulationConfig(loop="fresh", generations=3, reps=200))
>>> [row["generation"] for row in result.rows]
[0, 1, 2, 3]
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from curator.core.errors import InputError

Loop = Literal["fully-synthetic", "augmentation", "fresh"]
Fit = Literal["unbiased", "mle"]
Mode = Literal["replace", "accumulate"]
LOOPS: tuple[str, ...] = get_args(Loop)
FITS: tuple[str, ...] = get_args(Fit)
MODES: tuple[str, ...] = get_args(Mode)

#: Default bound on the bytes of samples (and their temporaries) held at once.
DEFAULT_CHUNK_BYTES = 256 * 2**20
#: Above this, the covariance state (two reps x dim x dim arrays), or one repetition's samples,
#: is refused.
MAX_STATE_BYTES = 2 * 2**30

METRICS: tuple[str, ...] = ("mean_sq_error", "cov_trace", "w2_sq")
_QUANTILES: tuple[tuple[str, float], ...] = (("q05", 0.05), ("median", 0.5), ("q95", 0.95))

FloatArray = NDArray[np.float64]


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InputError(f"`{name}` must be an integer, got {value!r}", f"pass e.g. `{name} 2`")
    try:
        return operator.index(value)
    except TypeError:
        raise InputError(
            f"`{name}` must be an integer, got {value!r}", f"pass e.g. `{name} 2`"
        ) from None


def _sample_bytes_per_rep(config: SimulationConfig) -> int:
    """About the bytes one repetition's samples and their temporaries take in one generation."""
    return 8 * (3 * (config.n_real + config.n_synthetic) * config.dim + 8 * config.dim**2)


@dataclass(frozen=True)
class SimulationConfig:
    """One run of the Gaussian self-consuming loop; invalid values raise :class:`InputError`.

    Args:
        loop: ``fully-synthetic``, ``augmentation`` or ``fresh`` (what joins the M synthetic
            samples in each generation's training set; see the module docstring).
        dim: D, the dimension of the Gaussian (>= 1).
        n_real: N, the real samples generation 1 is fitted to (and, by loop, later ones too).
        n_synthetic: M, the samples each generation k >= 2 draws from generation k - 1.
        lam: lambda > 0; generation k - 1 is sampled from N(mu, lam * Sigma) (below 1: the
            truncation or temperature that generators use to trade diversity for quality).
        generations: K >= 1, the last generation simulated.
        reps: R >= 1, independent repetitions that the summaries average over.
        fit: ``unbiased`` (covariance divisor n - 1; needs n >= 2) or ``mle`` (divisor n).
        mode: ``replace`` (train on this generation's samples only) or ``accumulate`` (keep
            every earlier generation's training samples too).
        seed: a non-negative integer; the same config gives the same numbers.

    Messages name the command-line option in backticks, so ``curator simulate`` shows them as
    they are.

    >>> SimulationConfig(dim=0)
    Traceback (most recent call last):
    ...
    curator.core.errors.InputError: `--dim` must be at least 1, got 0
    Hint: D is the dimension of the Gaussian, e.g. `--dim 2`
    """

    loop: Loop = "fully-synthetic"
    dim: int = 2
    n_real: int = 100
    n_synthetic: int = 100
    lam: float = 1.0
    generations: int = 20
    reps: int = 1000
    fit: Fit = "unbiased"
    mode: Mode = "replace"
    seed: int = 0

    def __post_init__(self) -> None:
        for name, allowed in (("loop", LOOPS), ("fit", FITS), ("mode", MODES)):
            value = getattr(self, name)
            if value not in allowed:
                raise InputError(
                    f"`--{name}` must be one of {', '.join(allowed)}, got {value!r}",
                    f"pass e.g. `--{name} {allowed[0]}`",
                )
        for name in ("dim", "n_real", "n_synthetic", "generations", "reps", "seed"):
            object.__setattr__(self, name, _int("--" + name.replace("_", "-"), getattr(self, name)))
        if self.dim < 1:
            raise InputError(
                f"`--dim` must be at least 1, got {self.dim}",
                "D is the dimension of the Gaussian, e.g. `--dim 2`",
            )
        if self.generations < 1:
            raise InputError(
                f"`--generations` must be at least 1, got {self.generations}",
                "generation 1 is the first fitted model, e.g. `--generations 20`",
            )
        if self.n_real < 1:
            raise InputError(
                f"`--n-real` must be at least 1, got {self.n_real}",
                "generation 1 is fitted to N real samples, e.g. `--n-real 100`",
            )
        if self.fit == "unbiased" and self.n_real < 2:
            raise InputError(
                f"`--n-real` is {self.n_real}, but an unbiased fit needs at least 2 samples",
                "use `--n-real 2` or more, or `--fit mle`",
            )
        if self.n_synthetic < 1:
            raise InputError(
                f"`--n-synthetic` must be at least 1, got {self.n_synthetic}",
                "each generation draws M samples from the one before, e.g. `--n-synthetic 100`",
            )
        if self.fit == "unbiased" and self.generations > 1 and self.training_samples(2) < 2:
            raise InputError(
                f"`--n-synthetic` is {self.n_synthetic}, so the fully synthetic loop fits each "
                "generation to 1 sample, but an unbiased fit needs at least 2",
                "use `--n-synthetic 2` or more, `--fit mle`, or `--mode accumulate`",
            )
        if isinstance(self.lam, bool) or not isinstance(self.lam, numbers.Real):
            raise InputError(f"`--lam` must be a number, got {self.lam!r}", "pass e.g. `--lam 0.9`")
        object.__setattr__(self, "lam", float(self.lam))
        if not (math.isfinite(self.lam) and self.lam > 0):
            raise InputError(
                f"`--lam` must be a positive number, got {self.lam}",
                "λ scales the covariance each generation samples from: 1 keeps it, "
                "below 1 narrows it, e.g. `--lam 0.9`",
            )
        if self.reps < 1:
            raise InputError(
                f"`--reps` must be at least 1, got {self.reps}",
                "the summaries average over the repetitions, e.g. `--reps 1000`",
            )
        if self.seed < 0:
            raise InputError(
                f"`--seed` must be a non-negative integer, got {self.seed}", "pass e.g. `--seed 0`"
            )
        state_bytes = 2 * 8 * self.reps * self.dim**2
        if state_bytes > MAX_STATE_BYTES:
            raise InputError(
                f"`--reps` {self.reps:,} with `--dim` {self.dim:,} needs about "
                f"{state_bytes / 2**30:.1f} GiB for the fitted covariances (2 × reps × dim² "
                f"numbers; at most {MAX_STATE_BYTES / 2**30:.0f} GiB)",
                "lower `--reps` or `--dim`",
            )
        sample_bytes = _sample_bytes_per_rep(self)
        if sample_bytes > MAX_STATE_BYTES:
            raise InputError(
                f"`--n-real` {self.n_real:,} and `--n-synthetic` {self.n_synthetic:,} with "
                f"`--dim` {self.dim:,} need about {sample_bytes / 2**30:.1f} GiB for one "
                f"repetition's samples (at most {MAX_STATE_BYTES / 2**30:.0f} GiB)",
                "lower `--n-real`, `--n-synthetic` or `--dim`",
            )

    def training_samples(self, generation: int) -> int:
        """The size of generation `generation`'s training set (>= 1).

        >>> SimulationConfig(loop="fresh", n_real=10, n_synthetic=5, mode="accumulate").training_samples(3)
        40
        """
        if generation < 1:
            raise ValueError("generation 0 is the true distribution; it has no training set")
        per_generation = self.n_synthetic + (self.n_real if self.loop == "fresh" else 0)
        if self.mode == "accumulate":
            return self.n_real + (generation - 1) * per_generation
        if generation == 1:
            return self.n_real
        return per_generation + (self.n_real if self.loop == "augmentation" else 0)

    @property
    def label(self) -> str:
        """``'<loop>, <mode>'``: how plots and tables name the run."""
        return f"{self.loop}, {self.mode}"

    def to_json(self) -> dict[str, Any]:
        """The configuration as a JSON-ready dict (field names as in Python)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SimulationResult:
    """The per-generation summaries of one :func:`simulate` run.

    ``rows`` holds one dict per generation, 0 (the truth) to K, with ``generation``,
    ``training_samples`` (None for generation 0), ``log_cov_trace_median`` (None when the median
    trace is exactly 0, as after a fit to one sample) and, for each metric ``mean_sq_error``
    (||mu_k||^2), ``cov_trace`` (tr Sigma_k) and ``w2_sq`` (squared 2-Wasserstein distance to
    N(0, I_D)), the keys ``<metric>_mean``, ``_std`` (over repetitions, ddof 1; 0 for one
    repetition), ``_q05``, ``_median`` and ``_q95``. The standard error of a mean is its std / sqrt(R).
    """

    config: SimulationConfig
    rows: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """``{"config": {...}, "generations": rows}``; ``curator simulate --json`` prints the rows."""
        return {"config": self.config.to_json(), "generations": self.rows}

    def format_table(self) -> str:
        """A title line and an aligned table with one row per generation."""
        from curator.core.output import render_table

        config = self.config
        title = (
            f"{config.loop} loop ({config.mode}, {config.fit} fit): dim {config.dim}, "
            f"{config.n_real:,} real, {config.n_synthetic:,} synthetic, λ {config.lam:g}, "
            f"{config.reps:,} repetitions, seed {config.seed}"
        )
        columns = [
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
        cells = []
        for row in self.rows:
            log_median = row["log_cov_trace_median"]
            cells.append(
                [
                    str(row["generation"]),
                    "-" if row["training_samples"] is None else f"{row['training_samples']:,}",
                    _number(row["mean_sq_error_mean"]),
                    _number(row["mean_sq_error_std"]),
                    _number(row["cov_trace_mean"]),
                    _number(row["cov_trace_std"]),
                    "-inf" if log_median is None else _number(log_median),
                    _number(row["w2_sq_mean"]),
                    _number(row["w2_sq_std"]),
                ]
            )
        return title + "\n" + render_table(columns, cells, right=[True] * len(columns))


def _number(value: float) -> str:
    return f"{value:.4g}"


def _summary(name: str, values: FloatArray) -> dict[str, float]:
    summary = {
        f"{name}_mean": float(np.mean(values)),
        f"{name}_std": float(np.std(values, ddof=1)) if values.size > 1 else 0.0,
    }
    quantiles = np.quantile(values, [q for _, q in _QUANTILES])
    for (suffix, _), value in zip(_QUANTILES, quantiles, strict=True):
        summary[f"{name}_{suffix}"] = float(value)
    return summary


def _row(
    generation: int,
    training_samples: int | None,
    mean_sq_error: FloatArray,
    cov_trace: FloatArray,
    w2_sq: FloatArray,
) -> dict[str, Any]:
    row: dict[str, Any] = {"generation": generation, "training_samples": training_samples}
    row.update(_summary("mean_sq_error", mean_sq_error))
    row.update(_summary("cov_trace", cov_trace))
    with np.errstate(divide="ignore"):
        log_median = float(np.median(np.log(cov_trace)))
    row["log_cov_trace_median"] = log_median if math.isfinite(log_median) else None
    row.update(_summary("w2_sq", w2_sq))
    return row


# A batch of training samples reduced to (count, mean (c, D), scatter (c, D, D)).
_Stats = tuple[int, FloatArray, FloatArray]


def _batch_stats(samples: FloatArray) -> _Stats:
    mean = samples.mean(axis=1)
    centred = samples - mean[:, None, :]
    return samples.shape[1], mean, np.matmul(centred.transpose(0, 2, 1), centred)


def _merge(a: _Stats, b: _Stats) -> _Stats:
    """Chan et al.'s pairwise update: the stats of the union of two batches."""
    count_a, mean_a, scatter_a = a
    count_b, mean_b, scatter_b = b
    count = count_a + count_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (count_b / count)
    scatter = (
        scatter_a
        + scatter_b
        + (count_a * count_b / count) * (delta[:, :, None] * delta[:, None, :])
    )
    return count, mean, scatter


@dataclass(frozen=True)
class _Streams:
    """Two random streams, so the draws of each are in (generation, repetition, sample,
    coordinate) order whatever the chunking, and the loops share them."""

    real: np.random.Generator
    synthetic: np.random.Generator


@dataclass
class _State:
    """What a generation needs from the generations before it, for every repetition."""

    model_mean: FloatArray  # (R, D): mu of the previous generation
    model_root: FloatArray  # (R, D, D): the symmetric square root of lam * Sigma
    # The samples every later training set keeps (the pool in mode accumulate, generation 1's
    # real samples in the augmentation loop), as count, mean and scatter; None if there are none.
    kept_count: int
    kept_mean: FloatArray | None
    kept_scatter: FloatArray | None

    @classmethod
    def start(cls, config: SimulationConfig) -> _State:
        reps, dim = config.reps, config.dim
        keeps = config.mode == "accumulate" or config.loop == "augmentation"
        return cls(
            model_mean=np.zeros((reps, dim)),
            model_root=np.zeros((reps, dim, dim)),
            kept_count=0,
            kept_mean=np.zeros((reps, dim)) if keeps else None,
            kept_scatter=np.zeros((reps, dim, dim)) if keeps else None,
        )


def _fit_chunk(
    config: SimulationConfig, generation: int, rngs: _Streams, state: _State, reps: slice
) -> FloatArray:
    """Fit generation `generation` for the repetitions `reps`, update `state`, and return their
    (mean_sq_error, cov_trace, w2_sq) as a (3, len) array."""
    size, dim = reps.stop - reps.start, config.dim
    batches: list[_Stats] = []
    if generation == 1:
        batches.append(_batch_stats(rngs.real.standard_normal((size, config.n_real, dim))))
    else:
        if state.kept_mean is not None and state.kept_scatter is not None:
            batches.append((state.kept_count, state.kept_mean[reps], state.kept_scatter[reps]))
        noise = rngs.synthetic.standard_normal((size, config.n_synthetic, dim))
        synthetic = state.model_mean[reps, None, :] + noise @ state.model_root[reps]
        batches.append(_batch_stats(synthetic))
        if config.loop == "fresh":
            batches.append(_batch_stats(rngs.real.standard_normal((size, config.n_real, dim))))
    count, mean, scatter = functools.reduce(_merge, batches)
    scatter = (scatter + scatter.transpose(0, 2, 1)) / 2
    cov = scatter / (count - 1 if config.fit == "unbiased" else count)
    if not (np.isfinite(cov).all() and np.isfinite(mean).all()):
        raise InputError(
            f"the fitted covariance overflowed at generation {generation} "
            f"(`--lam` {config.lam:g} multiplies it about {config.lam:g}-fold per generation)",
            "lower `--lam` or `--generations`",
        )
    keep = config.mode == "accumulate" or generation == 1
    if keep and state.kept_mean is not None and state.kept_scatter is not None:
        state.kept_mean[reps] = mean
        state.kept_scatter[reps] = scatter

    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    eigenvalues = np.clip(eigenvalues, 0.0, None)  # rounding can leave tiny negative ones
    state.model_mean[reps] = mean
    scale = np.sqrt(config.lam * eigenvalues)
    state.model_root[reps] = (eigenvectors * scale[:, None, :]) @ eigenvectors.transpose(0, 2, 1)

    mean_sq_error = np.einsum("ri,ri->r", mean, mean)
    cov_trace = np.trace(cov, axis1=1, axis2=2)
    # W2^2 between N(mu, Sigma) and N(0, I): ||mu||^2 + sum_i (sqrt(e_i) - 1)^2.
    w2_sq = mean_sq_error + np.sum((np.sqrt(eigenvalues) - 1.0) ** 2, axis=1)
    return np.stack([mean_sq_error, cov_trace, w2_sq])


def simulate(
    config: SimulationConfig, *, max_chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> SimulationResult:
    """Run the Gaussian self-consuming loop `config` describes, vectorised over repetitions.

    Args:
        config: the loop, sizes, lambda, fit, mode and seed.
        max_chunk_bytes: about how many bytes of samples to hold at once; repetitions are
            processed in chunks that fit. The result does not depend on it.

    Returns:
        A :class:`SimulationResult` with one row per generation, 0 to ``config.generations``.

    Raises:
        InputError: the fitted covariance overflowed (lambda > 1 over many generations).

    >>> rows = simulate(SimulationConfig(dim=1, reps=100, generations=2)).rows
    >>> rows[0]["cov_trace_mean"], rows[0]["w2_sq_mean"]
    (1.0, 0.0)
    """
    reps, dim = config.reps, config.dim
    real_seed, synthetic_seed = np.random.SeedSequence(config.seed).spawn(2)
    rngs = _Streams(
        real=np.random.Generator(np.random.PCG64(real_seed)),
        synthetic=np.random.Generator(np.random.PCG64(synthetic_seed)),
    )
    state = _State.start(config)
    chunk = max(1, min(reps, max_chunk_bytes // _sample_bytes_per_rep(config)))

    zeros = np.zeros(reps)
    rows = [_row(0, None, zeros, np.full(reps, float(dim)), zeros)]
    # lam > 1 over many generations overflows; _fit_chunk reports it as a non-finite fit.
    with np.errstate(over="ignore", invalid="ignore"):
        for generation in range(1, config.generations + 1):
            metrics = np.empty((3, reps))
            for start in range(0, reps, chunk):
                chunk_slice = slice(start, min(reps, start + chunk))
                metrics[:, chunk_slice] = _fit_chunk(config, generation, rngs, state, chunk_slice)
            if config.mode == "accumulate" or generation == 1:
                state.kept_count = config.training_samples(generation)
            rows.append(_row(generation, config.training_samples(generation), *metrics))
    return SimulationResult(config, rows)


def compare_loops(base_config: SimulationConfig) -> list[SimulationResult]:
    """Run the three loops with every other parameter of `base_config` (its loop is ignored).

    The loops share their random numbers (generation 1 is identical in all three), so their
    differences are not Monte Carlo noise between runs.

    >>> [r.config.loop for r in compare_loops(SimulationConfig(generations=2, reps=50))]
    ['fully-synthetic', 'augmentation', 'fresh']
    """
    return [simulate(dataclasses.replace(base_config, loop=loop)) for loop in LOOPS]  # type: ignore[arg-type]


def check_plot_path(path: str) -> str:
    """The image format of `path` (``png`` or ``svg``, by suffix); anything else is an InputError."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in ("png", "svg"):
        raise InputError(
            f"`{path}` is not a .png or .svg file name", "name the plot e.g. `--plot collapse.png`"
        )
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise InputError(
            f"`--plot {path}`: the directory `{parent}` does not exist",
            "create it first, or name a file in an existing directory",
        )
    return suffix


def plot_simulation(
    results: Sequence[SimulationResult],
    path: str,
    *,
    colours: Mapping[str, str] | None = None,
) -> None:
    """Plot E||mu_k||^2 (log scale), E tr Sigma_k and E W2^2 against the generation, one line per
    result (labelled by its loop and mode) with a band from the 5 % to the 95 % quantile, and
    write it to `path` as PNG or SVG (by suffix). `colours` gives a loop
    (``"fully-synthetic"``, …) its colour (default: matplotlib's cycle).

    >>> plot_simulation(compare_loops(SimulationConfig(reps=200)), "loops.svg")  # doctest: +SKIP
    """
    image_format = check_plot_path(path)
    if not results:
        raise InputError("there are no simulation results to plot", "pass at least one result")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 3)
    panels = (
        ("mean_sq_error", "E‖μₖ‖²  (squared error of the mean)", True),
        ("cov_trace", f"E tr Σₖ  (truth: D = {results[0].config.dim})", False),
        ("w2_sq", "E W₂²(N(μₖ, Σₖ), N(0, I))", False),
    )
    for axis, (metric, title, log_scale) in zip(axes, panels, strict=True):
        for result in results:
            # Generation 0 has no error; a log axis cannot show it.
            rows = result.rows[1:] if log_scale else result.rows
            generations = [row["generation"] for row in rows]
            (line,) = axis.plot(
                generations,
                [row[f"{metric}_mean"] for row in rows],
                label=result.config.label,
                color=(colours or {}).get(result.config.loop),
            )
            axis.fill_between(
                generations,
                [row[f"{metric}_q05"] for row in rows],
                [row[f"{metric}_q95"] for row in rows],
                color=line.get_color(),
                alpha=0.15,
                linewidth=0,
            )
        if metric == "cov_trace":
            axis.axhline(results[0].config.dim, color="grey", linestyle=":", linewidth=1)
        if log_scale:
            axis.set_yscale("log")
        axis.set_title(title)
        axis.set_xlabel("generation k")
    axes[0].legend(title="mean, 5–95 % band", fontsize="small")
    config = results[0].config
    figure.suptitle(
        f"Gaussian self-consuming loop: dim {config.dim}, {config.n_real:,} real, "
        f"{config.n_synthetic:,} synthetic, λ {config.lam:g}, {config.fit} fit, "
        f"{config.reps:,} repetitions"
    )
    figure.savefig(path, format=image_format)
