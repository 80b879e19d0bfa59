// The server's small UI: lists audits with live progress, opens their reports, submits an
// audit on a named dataset. The API key, when the server needs one, is kept in this tab's
// sessionStorage and sent only as a bearer token, never in a URL. Every text from the API
// reaches the page through text nodes.
(function () {
  "use strict";
  var key = sessionStorage.getItem("gauntlet-key") || "";
  var message = document.getElementById("message");
  var rows = document.querySelector("#audits tbody");
  function el(tag, attrs) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    for (var i = 2; i < arguments.length; i++) if (arguments[i] !== null && arguments[i] !== undefined) e.append(arguments[i]);
    return e;
  }
  function headers(json) {
    var h = {};
    if (json) h["content-type"] = "application/json";
    if (key) h.authorization = "Bearer " + key;
    return h;
  }
  function say(text) { message.textContent = text; }
  function call(method, path, body) {
    return fetch(path, { method: method, headers: headers(body !== undefined), body: body === undefined ? undefined : JSON.stringify(body), credentials: "omit", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) say("The server needs an API key: enter it above.");
        return r;
      });
  }
  function errorOf(r) {
    return r.json().then(function (b) { return b && b.error ? b.error.code + ": " + b.error.message : "HTTP " + r.status; }, function () { return "HTTP " + r.status; });
  }
  function openReport(id) {
    call("GET", "/v1/audits/" + encodeURIComponent(id) + "/report.html").then(function (r) {
      if (!r.ok) return errorOf(r).then(say);
      return r.blob().then(function (b) {
        var url = URL.createObjectURL(new Blob([b], { type: "text/html" }));
        var w = window.open(url, "_blank");
        if (!w) say("The browser blocked the report window; allow pop-ups for this page.");
      });
    });
  }
  function draw(audits) {
    rows.textContent = "";
    audits.slice().reverse().forEach(function (a) {
      var p = a.progress, frac = p.total ? p.done / p.total : 0;
      var fill = el("i");
      fill.style.width = Math.round(100 * frac) + "%";
      var bar = el("span", { "class": "bar" }, fill);
      var actions = el("td", {});
      if (a.state === "succeeded") {
        var open = el("button", { type: "button", "class": "open" }, "report");
        open.addEventListener("click", function () { openReport(a.id); });
        actions.append(open);
      }
      if (a.state === "queued" || a.state === "running") {
        var cancel = el("button", { type: "button", "class": "cancel" }, "cancel");
        cancel.addEventListener("click", function () { call("POST", "/v1/audits/" + encodeURIComponent(a.id) + "/cancel", {}).then(refresh); });
        actions.append(cancel);
      }
      rows.append(el("tr", { "class": "audit", "data-id": a.id, "data-state": a.state },
        el("td", {}, a.id.slice(0, 8)), el("td", { "class": a.state }, a.state + (a.error ? " — " + a.error : "")),
        el("td", {}, a.model), el("td", {}, a.attacks.join(", ")),
        el("td", { "class": "progress" }, bar, p.done + " / " + p.total),
        el("td", {}, new Date(a.created_at_ms).toLocaleString()), actions));
    });
  }
  function refresh() {
    return call("GET", "/v1/audits").then(function (r) {
      if (!r.ok) return r.status === 401 ? null : errorOf(r).then(say);
      return r.json().then(function (b) { draw(b.audits); document.body.setAttribute("data-loaded", "1"); });
    }, function () { say("The server does not answer."); });
  }
  function models() {
    call("GET", "/v1/models").then(function (r) {
      if (!r.ok) return;
      r.json().then(function (b) {
        var pick = document.getElementById("model");
        pick.textContent = "";
        b.models.forEach(function (m) { pick.append(el("option", { value: m.name }, m.name + " (" + m.input_kind + ")")); });
      });
    });
  }
  document.getElementById("key-form").addEventListener("submit", function (e) {
    e.preventDefault();
    key = document.getElementById("key").value.trim();
    sessionStorage.setItem("gauntlet-key", key);
    document.getElementById("key").value = "";
    say(key ? "Key set for this tab." : "No key.");
    models();
    refresh();
  });
  document.getElementById("submit-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var attack = {};
    var kind = document.getElementById("attack").value;
    if (kind) attack.kind = kind;
    var plan = { attacks: [attack], dataset: { name: document.getElementById("dataset").value.trim() } };
    var model = document.getElementById("model").value;
    if (model) plan.model = model;
    var limit = parseInt(document.getElementById("limit").value, 10);
    if (limit > 0) plan.limit = limit;
    call("POST", "/v1/audits", plan).then(function (r) {
      if (r.status === 202) { say("Audit submitted."); return refresh(); }
      return errorOf(r).then(say);
    });
  });
  models();
  refresh();
  setInterval(refresh, 1000);
})();
