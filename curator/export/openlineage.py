"""A set as an OpenLineage run event (OpenLineage spec 2-0-2, made with openlineage-python): the
assembly that made it, as one ``COMPLETE`` run.

- **job**: namespace ``curator``, name ``assemble.<lineage>``; **run**: a UUID derived from the
  manifest id (the same manifest always gives the same run id), at the manifest's time.
- **inputs**: the store's shards that the assembly drew from (with their row counts).
- **output**: the set (its directory or URL), with the ``curator_provenance`` dataset facet
  (:class:`CuratorProvenanceDatasetFacet`: manifest, policy, composition, sources, models,
  constraint report), the standard ``outputStatistics`` facet, and one standard subset facet
  (``OutputSubsetOutputDatasetFacet``) per mix component, keyed ``subset_<component>``
  (``subset_fresh_real``, ``subset_used_real``, ``subset_synthetic_gen_<k>``,
  ``subset_unknown``): a condition on the set's ``origin`` and ``generation`` columns (for real
  rows also on ``category``, the pool column of the manifest's selection file, which tells fresh
  from used), with the component's ``rows``, ``units`` and ``share``.

:func:`post_openlineage` sends the event with the client's HTTP transport.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

from curator.core.errors import CuratorError
from curator.core.remote import is_url
from curator.core.version import __version__
from curator.export.facts import Component, SetFacts, gather, iso, require, write_text

require("openlineage.client", "openlineage-python", "openlineage")

import attr  # noqa: E402  (installed with openlineage-python)
from openlineage.client.generated.base import DatasetFacet  # noqa: E402

if TYPE_CHECKING:
    from openlineage.client.event_v2 import RunEvent

    from curator.assembly.manifest import Manifest
    from curator.store.base import StoreBase as Store

#: The `producer` of curator's events and facets.
PRODUCER = f"https://curator.dev/curator/{__version__}"
JOB_NAMESPACE = "curator"


@attr.define
class CuratorProvenanceDatasetFacet(DatasetFacet):
    """What curator knows of an assembled set: its manifest, the mix by component (rows, units
    and share in the policy's unit), its sources with collection times, the models behind its
    synthetic rows, the policy and the constraint report."""

    manifestId: str = attr.field(kw_only=True)
    lineage: str = attr.field(kw_only=True)
    sequence: int = attr.field(kw_only=True)
    unit: str = attr.field(kw_only=True)
    rows: int = attr.field(kw_only=True)
    units: int = attr.field(kw_only=True)
    composition: list[dict[str, Any]] = attr.field(kw_only=True)
    sources: list[dict[str, Any]] = attr.field(kw_only=True)
    models: list[dict[str, Any]] = attr.field(kw_only=True)
    policy: dict[str, Any] = attr.field(kw_only=True)
    constraints: list[dict[str, Any]] = attr.field(kw_only=True)

    @staticmethod
    def _get_schema() -> str:
        return "https://curator.dev/schemas/CuratorProvenanceDatasetFacet.json"


def to_openlineage(
    manifest: Manifest, *, store: Store | None = None, facts: SetFacts | None = None
) -> RunEvent:
    """The OpenLineage ``COMPLETE`` run event of the assembly that made the set of `manifest`.

    Serialise it with ``openlineage.client.serde.Serde.to_json(event)``.

    >>> event = to_openlineage(Manifest.load("train/gen-2"))  # doctest: +SKIP
    >>> event.eventType.value  # doctest: +SKIP
    'COMPLETE'
    """
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import output_statistics_output_dataset

    facts = facts or gather(manifest, store=store)
    data = manifest.data
    root = str(data["store"]["root"])
    inputs = [
        InputDataset(
            *_dataset_name(os.path.join(root, shard["path"])),
            facets={},
            inputFacets={},
        )
        for shard in data["store"]["shards"]
    ]
    output_facets: dict[str, Any] = {
        "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=facts.rows,
            size=sum(int(o["bytes"]) for o in data["outputs"]),
            fileCount=len(data["outputs"]),
            producer=PRODUCER,
        )
    }
    for component in facts.components:
        output_facets[f"subset_{component.key}"] = _subset(component, facts)
    output = OutputDataset(
        *_dataset_name(str(data["out_dir"])),
        facets={"curator_provenance": _provenance_facet(facts)},
        outputFacets=output_facets,
    )
    return RunEvent(
        eventType=RunState.COMPLETE,
        eventTime=str(data["created_at"]),
        run=Run(
            runId=str(uuid.uuid5(uuid.NAMESPACE_URL, f"curator:manifest:{manifest.manifest_id}"))
        ),
        job=Job(namespace=JOB_NAMESPACE, name=f"assemble.{manifest.lineage}"),
        inputs=inputs,
        outputs=[output],
        producer=PRODUCER,
    )


def openlineage_json(event: RunEvent) -> str:
    """The event as OpenLineage JSON (the client's own serialisation, keys sorted)."""
    from openlineage.client.serde import Serde

    return Serde.to_json(event)


def write_openlineage(
    manifest: Manifest, path: str | os.PathLike[str], *, store: Store | None = None
) -> RunEvent:
    """Write the run event of the set of `manifest` to `path` as JSON (see
    :func:`to_openlineage`) and return it."""
    event = to_openlineage(manifest, store=store)
    write_text(path, openlineage_json(event) + "\n")
    return event


def post_openlineage(event: RunEvent, url: str, *, timeout: float = 10.0) -> None:
    """Send `event` to the OpenLineage HTTP endpoint at `url` (``http://host:5000``; the client
    posts to ``<url>/api/v1/lineage``) with openlineage-python's HTTP transport.

    Raises:
        CuratorError: the URL is not valid, or the endpoint cannot be reached or refuses the event.
    """
    import requests
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    try:
        transport = HttpTransport(HttpConfig(url=url, timeout=timeout, retry={"total": 0}))
    except ValueError as exc:
        raise CuratorError(
            f"`{url}` is not an OpenLineage endpoint URL: {exc}",
            "pass --url http://HOST:PORT (the event goes to /api/v1/lineage there)",
        ) from exc
    try:
        transport.emit(event)
    except requests.RequestException as exc:
        raise CuratorError(
            f"cannot send the OpenLineage event to `{url}`: {exc}",
            "check that the endpoint is running and reachable; the event file was written",
        ) from exc
    finally:
        transport.close()


def _dataset_name(location: str) -> tuple[str, str]:
    """The OpenLineage namespace and name of a file or directory: ``("file", "/abs/path")``
    locally, ``("s3://bucket", "key/path")`` on object storage."""
    if is_url(location):
        scheme, rest = location.split("://", 1)
        bucket, _, path = rest.partition("/")
        return f"{scheme}://{bucket}", path or "/"
    return "file", os.path.abspath(location)


def _provenance_facet(facts: SetFacts) -> CuratorProvenanceDatasetFacet:
    data = facts.manifest.data
    return CuratorProvenanceDatasetFacet(
        manifestId=facts.manifest.manifest_id,
        lineage=facts.manifest.lineage,
        sequence=int(data["sequence"]),
        unit=facts.unit,
        rows=facts.rows,
        units=facts.units,
        composition=[
            {
                "component": c.key,
                "pool": c.pool,
                "generation": c.generation,
                "rows": c.rows,
                "units": c.units,
                "share": facts.share(c.units),
            }
            for c in facts.components
        ],
        sources=[
            {
                "name": s.name,
                "origins": list(s.origins),
                "rows": s.rows,
                "units": s.units,
                "collectedFrom": iso(s.collected_from),
                "collectedTo": iso(s.collected_to),
            }
            for s in facts.sources
        ],
        models=[
            {
                "name": m.name,
                "rows": m.rows,
                "generations": list(m.generations),
                "sources": list(m.sources),
                "trainedOn": m.trained_on,
            }
            for m in facts.models
        ],
        policy=facts.policy,
        constraints=facts.constraints,
        producer=PRODUCER,
    )


def _subset(component: Component, facts: SetFacts) -> Any:
    from openlineage.client.facet_v2 import base_subset_dataset as subset

    def equal(column: str, value: str) -> subset.CompareSubsetCondition:
        return subset.CompareSubsetCondition(
            left=subset.FieldBaseCompareExpression(field=column),
            right=subset.LiteralCompareExpression(value=value),
            comparison="EQUAL",
        )

    origin = "real" if component.pool in ("fresh_real", "used_real") else component.pool
    condition: subset.BaseSubsetCondition = equal("origin", origin)
    if component.pool in ("fresh_real", "used_real"):
        condition = subset.BinarySubsetCondition(
            left=condition, right=equal("category", component.pool), operator="AND"
        )
    elif component.pool == "synthetic":
        condition = subset.BinarySubsetCondition(
            left=condition, right=equal("generation", str(component.generation)), operator="AND"
        )
    facet = subset.OutputSubsetOutputDatasetFacet(outputCondition=condition, producer=PRODUCER)
    return facet.with_additional_properties(
        component=component.label,
        rows=component.rows,
        units=component.units,
        unit=facts.unit,
        share=facts.share(component.units),
    )
