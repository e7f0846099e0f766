"""Self-contained HTML pages (report.html, the sweep's summary.html): templates, inlined plotly.js, packed data.

A page opens from ``file://`` with no network: everything it needs is inside it. Three things
make that fit in a few megabytes (the default run's report.html stays under 5 MB):

- **plotly.js**, the charting library plotly's Python package ships (``plotly.offline.get_plotlyjs``),
  inlined gzip-compressed and base64-encoded (4.8 MB raw, 2.0 MB so; older plotly bundles are still
  3.5 MB raw, which would leave too little room for the per-token scores). The page inflates it with
  the browser's own ``DecompressionStream`` and runs it before drawing.
- **numeric arrays** (:func:`pack_array`): little-endian bytes, split into byte planes (all first
  bytes, then all second bytes, ...: the exponents compress well apart from the mantissas),
  gzip-compressed, base64-encoded; the page's ``unpack`` reverses it into a typed array.
- **JSON** (:func:`pack_json`), e.g. the query texts, gzip-compressed the same way.

The templates are Jinja files under ``templates/`` (``base.html.j2`` holds the styles and the
loader every page shares); :func:`render` fills one, autoescaped.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np

from .palette import COLORS, FAMILY_COLORS

__all__ = ["DTYPES", "figure_json", "pack_array", "pack_json", "plotly_bundle", "render", "script_json"]

TEMPLATES = Path(__file__).parent / "templates"
# numpy dtype -> the name the page's unpack() reads
DTYPES = {"float16": "f2", "float32": "f4", "int32": "i4", "uint8": "u1"}


def _compress(raw: bytes) -> str:
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")


def pack_array(values: Any, dtype: str = "float32") -> dict[str, Any]:
    """A numeric array as the page's packed form: ``{"dtype", "shape", "data"}``.

    ``dtype`` is one of :data:`DTYPES`; bools are packed as ``uint8``. NaN stays NaN.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}; got {dtype!r}.")
    arr = np.ascontiguousarray(np.asarray(values).astype(np.dtype(dtype).newbyteorder("<")))
    planes = arr.view(np.uint8).reshape(-1, arr.itemsize).T.tobytes() if arr.size else b""
    return {"dtype": DTYPES[dtype], "shape": list(arr.shape), "data": _compress(planes)}


def pack_json(value: Any) -> dict[str, Any]:
    """A JSON value as the page's packed form: ``{"json": true, "data"}``."""
    return {"json": True, "data": _compress(json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"))}


@functools.cache
def plotly_bundle() -> str:
    """plotly.js as shipped by the installed plotly package, gzip-compressed and base64-encoded."""
    from plotly.offline import get_plotlyjs

    return _compress(get_plotlyjs().encode("utf-8"))


def figure_json(figure: Any) -> Any:
    """A plotly figure as the plain JSON ``{"data", "layout"}`` the page passes to ``Plotly.newPlot``."""
    import plotly.io

    return json.loads(plotly.io.to_json(figure, validate=False, pretty=False))


def script_json(value: Any) -> str:
    """JSON safe inside a ``<script type="application/json">`` element (no ``</script>`` can close it early)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@functools.cache
def _environment(extra: tuple[str, ...]):
    import jinja2

    loader = jinja2.FileSystemLoader([str(TEMPLATES), *extra])
    env = jinja2.Environment(loader=loader, autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["script_json"] = script_json
    return env


def render(template: str, *, templates: Path | None = None, **context: Any) -> str:
    """Fill ``template`` (from this package's ``templates/``, or first from ``templates``) with ``context``.

    Every page gets ``plotly_js`` (the packed bundle) and ``palette`` (:mod:`.palette`'s colours) besides ``context``.
    """
    env = _environment((str(templates),) if templates else ())
    palette = {**COLORS, "family": list(FAMILY_COLORS)}
    return env.get_template(template).render(plotly_js=plotly_bundle(), palette=palette, **context)
