{% raw %}
// Shared by every hf-metaopt page: unpacks the page's data (hf_metaopt/analysis/html_page.py packs it),
// starts the inlined plotly.js and draws the charts. No request leaves the page.
"use strict";
const HFM = (() => {
  function showError(err) {
    const box = document.getElementById("page-error");
    box.textContent = "This page could not be drawn: " + (err && err.message ? err.message : err);
    box.style.display = "block";
    document.body.dataset.error = String(err && err.message ? err.message : err);
    console.error(err);
  }

  async function inflate(b64) {
    const binary = atob(b64);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  function half(bits) {  // IEEE 754 binary16 -> number (for browsers without Float16Array)
    const sign = bits & 0x8000 ? -1 : 1, exp = (bits >> 10) & 0x1f, frac = bits & 0x3ff;
    if (exp === 0) return sign * Math.pow(2, -14) * (frac / 1024);
    if (exp === 31) return frac ? NaN : sign * Infinity;
    return sign * Math.pow(2, exp - 15) * (1 + frac / 1024);
  }

  const SIZES = { f2: 2, f4: 4, i4: 4, u1: 1 };

  // A packed array: byte planes (all first bytes, then all second bytes, ...) of little-endian values.
  async function unpack(entry) {
    const planes = await inflate(entry.data);
    if (entry.json) return JSON.parse(new TextDecoder().decode(planes));
    const size = SIZES[entry.dtype], n = planes.length / size;
    const bytes = new Uint8Array(planes.length);
    for (let b = 0; b < size; b++) for (let i = 0; i < n; i++) bytes[i * size + b] = planes[b * n + i];
    const view = new DataView(bytes.buffer);
    let values;
    if (entry.dtype === "f4") values = new Float32Array(bytes.buffer);
    else if (entry.dtype === "i4") values = new Int32Array(bytes.buffer);
    else if (entry.dtype === "u1") values = bytes;
    else {
      values = new Float32Array(n);
      for (let i = 0; i < n; i++) values[i] = half(view.getUint16(2 * i, true));
    }
    return { shape: entry.shape, values: values };
  }

  async function unpackAll(obj) {  // every packed entry inside obj, unpacked in place
    if (obj === null || typeof obj !== "object") return obj;
    if (typeof obj.data === "string" && (obj.json || obj.dtype)) return unpack(obj);
    const out = Array.isArray(obj) ? [] : {};
    for (const key of Object.keys(obj)) out[key] = await unpackAll(obj[key]);
    return out;
  }

  async function startPlotly() {
    const packed = document.getElementById("plotly-js").textContent.trim();
    const code = new TextDecoder().decode(await inflate(packed));
    const script = document.createElement("script");
    script.textContent = code;
    document.head.appendChild(script);  // runs at once: window.Plotly
  }

  const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["sendDataToCloud"] };

  function draw(id, figure) {
    return Plotly.newPlot(document.getElementById(id), figure.data, figure.layout, CONFIG);
  }

  function fmt(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "n/a";
    return Number(value).toFixed(digits === undefined ? 3 : digits);
  }

  async function start(main) {
    try {
      const data = JSON.parse(document.getElementById("page-data").textContent);
      await startPlotly();
      for (const chart of data.charts || []) await draw(chart.id, chart.figure);
      if (main) await main(data);
      document.body.dataset.ready = "1";
    } catch (err) {
      showError(err);
    }
  }

  // hf_metaopt/analysis/palette.py's colours: the same setting has the same colour in every chart.
  const palette = JSON.parse(document.getElementById("palette").textContent);

  function rgb(hex) {
    return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)).join(",");
  }

  return { unpack, unpackAll, draw, fmt, start, showError, config: CONFIG, palette, rgb };
})();
{% endraw %}
