"""The HTML status page the API serves at ``/`` (one self-contained document: packaging
needs no data files). Its script fetches ``status`` every 2 s and draws the VRRP
instances and the virtual servers with their real servers; with a bearer token the page
is opened as ``/#token=TOKEN`` (the fragment never reaches the server). Every value is
put in the page as text (textContent), never as HTML."""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>lvs-director</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.4em; margin: 0 0 .2em; }
  h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
  table { border-collapse: collapse; margin-bottom: .8em; }
  th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
  th { background: #f3f3f3; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .MASTER, .UP { background: #d9f2d9; }
  .BACKUP { background: #e3ecfa; }
  .FAULT, .DOWN, .INIT, .STOP { background: #f8d7d7; }
  .DRAINED { background: #fff1c9; }
  #error { color: #a00; font-weight: bold; }
  .stale { color: #a60; }
  .muted { color: #777; }
</style>
</head>
<body>
<h1>lvs-director</h1>
<div id="summary" class="muted">loading...</div>
<div id="error" role="alert"></div>
<div id="warnings"></div>
<h2>VRRP instances</h2>
<table id="instances">
  <thead><tr><th>instance</th><th>state</th><th>priority</th><th>master</th>
  <th>VRID</th><th>interface</th><th>virtual addresses</th>
  <th>adverts sent / received</th></tr></thead>
  <tbody></tbody>
</table>
<h2>Virtual servers</h2>
<div id="virtual-servers"></div>
<script>
"use strict";
const REFRESH_MS = 2000;
const token = new URLSearchParams(location.hash.replace(/^#/, "")).get("token");

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function row(cells, attrs) {
  const tr = document.createElement("tr");
  for (const [name, value] of Object.entries(attrs || {})) tr.setAttribute(name, value);
  for (const cell of cells) tr.appendChild(cell);
  return tr;
}

function ms(seconds) {
  return typeof seconds === "number" ? (seconds * 1000).toFixed(1) + " ms" : "";
}

function when(epoch) {
  return typeof epoch === "number" ? new Date(epoch * 1000).toLocaleTimeString() : "";
}

function drawSummary(view) {
  const d = view.daemon;
  let text = "state directory " + view.state_dir + ", updated " + when(view.generated_at);
  if (d) {
    text = "pid " + d.pid + ", config " + d.config + (d.dry_run ? " (dry run)" : "") +
      ", up since " + new Date(d.started_at * 1000).toLocaleString() + "; children: " +
      (d.children || []).map(c => c.role + " " + (c.running ? "running (pid " + c.pid + ")"
        : "NOT running") + (c.restarts ? ", " + c.restarts + " restart(s)" : "")).join(", ") +
      "; " + text;
  }
  document.getElementById("summary").textContent = text;
  const warnings = document.getElementById("warnings");
  warnings.replaceChildren();
  for (const [role, file] of Object.entries(view.files || {})) {
    if (file.stale) {
      warnings.appendChild(el("div", role + " status is stale: " + file.stale_reason, "stale"));
    }
  }
  if (view.ipvs && !view.ipvs.available) {
    warnings.appendChild(el("div", "IPVS counters: " + view.ipvs.problem, "muted"));
  }
}

function drawInstances(view) {
  const body = document.querySelector("#instances tbody");
  body.replaceChildren();
  const instances = (view.vrrp || {}).instances || [];
  if (!instances.length) {
    const td = el("td", "no VRRP instance", "muted");
    td.colSpan = 8;
    body.appendChild(row([td]));
  }
  for (const i of instances) {
    const c = i.counters || {};
    body.appendChild(row([
      el("td", i.name), el("td", i.state, "state " + i.state),
      el("td", i.priority, "num"), el("td", i.master || ""), el("td", i.vrid, "num"),
      el("td", i.interface), el("td", (i.virtual_addresses || []).join(", ")),
      el("td", (c.adverts_sent || 0) + " / " + (c.adverts_received || 0), "num"),
    ], {"data-instance": i.name}));
  }
}

function sum(list, field) {
  return (list || []).reduce((total, s) => total + (s[field] || 0), 0);
}

function drawVirtualServers(view) {
  const box = document.getElementById("virtual-servers");
  box.replaceChildren();
  const servers = view.virtual_servers || [];
  if (!servers.length) box.appendChild(el("div", "no virtual server", "muted"));
  for (const vs of servers) {
    const title = vs.id + " (" + (vs.services || []).join(", ") + ")" +
      (vs.quorum_up === false ? ": QUORUM DOWN" : "") +
      (vs.sorry_active ? ", sorry server in use" : "");
    box.appendChild(el("h3", title));
    const table = el("table");
    table.setAttribute("data-virtual-server", vs.id);
    const head = row(["real server", "health", "weight", "active conns",
      "inactive conns", "connections", "latency", "last check", "reason"]
      .map(t => el("th", t)));
    table.appendChild(el("thead")).appendChild(head);
    const body = table.appendChild(el("tbody"));
    for (const rs of vs.real_servers || []) {
      const health = rs.drained ? "DRAINED" : (rs.up ? "UP" : "DOWN");
      const ipvs = rs.ipvs || [];
      const counted = view.ipvs && view.ipvs.available;
      body.appendChild(row([
        el("td", rs.name), el("td", health, "health " + health),
        el("td", rs.weight + (rs.weight !== rs.configured_weight ?
          " (of " + rs.configured_weight + ")" : ""), "num"),
        el("td", counted ? sum(ipvs, "active_connections") : "-", "num"),
        el("td", counted ? sum(ipvs, "inactive_connections") : "-", "num"),
        el("td", counted ? sum(ipvs, "connections") : "-", "num"),
        el("td", ms(rs.latency), "num"), el("td", when(rs.last_check)),
        el("td", rs.reason || ""),
      ], {"data-real-server": rs.name}));
    }
    box.appendChild(table);
  }
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const headers = token ? {"Authorization": "Bearer " + token} : {};
    const answer = await fetch("status", {headers: headers, cache: "no-store"});
    if (answer.status === 401) {
      error.textContent = "this director needs a token: open the page as " +
        location.pathname + "#token=YOUR_TOKEN";
      return;
    }
    if (!answer.ok) throw new Error("HTTP " + answer.status);
    const view = await answer.json();
    drawSummary(view);
    drawInstances(view);
    drawVirtualServers(view);
    error.textContent = "";
    document.body.setAttribute("data-updated", String(view.generated_at));
  } catch (e) {
    error.textContent = "cannot read the status: " + e.message;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}
refresh();
</script>
</body>
</html>
"""
