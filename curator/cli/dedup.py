"""`curator dedup`: near-duplicate clusters."""

from __future__ import annotations

import click

from curator.cli.app import cli
from curator.cli.options import (
    engine_for,
    engine_options,
    json_option,
    lock_timeout_option,
    open_store_at,
    progress_option,
    store_option,
)


@cli.command("dedup")
@store_option
@click.option("--text/--no-text", default=True, help="Cluster text samples.")
@click.option("--images/--no-images", default=True, help="Cluster image samples.")
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.8,
    help="Text: estimated Jaccard similarity of shingle sets at or above which two are copies.",
)
@click.option(
    "--num-perm",
    type=click.IntRange(16, 1024),
    default=128,
    help="Text: MinHash permutations.",
)
@click.option(
    "--shingle",
    "shingling",
    default="word:5",
    metavar="word:K|char:N",
    help="Text: shingles of K words or N characters of the normalised text.",
)
@click.option(
    "--hamming",
    type=click.IntRange(0, 31),
    default=8,
    help="Images: hashes within this many differing bits (of the kind's 64; colorhash 42; "
    "crop-resistant: of any segment pair) are copies.",
)
@click.option(
    "--image-hash",
    "image_hash",
    type=click.Choice(["phash", "dhash", "whash", "average", "colorhash", "crop-resistant"]),
    default="phash",
    show_default=True,
    help="Images: the hash kind (imagehash's; pHash by curator's identical, faster code). Each "
    "kind keeps its own index and its own clusters.",
)
@engine_options
@lock_timeout_option
@progress_option
@json_option("Print the summary as JSON.")
def dedup_command(
    store_path: str | None,
    text: bool,
    images: bool,
    threshold: float,
    num_perm: int,
    shingling: str,
    hamming: int,
    image_hash: str,
    engine: str,
    ray_address: str | None,
    lock_timeout: float | None,
    progress: bool,
    as_json: bool,
) -> None:
    """Find near-duplicate clusters and record them in the catalog table `duplicates`.

    Text: MinHash signatures of shingles, LSH bands chosen for the threshold, candidate pairs
    verified by estimated Jaccard, clusters by connected components. Images: perceptual hashes
    (--image-hash: phash, dhash, whash, average, colorhash, or crop-resistant, where two images
    are copies when any of their segments' hashes are close), split into hamming + 1 bands,
    verified by Hamming distance. Signatures are kept under STORE/indexes/, one index per kind,
    so a later run only computes new samples; each image kind's clusters replace only that
    kind's earlier ones. In each cluster one sample is
    kept: real before synthetic, lower generation, higher confidence, earlier, smaller id.
    A policy with `dedup.near = true` then assembles from the kept samples only. The clusters
    are in SQL: curator sql "SELECT cluster_id, sample_id, kept FROM duplicates ORDER BY 1".

    \b
    Examples:
      curator dedup
      curator dedup --no-images --threshold 0.7 --shingle word:3
      curator dedup --no-text --image-hash dhash --hamming 6
    """
    from curator.core.output import to_json

    store = open_store_at(store_path)
    with engine_for(engine, ray_address) as runner:
        result = store.dedup(
            text=text,
            images=images,
            threshold=threshold,
            num_perm=num_perm,
            shingling=shingling,
            hamming=hamming,
            image_hash=image_hash,
            lock_timeout=lock_timeout,
            progress=progress,
            engine=runner,
        )
    if as_json:
        click.echo(to_json(result.to_json()))
        return
    lines = [f"dedup {result.run_id}: {result.seconds:.2f}s"]
    for m in result.methods:
        p = m.parameters
        if m.method == "minhash":
            lines.append(
                f"  text (MinHash, {p['shingling']}, {p['num_perm']} permutations, threshold {p['threshold']:g}): "
                f"LSH {p['bands']} bands × {p['rows']} rows; expected false positives {p['false_positive']:.3f}, "
                f"false negatives {p['false_negative']:.3f}"
            )
        else:
            kind = "pHash" if p["kind"] == "phash" else p["kind"]
            bits = f"{p['bits']} bits" + (" per segment" if p["kind"] == "crop-resistant" else "")
            lines.append(
                f"  images ({kind}, {bits}): Hamming distance ≤ {p['hamming']} ({p['bands']} bands)"
            )
        lines.append(
            f"    {m.contents:,} distinct contents ({m.computed:,} newly hashed), "
            f"{m.candidate_pairs:,} candidate pairs, {m.verified_pairs:,} verified; "
            f"{m.clusters:,} clusters, {m.duplicate_samples:,} samples not kept"
        )
    click.echo("\n".join(lines))
