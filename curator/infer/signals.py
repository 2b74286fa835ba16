"""Provenance signals that image files carry, strongest first (DESIGN.md):

1. a C2PA manifest (``c2pa-python``, the ``c2pa`` extra): its validation state is recorded; a
   manifest that fails validation (content altered after signing) is evidence of nothing. The
   active manifest's ``c2pa.created`` / ``c2pa.opened`` action gives the digital source type;
   ``parentOf`` ingredients that are themselves C2PA-generated add depth (generation 2, 3, …).
   A signer is trusted only when its certificate chains to a loaded trust anchor; a claim of
   *real* from an untrusted signer ranks and counts as IPTC metadata (anyone can make one), a
   claim of *generated* counts in full. The trust state is in the signal's detail. No remote
   manifest is ever fetched (offline).
2. IPTC ``Iptc4xmpExt:DigitalSourceType`` in XMP (JPEG/WebP ``xmp``, PNG ``XML:com.adobe.xmp``),
   as an attribute, element text or ``rdf:resource``; parsed with defusedxml.
3. generator metadata (PNG text chunks read here, each under MAX_CHUNK_BYTES; a larger one is a
   listed problem): Stable Diffusion WebUI / Fooocus ``parameters``, ComfyUI ``prompt`` /
   ``workflow``, InvokeAI ``invokeai_metadata`` / ``sd-metadata`` / ``Dream``, NovelAI
   ``Software`` / ``Source`` / ``Comment``, EXIF UserComment with WebUI parameters, EXIF
   Software naming a generator.

:func:`read_signals` returns every signal found, each with its evidence code, the origin it
points to, a confidence, and a reason; or the reason nothing could be read.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

#: IPTC digital source types (http://cv.iptc.org/newscodes/digitalsourcetype/) → origin.
SOURCE_TYPES = {
    "trainedalgorithmicmedia": "synthetic",
    "compositewithtrainedalgorithmicmedia": "synthetic",
    "algorithmicallyenhanced": "synthetic",
    "algorithmicmedia": "synthetic",
    "compositesynthetic": "synthetic",
    "digitalcapture": "real",
    "computationalcapture": "real",
    "negativefilm": "real",
    "positivefilm": "real",
    "print": "real",
    "digitalart": "real",
    "humanedits": "real",
    "minorhumanedits": "real",
    "composite": "real",
    "compositecapture": "real",
    "datadrivenmedia": "synthetic",
    "virtualrecording": "synthetic",
}
CONFIDENCE = {"c2pa": 0.99, "iptc": 0.9, "generator-metadata": 0.95}
GENERATOR_SOFTWARE = re.compile(
    r"novelai|stable diffusion|midjourney|dall[-·]?e|comfyui|invokeai|automatic1111|fooocus|"
    r"firefly|imagen|flux|leonardo\.ai",
    re.IGNORECASE,
)
MAX_CHUNK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Signal:
    evidence: str  # c2pa | iptc | generator-metadata
    origin: str  # real | synthetic | unknown (a manifest that proves nothing)
    confidence: float
    reason: str
    detail: dict[str, Any] | None = None
    #: for a C2PA label: the generation its manifest and ingredients give (0 for real)
    generation: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _source_type(value: str) -> str | None:
    key = value.strip().rstrip("/").rsplit("/", 1)[-1].lower()
    return SOURCE_TYPES.get(key)


def c2pa_context(trust_anchors: str | None = None) -> Any:
    """A ``c2pa.Context`` that never fetches a remote manifest and, given PEM `trust_anchors`,
    verifies signers against them (c2pa-python's ``trust.trust_anchors`` setting).

    Raises:
        ImportError: c2pa-python is not installed.
        c2pa.C2paError: the anchors are not certificates c2pa can load.
    """
    import c2pa

    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False}}
    if trust_anchors:
        settings["verify"]["verify_trust"] = True
        settings["trust"] = {"trust_anchors": trust_anchors}
    return c2pa.Context.from_dict(settings)


def _failures(codes: list[str]) -> list[str]:
    """Validation failures that make a manifest evidence of nothing (an untrusted signer is not
    one: it is recorded as the trust state)."""
    return [c for c in codes if not c.endswith("untrusted")]


def _source_types(manifest: dict[str, Any]) -> list[str]:
    types = []
    for assertion in manifest.get("assertions", []):
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            for action in assertion.get("data", {}).get("actions", []):
                if action.get("digitalSourceType"):
                    types.append(str(action["digitalSourceType"]))
    return types


def _origin_of(types: list[str]) -> str | None:
    origins = {o for o in (_source_type(t) for t in types) if o}
    if "synthetic" in origins:
        return "synthetic"
    return "real" if origins == {"real"} else None


def _ingredient_failures(ingredient: dict[str, Any]) -> list[str]:
    results = ingredient.get("validation_results", {}).get("activeManifest", {})
    codes = [str(s.get("code")) for s in results.get("failure", []) if s.get("code")]
    codes += [str(s.get("code")) for s in ingredient.get("validation_status", []) if s.get("code")]
    return _failures(codes)


def _generation(manifests: dict[str, Any], label: str, seen: frozenset[str] = frozenset()) -> int:
    """The generation of the content a manifest describes: 1 + the deepest generation of its
    ``parentOf`` ingredients when its own actions say generated; its parent's generation when
    they say nothing (an edit); 0 for a real capture. An ingredient whose manifest fails
    validation, or a cycle, adds nothing; capped at MAX_GENERATION."""
    from curator.core.schema import MAX_GENERATION

    manifest = manifests.get(label)
    if not isinstance(manifest, dict) or label in seen:
        return 0
    origin = _origin_of(_source_types(manifest))
    if origin == "real":
        return 0
    parents = [
        ingredient
        for ingredient in manifest.get("ingredients", [])
        if ingredient.get("relationship") == "parentOf"
        and ingredient.get("active_manifest")
        and not _ingredient_failures(ingredient)
    ]
    deepest = max(
        (_generation(manifests, str(p["active_manifest"]), seen | {label}) for p in parents),
        default=0,
    )
    return min(deepest + (1 if origin == "synthetic" else 0), MAX_GENERATION)


def _c2pa(data: bytes, mime: str, trust_anchors: str | None = None) -> list[Signal]:
    try:
        import c2pa
    except ImportError:
        return []
    try:
        context = c2pa_context(trust_anchors)
        reader = c2pa.Reader(mime, io.BytesIO(data), context=context)
        store = json.loads(reader.json())
    except Exception as exc:
        text = str(exc)
        if "ManifestNotFound" in type(exc).__name__ or "no JUMBF" in text:
            return []
        reason = text.split("\n")[0][:200]
        return [Signal("c2pa", "unknown", 0.0, f"C2PA manifest could not be read: {reason}")]
    state = store.get("validation_state", "Unknown")
    codes = [s.get("code") for s in store.get("validation_status", []) if s.get("code")]
    failures = _failures(codes)
    manifests = store.get("manifests", {})
    active_label = store.get("active_manifest", "")
    active = manifests.get(active_label, {})
    # Only a signer whose chain reaches a loaded trust anchor is trusted ("Trusted").
    trust = "trusted" if state == "Trusted" else "untrusted"
    detail: dict[str, Any] = {
        "validation_state": state,
        "validation_codes": codes,
        "trust": trust,
        "trust_anchors_loaded": bool(trust_anchors),
    }
    if state == "Invalid" or failures:
        return [
            Signal(
                "c2pa",
                "unknown",
                0.0,
                f"C2PA manifest fails validation ({', '.join(failures) or state}): evidence of nothing",
                detail,
            )
        ]
    types = _source_types(active)
    ingredients = len(active.get("ingredients", []))
    detail.update({"digital_source_types": types, "ingredients": ingredients})
    origin = _origin_of(types)
    if origin is None:
        return [
            Signal(
                "c2pa",
                "unknown",
                0.0,
                f"C2PA manifest ({state}) names no digital source type"
                + (f"; {ingredients} ingredient(s)" if ingredients else ""),
                detail,
            )
        ]
    named = ", ".join(t.strip().rsplit("/", 1)[-1] for t in types)
    reason = f"C2PA manifest ({state}, {trust} signer): {named}"
    confidence = CONFIDENCE["c2pa"]
    generation = 0
    if origin == "synthetic":
        # A claim of being generated costs its signer nothing to make falsely: it counts in full.
        generation = _generation(manifests, active_label)
        if generation > 1:
            reason += f"; generation {generation} from C2PA-generated parent ingredients"
    elif trust != "trusted":
        # Anyone can sign "digitalCapture" with a self-made certificate: without a trusted
        # signer the claim is worth what unsigned IPTC metadata is.
        confidence = CONFIDENCE["iptc"]
        reason += (
            "; a claim of real from an untrusted signer counts as unsigned metadata "
            "(load trust anchors with --c2pa-trust-anchors)"
        )
    detail["generation"] = generation
    return [Signal("c2pa", origin, confidence, reason, detail, generation)]


def rank(signal: Signal) -> int:
    """How strong a signal's kind of evidence is, strongest 0 (DESIGN.md's order); a claim of
    real from an untrusted C2PA signer ranks with IPTC metadata, which anyone can write too."""
    order = {"c2pa": 0, "iptc": 1, "generator-metadata": 2}
    if (
        signal.evidence == "c2pa"
        and signal.origin == "real"
        and (signal.detail or {}).get("trust") != "trusted"
    ):
        return order["iptc"]
    return order[signal.evidence]


_XMP_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
_RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


def _xmp_packets(image: Any) -> list[bytes]:
    packets = []
    info = image.info or {}
    for key in ("xmp", "XML:com.adobe.xmp"):
        value = info.get(key)
        if isinstance(value, str):
            value = value.encode("utf-8", "replace")
        if isinstance(value, bytes | bytearray) and value and bytes(value) not in packets:
            packets.append(bytes(value))  # Pillow may give one packet under both keys
    return packets


def _iptc(image: Any) -> list[Signal]:
    from defusedxml import ElementTree

    signals = []
    for packet in _xmp_packets(image):
        try:
            root = ElementTree.fromstring(packet.strip(b"\x00").strip())
        except Exception as exc:
            signals.append(Signal("iptc", "unknown", 0.0, f"malformed XMP: {str(exc)[:120]}"))
            continue
        values = []
        attribute = f"{{{_XMP_NS}}}DigitalSourceType"
        for element in root.iter():
            if attribute in element.attrib:
                values.append(element.attrib[attribute])
            if element.tag == attribute:
                if element.text and element.text.strip():
                    values.append(element.text.strip())
                resource = element.attrib.get(f"{{{_RDF_NS}}}resource")
                if resource:
                    values.append(resource)
        for value in values:
            origin = _source_type(value)
            signals.append(
                Signal(
                    "iptc",
                    origin or "unknown",
                    CONFIDENCE["iptc"] if origin else 0.0,
                    f"XMP Iptc4xmpExt:DigitalSourceType {value.rsplit('/', 1)[-1]}"
                    + ("" if origin else " (not a known type)"),
                    {"digital_source_type": value},
                )
            )
    return signals


def _generator(image: Any) -> list[Signal]:
    info = image.info or {}
    found: list[str] = []

    def text(key: str) -> str:
        value = info.get(key)
        if isinstance(value, bytes):
            value = value[:MAX_CHUNK_BYTES].decode("utf-8", "replace")
        return value[:MAX_CHUNK_BYTES] if isinstance(value, str) else ""

    parameters = text("parameters")
    if parameters and (
        "Steps:" in parameters or "Sampler" in parameters or parameters.lstrip().startswith("{")
    ):
        found.append(
            "Fooocus `parameters`"
            if "fooocus" in parameters.lower() or "fooocus_scheme" in info
            else "Stable Diffusion WebUI `parameters`"
        )
    for key, name in (("prompt", "ComfyUI `prompt`"), ("workflow", "ComfyUI `workflow`")):
        value = text(key)
        if value.lstrip().startswith("{"):
            found.append(name)
    for key in ("invokeai_metadata", "sd-metadata", "Dream", "invokeai_graph"):
        if text(key):
            found.append(f"InvokeAI `{key}`")
    software = text("Software")
    if software and GENERATOR_SOFTWARE.search(software):
        found.append(f"`Software` {software[:40]!r}")
    source = text("Source")
    if source and GENERATOR_SOFTWARE.search(source):
        found.append(f"`Source` {source[:40]!r}")
    comment = text("Comment")
    if comment.lstrip().startswith("{") and ('"steps"' in comment or '"sampler"' in comment):
        found.append("NovelAI `Comment`")
    try:
        exif = image.getexif()
    except Exception:
        exif = {}
    exif_software = str(exif.get(0x0131, "") or "")
    if exif_software and GENERATOR_SOFTWARE.search(exif_software):
        found.append(f"EXIF Software {exif_software[:40]!r}")
    try:
        user_comment = exif.get_ifd(0x8769).get(0x9286) if hasattr(exif, "get_ifd") else None
    except Exception:
        user_comment = None
    if isinstance(user_comment, bytes):
        decoded = user_comment[8:].decode(
            "utf-16-be" if user_comment[:8] == b"UNICODE\x00" else "latin-1", "replace"
        )
        if "Steps:" in decoded or "Steps:" in decoded.replace("\x00", ""):
            found.append("EXIF UserComment with Stable Diffusion WebUI parameters")
    if not found:
        return []
    return [
        Signal(
            "generator-metadata",
            "synthetic",
            CONFIDENCE["generator-metadata"],
            "generator metadata: " + ", ".join(dict.fromkeys(found)),
            {"found": list(dict.fromkeys(found))},
        )
    ]


def read_signals(
    data: bytes, *, c2pa_trust_anchors: str | None = None
) -> tuple[list[Signal], str | None]:
    """Every provenance signal in encoded image bytes, strongest first, and the reason the file
    could not be read at all (``None`` when it could).

    `c2pa_trust_anchors` is PEM text: C2PA signers whose certificates chain to one of them are
    trusted; without it no signer is, and a C2PA claim of *real* counts as IPTC metadata does.
    """
    from PIL import Image

    from curator.ingest.readers.images import png_text, without_png_text

    try:
        # Pillow would inflate every PNG text chunk under its 1 MB limit and refuse the file
        # past it; the text is read here instead, each chunk under MAX_CHUNK_BYTES.
        image = Image.open(io.BytesIO(without_png_text(data)))
        mime = Image.MIME.get(image.format or "", "application/octet-stream")
    except Exception as exc:
        return [], f"not a readable image: {str(exc)[:160]}"
    signals: list[Signal] = []
    signals += _c2pa(data, mime, c2pa_trust_anchors)
    if image.format == "PNG":
        texts, oversized = png_text(data, MAX_CHUNK_BYTES)
        image.info.update(texts)
        for reason in oversized:
            evidence = "iptc" if "`XML:com.adobe.xmp`" in reason else "generator-metadata"
            signals.append(Signal(evidence, "unknown", 0.0, reason))
    try:
        signals += _iptc(image)
        signals += _generator(image)
    except Exception as exc:
        return signals, f"metadata could not be read: {str(exc)[:160]}"
    # a claim of generated wins a tie with a claim of real: it is the one nobody forges to gain
    signals.sort(key=lambda s: (rank(s), -s.confidence, s.origin != "synthetic"))
    return signals, None


def strongest(signals: list[Signal]) -> Signal | None:
    """The strongest signal that points to an origin (a manifest proving nothing is skipped)."""
    for signal in signals:
        if signal.origin != "unknown" and signal.confidence > 0:
            return signal
    return None
