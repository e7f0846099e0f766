{% raw %}
// report.html's per-query explorer: plain DOM code over the arrays hf_metaopt/analysis/report_explorer.py packs.
"use strict";
const METRIC_NAMES = {
  kendall_token: "Kendall's tau, token level", kendall_example: "Kendall's tau, example level",
  recall_token: "top-k recall, tokens", recall_example: "top-k recall, demonstrations",
  simaou: "SimAOU", simaou_unnormalized: "SimAOU unnormalised", simam_before: "SimAM before finetuning",
  simam_after: "SimAM after finetuning", simam_delta: "SimAM delta",
  kl_icl_ft: "KL(ICL ‖ FT)", kl_icl_zsl: "KL(ICL ‖ ZSL)", kl_ft_zsl: "KL(FT ‖ ZSL)",
  tv_icl_ft: "TV(ICL, FT)", tv_icl_zsl: "TV(ICL, ZSL)", tv_ft_zsl: "TV(FT, ZSL)",
};
const AGREEMENT = ["kendall_token", "kendall_example", "recall_token", "recall_example"];
const ROUTES = [["zsl", "ZSL"], ["icl", "ICL"], ["ft", "FT"]];

async function explorerMain(page) {
  if (!page.explorer) return;
  const ex = await HFM.unpackAll(page.explorer);
  const $ = (id) => document.getElementById(id);
  const Q = ex.n_queries, L = ex.layers.length, words = ex.label_words, texts = ex.texts;
  const ins = ex.inspect || null;
  const T = ins ? ins.icl_mass.shape[2] : 0;
  const H = ins && ins.icl_mass_heads ? ins.icl_mass_heads.shape[2] : 0;
  const rowOf = new Map();
  if (ins) ins.query_index.values.forEach((q, i) => rowOf.set(q, i));
  const names = Object.keys(ex.metrics).sort((a, b) => {
    const ia = AGREEMENT.indexOf(a), ib = AGREEMENT.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  const label = (name) => (METRIC_NAMES[name] || name).replace("top-k", ex.top_k && name.startsWith("recall_")
    ? "top-" + (name === "recall_token" ? ex.top_k.token_level : ex.top_k.example_level) : "top-k");
  const metric = (name, q, l) => ex.metrics[name].values[q * L + l];
  const random = (name, q, l) => (ex.random[name] ? ex.random[name].values[q * L + l] : NaN);
  const meanOver = (name, q) => {
    let s = 0, n = 0;
    for (let l = 0; l < L; l++) { const v = metric(name, q, l); if (!Number.isNaN(v)) { s += v; n++; } }
    return n ? s / n : NaN;
  };
  const word = (i) => (words[i] !== undefined ? JSON.stringify(words[i]) : String(i));
  const state = { query: ins ? ins.query_index.values[0] : 0, layer: Math.floor(L / 2), head: "sum", sort: "", desc: true };

  // -- controls
  for (const name of names) $("sort-select").add(new Option(label(name) + " at this layer", name));
  ex.layers.forEach((layer, l) => $("layer-select").add(new Option("layer " + layer, String(l))));
  for (let h = 0; h < H; h++) $("head-select").add(new Option("head " + h, String(h)));
  if (!H && ex.heads) {
    const off = new Option("per head: not in this page", "none");
    off.disabled = true;
    $("head-select").add(off);
  }
  $("layer-select").value = String(state.layer);

  function order() {
    const idx = Array.from({ length: Q }, (_, q) => q);
    if (!state.sort) return idx;
    const key = (q) => metric(state.sort, q, state.layer);
    return idx.sort((a, b) => {
      const va = key(a), vb = key(b);
      if (Number.isNaN(va) || Number.isNaN(vb)) return Number.isNaN(va) - Number.isNaN(vb) || a - b;
      return (state.desc ? vb - va : va - vb) || a - b;
    });
  }

  function mark(route, q) {
    return ex.predictions[route].values[q] === ex.labels.values[q] ? "\u2713" : "\u2717";
  }

  function renderList() {
    const queries = order();
    const select = $("query-select");
    select.innerHTML = "";
    const body = document.querySelector("#query-list tbody");
    body.innerHTML = "";
    $("query-list-metric").textContent = state.sort ? label(state.sort) + ", layer " + ex.layers[state.layer] : "";
    for (const q of queries) {
      const value = state.sort ? " \u00b7 " + HFM.fmt(metric(state.sort, q, state.layer)) : "";
      const tokens = rowOf.has(q) ? " \u00b7 tokens" : "";
      select.add(new Option(`#${q} \u00b7 gold ${word(ex.labels.values[q])} \u00b7 ICL ${mark("icl", q)} FT ${mark("ft", q)}${tokens}${value}`, String(q)));
      const tr = body.insertRow();
      tr.dataset.query = String(q);
      if (q === state.query) tr.className = "current";
      const cells = [String(q), word(ex.labels.values[q]),
        ...ROUTES.map(([r]) => word(ex.predictions[r].values[q]) + " " + mark(r, q)),
        state.sort ? HFM.fmt(metric(state.sort, q, state.layer)) : "", rowOf.has(q) ? "yes" : ""];
      cells.forEach((text, i) => { const td = tr.insertCell(); td.textContent = text; if (i === 0 || i === 5) td.className = "num"; });
      tr.addEventListener("click", () => { state.query = q; renderList(); renderQuery(); });
    }
    select.value = String(state.query);
  }

  function renderQuery() {
    const q = state.query, lp = (r) => ex.logprobs[r].values.slice(q * words.length, (q + 1) * words.length);
    $("query-title").textContent = `Query #${q}: gold label ${word(ex.labels.values[q])}`;
    $("query-text").textContent = (texts.queries || [])[q] || "(text not kept)";
    const body = document.querySelector("#prediction-table tbody");
    body.innerHTML = "";
    for (const [r, name] of ROUTES) {
      const values = lp(r), pred = ex.predictions[r].values[q];
      let runnerUp = -Infinity;
      values.forEach((v, i) => { if (i !== pred) runnerUp = Math.max(runnerUp, v); });
      const tr = body.insertRow();
      tr.dataset.route = r;
      const correct = pred === ex.labels.values[q];
      const cells = [name, word(pred) + (correct ? " \u2713" : " \u2717"), HFM.fmt(values[pred]),
        Number.isFinite(runnerUp) ? HFM.fmt(values[pred] - runnerUp) : "n/a", HFM.fmt(values[ex.labels.values[q]])];
      cells.forEach((text, i) => {
        const td = tr.insertCell(); td.textContent = text;
        if (i >= 2) td.className = "num";
        if (i === 1) td.className = correct ? "ok" : "wrong";
      });
    }
    renderMetrics();
    renderTokens();
  }

  function renderMetrics() {
    const q = state.query, l = state.layer;
    $("agreement-title").textContent = `Query #${q} at layer ${ex.layers[l]}`;
    const body = document.querySelector("#metric-table tbody");
    body.innerHTML = "";
    for (const name of names) {
      const tr = body.insertRow();
      tr.dataset.metric = name;
      [label(name), HFM.fmt(metric(name, q, l)), ex.random[name] ? HFM.fmt(random(name, q, l)) : "", HFM.fmt(meanOver(name, q))]
        .forEach((text, i) => { const td = tr.insertCell(); td.textContent = text; if (i) td.className = "num"; });
    }
    for (const name of Object.keys(ex.query_metrics || {}).sort()) {
      const tr = body.insertRow();
      tr.dataset.metric = name;
      [label(name) + " (one value per query)", HFM.fmt(ex.query_metrics[name].values[q]), "", ""]
        .forEach((text, i) => { const td = tr.insertCell(); td.textContent = text; if (i) td.className = "num"; });
    }
    const shown = names.filter((n) => AGREEMENT.includes(n));
    const traces = (shown.length ? shown : names.slice(0, 4)).map((name, i) => ({
      x: ex.layers, y: Array.from({ length: L }, (_, k) => { const v = metric(name, q, k); return Number.isNaN(v) ? null : v; }),
      mode: "lines+markers", name: label(name), hovertemplate: "%{y:.3f}",
      line: { color: HFM.palette.family[i % HFM.palette.family.length] },
    }));
    const layout = {
      template: "none", height: 280, margin: { l: 50, r: 10, t: 30, b: 100 }, hovermode: "x unified",
      title: { text: "this query, per layer (click a point to pick its layer)", font: { size: 12 }, x: 0, xanchor: "left" },
      xaxis: { title: { text: "layer" }, dtick: L <= 20 ? 1 : undefined }, legend: { orientation: "h", x: 0, y: -0.45, yanchor: "top" },
      shapes: [{ type: "line", x0: ex.layers[l], x1: ex.layers[l], yref: "paper", y0: 0, y1: 1, line: { color: "#d00", width: 1 } }],
    };
    Plotly.react($("query-layers"), traces, layout, { ...HFM.config, displayModeBar: false });
  }

  function ranks(values, keep) {  // rank 1 = highest; ties: the earlier token first (docs/analysis.md, top-k recall)
    const idx = [];
    for (let t = 0; t < values.length; t++) if (keep[t]) idx.push(t);
    idx.sort((a, b) => values[b] - values[a] || a - b);
    const rank = new Int32Array(values.length);
    idx.forEach((t, r) => { rank[t] = r + 1; });
    return { rank, n: idx.length };
  }

  function panel(container, tokens, owner, values, keep, rank, k, rgb, describe) {
    container.innerHTML = "";
    let max = 0;
    for (let t = 0; t < values.length; t++) if (keep[t]) max = Math.max(max, values[t]);
    let demo = null, current = -1;
    for (let t = 0; t < values.length; t++) {
      if (owner[t] !== current || demo === null) {
        current = owner[t];
        demo = document.createElement("div");
        demo.className = "demo";
        const tag = document.createElement("span");
        tag.className = "demo-label";
        tag.textContent = "D" + (current + 1);
        demo.appendChild(tag);
        container.appendChild(demo);
      }
      const span = document.createElement("span");
      span.className = "tok";
      span.textContent = tokens[t];
      span.dataset.t = String(t);
      if (keep[t]) {
        const alpha = max > 0 ? values[t] / max : 0;
        span.style.background = `rgba(${rgb},${(0.9 * alpha).toFixed(3)})`;
        if (alpha > 0.6) span.style.color = "#fff";
        if (rank.rank[t] <= k) span.classList.add("top");
        span.dataset.value = Number(values[t]).toPrecision(4);
        span.dataset.rank = String(rank.rank[t]);
      } else {
        span.classList.add("hidden-token");
        span.dataset.value = "";
      }
      span.title = describe(t);
      demo.appendChild(span);
    }
    return max;
  }

  function renderTokens() {
    const q = state.query, l = state.layer, note = $("token-note");
    if (!ins || !rowOf.has(q)) {
      note.textContent = ins ? `Token-level scores are kept for the first ${rowOf.size} queries (the n_inspect option); ` +
        "pick a query marked \u201ctokens\u201d." : "This run kept no token-level scores.";
      note.style.display = "block";
      $("token-panels").style.display = "none";
      return;
    }
    note.style.display = "none";
    $("token-panels").style.display = "";
    const i = rowOf.get(q), base = (i * L + l) * T;
    const keep = ins.visible.values.subarray(base, base + T);
    let icl = ins.icl_mass.values.subarray(base, base + T);
    if (state.head !== "sum") {
      const h = Number(state.head), start = ((i * L + l) * H + h) * T;
      icl = ins.icl_mass_heads.values.subarray(start, start + T);
    }
    const raw = ins.ft_score ? ins.ft_score.values.subarray(base, base + T) : null;
    const ftMass = ins.ft_mass.values.subarray(base, base + T);  // softmax over the attended tokens, computed in float64
    const iclRank = ranks(icl, keep), ftRank = ranks(ftMass, keep);
    // Outline each side's top k only when they are a choice (with k >= the tokens attended, every one is in it).
    const k = (ex.top_k.token_level || 0) < iclRank.n ? ex.top_k.token_level : 0;
    const tokens = texts.demo_tokens, owner = ins.demo_owner.values;
    const headName = state.head === "sum" ? "summed over heads" : "head " + state.head;
    const hidden = "outside this layer's attention window";
    const describeIcl = (t) => keep[t] ? `ICL attention mass ${Number(icl[t]).toPrecision(4)} (${headName}), rank ${iclRank.rank[t]} of ${iclRank.n}` : hidden;
    const describeFt = (t) => keep[t] ? (raw ? `FT score ${Number(raw[t]).toPrecision(4)}, ` : "") +
      `softmax ${Number(ftMass[t]).toPrecision(4)}, rank ${ftRank.rank[t]} of ${ftRank.n}` : hidden;
    const maxIcl = panel($("icl-tokens"), tokens, owner, icl, keep, iclRank, k, HFM.rgb(HFM.palette.icl), describeIcl);
    const maxFt = panel($("ft-tokens"), tokens, owner, ftMass, keep, ftRank, k, HFM.rgb(HFM.palette.ft), describeFt);
    if (iclRank.n === 0) {
      $("icl-scale").textContent = "this layer attends to none of the demonstration tokens (its window holds only the query)";
      $("ft-scale").textContent = "";
    } else {
      $("icl-scale").textContent = `0 to ${maxIcl.toPrecision(3)}, ${headName}; ${iclRank.n} of ${T} tokens attended`;
      $("ft-scale").textContent = `0 to ${maxFt.toPrecision(3)}` + (state.head === "sum" ? "" : " (the FT side is summed over heads)");
    }
    for (const container of [$("icl-tokens"), $("ft-tokens")]) {
      container.onmouseover = (event) => {
        const t = event.target.dataset ? event.target.dataset.t : undefined;
        if (t === undefined) return;
        document.querySelectorAll(".tok.picked").forEach((s) => s.classList.remove("picked"));
        document.querySelectorAll(`.tok[data-t="${t}"]`).forEach((s) => s.classList.add("picked"));
        $("token-detail").textContent = `token ${JSON.stringify(tokens[t])} (demonstration ${owner[t] + 1}, token ${t}): ` +
          describeIcl(t) + "; " + describeFt(t);
      };
    }
  }

  $("query-select").addEventListener("change", (e) => { state.query = Number(e.target.value); renderList(); renderQuery(); });
  $("layer-select").addEventListener("change", (e) => { state.layer = Number(e.target.value); renderList(); renderMetrics(); renderTokens(); });
  $("head-select").addEventListener("change", (e) => { state.head = e.target.value; renderTokens(); });
  $("sort-select").addEventListener("change", (e) => { state.sort = e.target.value; renderList(); });
  $("sort-desc").addEventListener("change", (e) => { state.desc = e.target.checked; renderList(); });
  renderList();
  renderQuery();
  $("query-layers").on("plotly_click", (event) => {  // the div is a plot only once drawn
    const l = ex.layers.indexOf(event.points[0].x);
    if (l >= 0) { state.layer = l; $("layer-select").value = String(l); renderList(); renderMetrics(); renderTokens(); }
  });
}
{% endraw %}
