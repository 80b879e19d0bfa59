// Gauntlet's report page. Reads the report from the JSON block #gauntlet-data and builds the
// page with DOM calls only: every text from the report reaches the page through text nodes
// or attribute values, never as markup, so a dataset text cannot inject anything. Fetches
// nothing; the page's Content-Security-Policy forbids it anyway.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var PAGE = 50;
  var COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7b83", "#57606a"];
  var data = JSON.parse(document.getElementById("gauntlet-data").textContent);
  var root = document.getElementById("gauntlet");

  function el(tag, attrs) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      e.append(typeof c === "string" || typeof c === "number" ? String(c) : c);
    }
    return e;
  }
  function sv(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    return e;
  }
  // A legend entry. Colours go through the CSSOM: the page's policy forbids style attributes.
  function key(name, color, dashed) {
    var k = el("span", { "class": "key" }, name);
    k.style.borderLeftColor = color;
    if (dashed) k.style.borderLeftStyle = "dashed";
    return k;
  }
  function pct(x) { return (100 * x).toFixed(1) + "%"; }
  function num(x, d) { return Number(x).toFixed(d === undefined ? 2 : d); }
  function budget(b) {
    if (!b) return "default";
    if (b.changes !== undefined) return b.changes + " changes";
    if (b.fraction !== undefined) return pct(b.fraction) + " of units";
    return JSON.stringify(b);
  }
  function section(title) {
    var s = el("section", {}, el("h2", {}, title));
    root.append(s);
    return s;
  }
  function table(head, rows, cls) {
    var t = el("table", cls ? { "class": cls } : {});
    var tr = el("tr");
    head.forEach(function (h) { tr.append(el("th", {}, h)); });
    t.append(el("thead", {}, tr));
    var body = el("tbody");
    rows.forEach(function (r) {
      var row = el("tr");
      r.forEach(function (c) { row.append(c instanceof Node ? el("td", {}, c) : el("td", {}, String(c))); });
      body.append(row);
    });
    t.append(body);
    return t;
  }

  // Success-vs-τ curves: one polyline and its points per series ({name, curve, dashed}).
  function curves(series) {
    var W = 600, H = 320, L = 56, R = 16, T = 16, B = 44;
    var xs = [];
    series.forEach(function (s) { s.curve.forEach(function (p) { xs.push(p.confidence); }); });
    var x0 = Math.max(0, Math.min.apply(null, xs.concat([0.5])) - 0.05);
    var x1 = Math.min(1, Math.max.apply(null, xs.concat([0.9])) + 0.05);
    var X = function (v) { return L + (v - x0) / (x1 - x0) * (W - L - R); };
    var Y = function (v) { return T + (1 - v) * (H - T - B); };
    var g = sv("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, "class": "curve", role: "img" });
    g.append(sv("line", { x1: L, y1: Y(0), x2: W - R, y2: Y(0), "class": "axis" }));
    g.append(sv("line", { x1: L, y1: Y(0), x2: L, y2: Y(1), "class": "axis" }));
    for (var i = 0; i <= 5; i++) {
      var v = i / 5, ty = sv("text", { x: L - 6, y: Y(v) + 4, "text-anchor": "end", "class": "tick" });
      ty.textContent = pct(v);
      g.append(sv("line", { x1: L, y1: Y(v), x2: W - R, y2: Y(v), "class": "grid" }), ty);
    }
    for (var t = Math.ceil(x0 * 10); t <= Math.floor(x1 * 10); t++) {
      var tx = sv("text", { x: X(t / 10), y: Y(0) + 16, "text-anchor": "middle", "class": "tick" });
      tx.textContent = (t / 10).toFixed(1);
      g.append(tx);
    }
    var xl = sv("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle", "class": "label" });
    xl.textContent = "confidence τ";
    var yl = sv("text", { x: 14, y: (T + H - B) / 2, transform: "rotate(-90 14 " + (T + H - B) / 2 + ")", "text-anchor": "middle", "class": "label" });
    yl.textContent = "success rate";
    g.append(xl, yl);
    var legend = el("div", { "class": "legend" });
    series.forEach(function (s, k) {
      var color = COLORS[k % COLORS.length];
      var pts = s.curve.map(function (p) { return X(p.confidence) + "," + Y(p.success_rate); }).join(" ");
      var line = sv("polyline", { points: pts, fill: "none", stroke: color, "stroke-width": 2 });
      if (s.dashed) line.setAttribute("stroke-dasharray", "6 4");
      g.append(line);
      s.curve.forEach(function (p) {
        var c = sv("circle", { cx: X(p.confidence), cy: Y(p.success_rate), r: 4, fill: color, "class": "point" });
        c.setAttribute("data-series", s.name);
        c.setAttribute("data-confidence", p.confidence);
        c.setAttribute("data-rate", p.success_rate);
        var title = sv("title");
        title.textContent = s.name + ": τ " + p.confidence + " → " + pct(p.success_rate) + " (" + p.successes + ")";
        c.append(title);
        g.append(c);
      });
      legend.append(key(s.name, color, s.dashed));
    });
    return el("div", {}, g, legend);
  }

  // Changes histogram (1 / 2 / 3+) of each attack, as bars.
  function histogram(attacks) {
    var W = 600, H = 40 + 28 * attacks.length, L = 140;
    var g = sv("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, "class": "hist" });
    var max = 1;
    attacks.forEach(function (a) { var h = a.report.summary.changes_histogram; max = Math.max(max, h.one + h.two + h.three_or_more); });
    var shades = ["#1a7f37", "#9a6700", "#d1242f"];
    attacks.forEach(function (a, k) {
      var h = a.report.summary.changes_histogram, x = L, y = 20 + 28 * k;
      var name = sv("text", { x: L - 8, y: y + 14, "text-anchor": "end", "class": "tick" });
      name.textContent = a.name;
      g.append(name);
      [h.one, h.two, h.three_or_more].forEach(function (n, j) {
        var w = n / max * (W - L - 20);
        var r = sv("rect", { x: x, y: y, width: w, height: 18, fill: shades[j] });
        var t = sv("title");
        t.textContent = ["1 change", "2 changes", "3+ changes"][j] + ": " + n;
        r.append(t);
        g.append(r);
        x += w;
      });
    });
    return el("div", {}, g, el("div", { "class": "legend" },
      key("1 change", shades[0]), key("2 changes", shades[1]), key("3+ changes", shades[2])));
  }

  // Token diff of two texts (LCS): characters for character attacks, words otherwise.
  function tokens(text, chars) { return chars ? Array.from(text) : text.split(/(\s+)/).filter(function (t) { return t !== ""; }); }
  function diff(a, b) {
    var n = a.length, m = b.length;
    if (n * m > 4000000) return { a: [[a.join(""), a.join("") !== b.join("")]], b: [[b.join(""), a.join("") !== b.join("")]] };
    var d = new Array(n + 1);
    for (var i = 0; i <= n; i++) d[i] = new Uint16Array(m + 1);
    for (i = n - 1; i >= 0; i--) for (var j = m - 1; j >= 0; j--)
      d[i][j] = a[i] === b[j] ? d[i + 1][j + 1] + 1 : Math.max(d[i + 1][j], d[i][j + 1]);
    var ra = [], rb = [];
    i = 0; j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a[i] === b[j]) { ra.push([a[i], false]); rb.push([b[j], false]); i++; j++; }
      else if (j < m && (i === n || d[i][j + 1] >= d[i + 1][j])) { rb.push([b[j], true]); j++; }
      else { ra.push([a[i], true]); i++; }
    }
    return { a: ra, b: rb };
  }
  function marked(parts, tag) {
    var span = el("span", { "class": "text" });
    parts.forEach(function (p) { span.append(p[1] && p[0].trim() !== "" ? el(tag, {}, p[0]) : p[0]); });
    return span;
  }
  var CHAR_OPS = { flip: 1, insert: 1, "delete": 1 };
  function isChar(report) {
    if (report.config.kind === "hotflip-char" || report.config.char_edits) return true;
    return report.examples.some(function (e) { return e.operations.some(function (o) { return CHAR_OPS[o.kind]; }); });
  }
  function pred(p) { return el("span", { "class": "pred" }, "class " + p.label + " ", el("small", {}, num(p.probability, 3))); }

  // The examples of the attacks: filters by outcome, label and text, and paging; only the
  // rows of the current page exist in the document.
  function examples(attacks, host) {
    var state = { attack: 0, outcome: "all", label: "all", query: "", page: 0 };
    var bar = el("div", { "class": "filters" });
    var pick = el("select", { id: "attack-select", "aria-label": "attack" });
    attacks.forEach(function (a, i) { pick.append(el("option", { value: String(i) }, a.name)); });
    var outcomes = el("span", { "class": "outcomes" });
    ["all", "success", "failure", "skipped"].forEach(function (o) {
      var b = el("button", { type: "button", "data-outcome": o }, o);
      b.addEventListener("click", function () { state.outcome = o; state.page = 0; draw(); });
      outcomes.append(b);
    });
    var labels = el("select", { id: "label-select", "aria-label": "true label" });
    var search = el("input", { id: "search", type: "search", placeholder: "search texts", "aria-label": "search" });
    var prev = el("button", { type: "button", id: "prev" }, "‹ prev");
    var next = el("button", { type: "button", id: "next" }, "next ›");
    var info = el("span", { id: "page-info" });
    bar.append(pick, outcomes, labels, search, prev, next, info);
    var body = el("tbody", { id: "example-rows" });
    var t = el("table", { "class": "examples" }, el("thead", {}, el("tr", {},
      el("th", {}, "#"), el("th", {}, "label"), el("th", {}, "before"), el("th", {}, "after"),
      el("th", {}, "outcome"), el("th", {}, "changes"), el("th", {}, "original"), el("th", {}, "adversarial"))), body);
    host.append(bar, t);
    function fillLabels() {
      var seen = {};
      attacks[state.attack].report.examples.forEach(function (e) { seen[e.true_label] = 1; });
      labels.textContent = "";
      labels.append(el("option", { value: "all" }, "all labels"));
      Object.keys(seen).sort(function (a, b) { return a - b; }).forEach(function (l) { labels.append(el("option", { value: l }, "class " + l)); });
      state.label = "all";
    }
    function rows() {
      var q = state.query.toLowerCase();
      return attacks[state.attack].report.examples.filter(function (e) {
        return (state.outcome === "all" || e.outcome === state.outcome) &&
          (state.label === "all" || String(e.true_label) === state.label) &&
          (q === "" || e.original_text.toLowerCase().indexOf(q) >= 0 || e.adversarial_text.toLowerCase().indexOf(q) >= 0);
      });
    }
    function draw() {
      var report = attacks[state.attack].report, chars = isChar(report), all = rows();
      var pages = Math.max(1, Math.ceil(all.length / PAGE));
      state.page = Math.min(state.page, pages - 1);
      body.textContent = "";
      all.slice(state.page * PAGE, (state.page + 1) * PAGE).forEach(function (e) {
        var d = diff(tokens(e.original_text, chars), tokens(e.adversarial_text, chars));
        var tr = el("tr", { "class": "row " + e.outcome, "data-index": e.index },
          el("td", {}, e.index), el("td", {}, "class " + e.true_label), el("td", {}, pred(e.before)),
          el("td", {}, pred(e.after)), el("td", { "class": "outcome" }, e.outcome + (e.skip_reason ? " (" + e.skip_reason + ")" : "")),
          el("td", {}, e.changes), el("td", {}, marked(d.a, "del")), el("td", {}, marked(d.b, "ins")));
        body.append(tr);
      });
      Array.prototype.forEach.call(outcomes.children, function (b) { b.classList.toggle("on", b.getAttribute("data-outcome") === state.outcome); });
      info.textContent = all.length ? (state.page * PAGE + 1) + "–" + Math.min(all.length, (state.page + 1) * PAGE) + " of " + all.length : "no example matches";
      prev.disabled = state.page === 0;
      next.disabled = state.page >= pages - 1;
    }
    pick.addEventListener("change", function () { state.attack = Number(pick.value); state.page = 0; fillLabels(); draw(); });
    labels.addEventListener("change", function () { state.label = labels.value; state.page = 0; draw(); });
    search.addEventListener("input", function () { state.query = search.value; state.page = 0; draw(); });
    prev.addEventListener("click", function () { state.page--; draw(); });
    next.addEventListener("click", function () { state.page++; draw(); });
    fillLabels();
    draw();
  }

  function summaryRows(attacks) {
    return attacks.map(function (a) {
      var s = a.report.summary, c = a.report.config, n = Math.max(1, s.examples);
      var mix = Object.keys(s.operation_mix).map(function (k) { return k + " " + s.operation_mix[k]; }).join(", ") || "—";
      return [a.name, c.kind, c.beam_width, budget(c.budget), c.confidence, a.report.seed, s.examples,
        pct(s.clean_accuracy), s.attacked, s.successes, pct(s.success_rate), pct(s.accuracy_under_attack),
        num(s.mean_fraction_changed, 3), mix, num(s.mean_forward_passes, 1) + " / " + num(s.mean_backward_passes, 1),
        num(s.wall_time_ms / n, 1)];
    });
  }
  var SUMMARY_HEAD = ["attack", "kind", "beam", "budget", "τ", "seed", "examples", "clean acc.", "attacked", "successes",
    "success rate", "acc. under attack", "mean fraction changed", "operations", "passes fwd / bwd per example", "ms per example"];

  function identity(report) {
    var dl = el("dl", { "class": "identity" });
    function row(k, v) { dl.append(el("dt", {}, k), el("dd", {}, v)); }
    row("model", report.model);
    row("data", report.data.examples + " examples, sha256 " + report.data.digest.slice(0, 16) + "…");
    if (report.shard) row("shard", report.shard);
    if (report.merged_from) row("merged from", report.merged_from.count + " shards");
    row("verdict", report.verdict ? (report.verdict.passed ? "passed" : "failed") : (report.cancelled ? "cancelled (partial)" : "no gate"));
    row("wall time", num(report.wall_time_ms / 1000, 1) + " s");
    return dl;
  }

  function audit(report) {
    root.append(el("h1", {}, "Gauntlet audit report"), identity(report));
    if (report.verdict) {
      section("Gate").append(table(["attack", "metric", "threshold", "value", "passed"], report.verdict.checks.map(function (c) {
        return [c.attack, c.metric, c.threshold, num(c.value, 4), c.passed ? "yes" : "NO"];
      })));
    }
    section("Summary").append(table(SUMMARY_HEAD, summaryRows(report.attacks), "summary"));
    section("Success rate against confidence τ").append(curves(report.attacks.map(function (a) { return { name: a.name, curve: a.report.summary.curve }; })));
    section("Changes per successful example").append(histogram(report.attacks));
    examples(report.attacks, section("Examples"));
  }

  function compare(c) {
    root.append(el("h1", {}, "Gauntlet comparison: " + c.a.label + " vs " + c.b.label));
    var dl = el("dl", { "class": "identity" });
    dl.append(el("dt", {}, "A"), el("dd", {}, c.a.label + " — " + c.a.model), el("dt", {}, "B"), el("dd", {}, c.b.label + " — " + c.b.model),
      el("dt", {}, "data"), el("dd", {}, c.data.examples + " examples, sha256 " + c.data.digest.slice(0, 16) + "…"));
    root.append(dl);
    section("Deltas (B − A)").append(table(["attack", "success rate A", "B", "Δ", "acc. under attack A", "B", "Δ", "clean acc. A", "B", "Δ", "only A fooled", "only B fooled"],
      c.attacks.map(function (a) {
        function d(x) { return (x >= 0 ? "+" : "") + (100 * x).toFixed(1) + " pt"; }
        return [a.name, pct(a.a.success_rate), pct(a.b.success_rate), d(a.delta.success_rate),
          pct(a.a.accuracy_under_attack), pct(a.b.accuracy_under_attack), d(a.delta.accuracy_under_attack),
          pct(a.a.clean_accuracy), pct(a.b.clean_accuracy), d(a.delta.clean_accuracy), a.only_a_fooled.length, a.only_b_fooled.length];
      }), "summary"));
    var series = [];
    c.attacks.forEach(function (a) {
      series.push({ name: a.name + " (A)", curve: a.a.curve });
      series.push({ name: a.name + " (B)", curve: a.b.curve, dashed: true });
    });
    section("Success rate against confidence τ").append(curves(series));
    var host = section("Examples one model resists and the other does not");
    var SHOWN = 25;
    c.attacks.forEach(function (a) {
      var chars = a.kind === "hotflip-char";
      [["only_a_fooled", "fooled A (" + c.a.label + "), resisted by B (" + c.b.label + ")"], ["only_b_fooled", "fooled B (" + c.b.label + "), resisted by A (" + c.a.label + ")"]].forEach(function (k) {
        var list = a[k[0]];
        host.append(el("h3", {}, a.name + ": " + k[1] + " — " + list.length));
        var body = el("tbody");
        var t = el("table", { "class": "examples diffs" }, el("thead", {}, el("tr", {},
          el("th", {}, "#"), el("th", {}, "label"), el("th", {}, "original"),
          el("th", {}, "adversarial against A"), el("th", {}, "adversarial against B"))), body);
        function draw(n) {
          body.textContent = "";
          list.slice(0, n).forEach(function (x) {
            var o = tokens(x.original_text, chars);
            body.append(el("tr", { "class": "row" }, el("td", {}, x.index), el("td", {}, "class " + x.true_label),
              el("td", {}, x.original_text), el("td", {}, marked(diff(o, tokens(x.a_adversarial, chars)).b, "ins")),
              el("td", {}, marked(diff(o, tokens(x.b_adversarial, chars)).b, "ins"))));
          });
        }
        draw(SHOWN);
        host.append(t);
        if (list.length > SHOWN) {
          var more = el("button", { type: "button", "class": "more" }, "show all " + list.length);
          more.addEventListener("click", function () { draw(list.length); more.remove(); });
          host.append(more);
        }
      });
    });
  }

  if (data.kind === "compare") compare(data.comparison); else audit(data.report);
  document.body.setAttribute("data-ready", "1");
})();
