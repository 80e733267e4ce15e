// srpc dashboard. Registry data is untrusted: every value reaches the page through
// text nodes (never innerHTML), and the server's content security policy allows no inline
// script. Every request is relative, so the page works wherever it is mounted (/ or /ui/).
"use strict";

// Rows of the services table drawn at first.
const PAGE_ROWS = 300;

const state = {
  showAll: false,
  writes: false,
  connected: null,
  serverLost: false,
  view: null,
  refreshing: null,
  again: false,
};

// An element: el("td", {class: "num"}, "12", otherNode). Strings become text nodes.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [page, ...rest] = hash.split("/");
  if (page === "service" && rest.length) return { page: "service", key: decodeURIComponent(rest.join("/")) };
  if (page === "registry") return { page: "registry" };
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  return { page: "services", params };
}

function setStatus(connected) {
  state.connected = connected;
  const status = document.getElementById("status");
  status.textContent = connected ? "registry connected" : "registry connection lost";
  status.className = "status " + (connected ? "ok" : "bad");
  showBanner();
}

function showBanner() {
  const banner = document.getElementById("banner");
  let text = "";
  if (state.serverLost) text = "The dashboard's server does not answer; what is shown may be old.";
  else if (state.connected === false)
    text = "The registry connection is lost: these are the last entries known, and changes are not seen.";
  banner.textContent = text;
  banner.hidden = text === "";
}

function markNav(page) {
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === page || (page === "service" && link.dataset.page === "services"))
      link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function age(timestamp) {
  if (!timestamp) return "";
  const seconds = Math.max(0, Math.round((Date.now() - timestamp) / 1000));
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

function table(caption, headers, rows, empty) {
  if (!rows.length) return el("p", { class: "empty" }, empty);
  return el("div", { class: "scroll" },
    el("table", {},
      el("caption", {}, caption),
      el("thead", {}, el("tr", {}, headers.map(([name, cls]) => el("th", { scope: "col", class: cls }, name)))),
      el("tbody", {}, rows)));
}

// ---- Services page -------------------------------------------------------------------

const FILTERS = [
  ["protocol", "Protocol", []],
  ["category", "Category", [["", "any"], ["providers", "with providers"], ["consumers", "with consumers"], ["connected", "connected (providers and consumers)"], ["orphans", "consumers without providers"], ["unused", "providers without consumers"]]],
  ["state", "State", [["", "any"], ["disabled", "with a disabled provider"], ["enabled", "all enabled"]]],
  ["sort", "Sort by", [["", "name"], ["providers", "providers"], ["consumers", "consumers"]]],
];

function currentFilters() {
  const params = new URLSearchParams();
  const q = document.getElementById("q");
  if (q && q.value.trim()) params.set("q", q.value.trim());
  for (const [name] of FILTERS) {
    const select = document.getElementById("f-" + name);
    if (select && select.value) params.set(name, select.value);
  }
  return params;
}

function servicesControls(params, protocols) {
  const controls = el("form", { class: "controls", role: "search", onsubmit: (e) => e.preventDefault() });
  const q = el("input", {
    id: "q", type: "search", value: params.get("q") || "", autocomplete: "off", maxlength: 1024,
    placeholder: "service, address, application, key=value",
  });
  let timer = null;
  q.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => applyFilters(), 200);
  });
  controls.append(el("label", { for: "q" }, "Search", q));
  for (const [name, label, fixed] of FILTERS) {
    const options = name === "protocol" ? [["", "any"], ...protocols.map((p) => [p, p])] : fixed;
    const select = el("select", { id: "f-" + name, onchange: () => applyFilters() },
      options.map(([value, text]) => el("option", { value, selected: (params.get(name) || "") === value }, text)));
    controls.append(el("label", { for: "f-" + name }, label, select));
  }
  return controls;
}

function applyFilters() {
  state.showAll = false;
  const params = currentFilters();
  const query = params.toString();
  history.replaceState(null, "", "#/services" + (query ? "?" + query : ""));
  refresh();
}

async function renderServices(main, params) {
  const data = await getJson("api/services?" + params.toString());
  setStatus(data.connected);
  // The first rows at once; all of them on request (a long table takes a while to lay out).
  const limit = state.showAll ? data.rows.length : PAGE_ROWS;
  const rows = data.rows.slice(0, limit).map((row) =>
    el("tr", { class: row.disabled ? "has-off" : null },
      el("td", {}, el("a", { href: "#/service/" + encodeURIComponent(row.key) }, row.interface)),
      el("td", {}, row.group),
      el("td", {}, row.version),
      el("td", { class: "num" }, row.providers),
      el("td", { class: "num" }, row.consumers),
      el("td", { class: "num" }, row.disabled ? el("span", { class: "tag bad" }, row.disabled) : "0"),
      el("td", {}, row.protocols.map((p) => el("span", { class: "tag" }, p))),
      el("td", {}, row.applications.join(", "))));
  const shown = rows.length < data.matched ? `${rows.length} shown of ` : "";
  const results = [
    el("p", { class: "count", id: "count", "aria-live": "polite" },
      `${shown}${data.matched} of ${data.total} services`),
    table("Services with their providers and consumers",
      [["Interface"], ["Group"], ["Version"], ["Providers", "num"], ["Consumers", "num"], ["Disabled", "num"], ["Protocols"], ["Applications"]],
      rows, data.total ? "No service matches." : "The registry holds no service."),
    rows.length < data.rows.length
      ? el("p", {}, el("button", { type: "button", id: "show-all", onclick: () => { state.showAll = true; refresh(); } },
        `Show all ${data.rows.length}`))
      : null,
  ];
  // The controls stay while the results change under them: typing is never interrupted.
  let controls = document.getElementById("services-controls");
  const protocols = data.protocols.join(",");
  if (!controls || controls.dataset.protocols !== protocols) {
    const focused = document.activeElement && document.activeElement.id;
    controls = servicesControls(params, data.protocols);
    controls.id = "services-controls";
    controls.dataset.protocols = protocols;
    main.replaceChildren(el("h1", {}, "Services"), controls, el("div", { id: "results" }, results.filter(Boolean)));
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  } else {
    document.getElementById("results").replaceChildren(...results.filter(Boolean));
  }
}

// ---- Service page --------------------------------------------------------------------

function params(list) {
  return el("details", {},
    el("summary", {}, `${list.length} parameters`),
    el("dl", { class: "params" }, list.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
}

function copyButton(text) {
  return el("button", {
    type: "button", title: "Copy the URL", onclick: async (event) => {
      const button = event.currentTarget;
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "copied";
      } catch (_) {
        window.prompt("Copy the URL:", text);
      }
    },
  }, "copy URL");
}

function token() {
  let value = sessionStorage.getItem("srpc-token");
  if (!value) {
    value = window.prompt("The dashboard's write token:") || "";
    if (value) sessionStorage.setItem("srpc-token", value);
  }
  return value;
}

async function act(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + token() },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (response.status === 401) sessionStorage.removeItem("srpc-token");
  if (!response.ok) window.alert(answer.error || `${response.status} ${response.statusText}`);
  refresh();
}

function actions(row) {
  const weight = el("input", { type: "number", min: 0, max: 1000000, value: row.weight, "aria-label": "Weight of " + row.address });
  return el("div", { class: "actions" },
    row.enabled
      ? el("button", { type: "button", onclick: () => act("api/override", { action: "disable", url: row.url }) }, "disable")
      : el("button", { type: "button", onclick: () => act("api/override", { action: "enable", url: row.url }) }, "enable"),
    weight,
    el("button", { type: "button", onclick: () => act("api/override", { action: "weight", url: row.url, weight: Number(weight.value) }) }, "set weight"),
    el("button", {
      type: "button", onclick: () => {
        if (window.confirm("Unregister " + row.address + "? Only a provider that no longer answers can be.")) act("api/unregister", { url: row.url });
      },
    }, "unregister"));
}

async function renderService(main, key) {
  const data = await getJson("api/service?key=" + encodeURIComponent(key));
  setStatus(data.connected);
  const providerRows = data.providers.map((row) =>
    el("tr", { class: row.enabled ? null : "off" },
      el("td", {}, el("code", {}, row.address)),
      el("td", {}, row.protocol),
      el("td", {}, row.application),
      el("td", { class: "num" }, row.weight, row.overridden ? el("span", { class: "tag", title: "set by an override rule" }, "rule") : null),
      el("td", {}, row.enabled ? "yes" : el("span", { class: "tag bad" }, "disabled")),
      el("td", {}, [row.group, row.version].filter(Boolean).join(" / ")),
      el("td", {}, age(row.timestamp)),
      el("td", {}, params(row.params), copyButton(row.url)),
      data.writes ? el("td", {}, actions(row)) : null));
  const consumerRows = data.consumers.map((row) =>
    el("tr", {},
      el("td", {}, el("code", {}, row.address)),
      el("td", {}, row.application),
      el("td", {}, [row.group, row.version].filter(Boolean).join(" / ")),
      el("td", {}, age(row.timestamp)),
      el("td", {}, params(row.params), copyButton(row.url))));
  const providerHeaders = [["Address"], ["Protocol"], ["Application"], ["Weight", "num"], ["Enabled"], ["Group / version"], ["Age"], ["URL"]];
  if (data.writes) providerHeaders.push(["Actions"]);
  main.replaceChildren(
    el("p", {}, el("a", { href: "#/services" }, "← all services")),
    el("h1", {}, key),
    el("h2", { id: "providers" }, `Providers (${data.providers.length})`),
    table("Providers of " + key, providerHeaders, providerRows, "No provider."),
    el("h2", { id: "consumers" }, `Consumers (${data.consumers.length})`),
    table("Consumers of " + key, [["Address"], ["Application"], ["Group / version"], ["Age"], ["URL"]], consumerRows, "No consumer."));
}

// ---- Registry page -------------------------------------------------------------------

async function renderRegistry(main) {
  const data = await getJson("api/registry");
  setStatus(data.connected);
  const fact = (name, value) => [el("dt", {}, name), el("dd", {}, value)];
  main.replaceChildren(
    el("h1", {}, "Registry"),
    el("dl", { class: "facts" },
      fact("Registry", el("code", {}, data.registry)),
      fact("Connected", data.connected ? "yes" : "no, showing the last entries known"),
      fact("Last change", data.last_change ? new Date(data.last_change).toLocaleString() + ` (${age(data.last_change)} ago)` : "none seen since the dashboard started"),
      fact("Revision", data.revision),
      fact("Services", data.services),
      fact("Providers", data.providers),
      fact("Consumers", data.consumers),
      fact("Override rules", data.configurators),
      fact("Routers", data.routers),
      fact("Write actions", data.writes ? "on (with the token)" : "off"),
      data.metrics ? metricFacts(data.metrics, fact) : []));
}

function metricFacts(m, fact) {
  if (m.error) return fact("Registry metrics", m.error);
  const shown = (v) => (v === null || v === undefined ? "—" : String(v));
  return [
    fact("Instances (registry)", shown(m.instances)),
    fact("Heartbeats per second", m.heartbeats_per_second == null ? "— (after the next reading)" : m.heartbeats_per_second.toFixed(1)),
    fact("Expirations", shown(m.expirations)),
    fact("Long-polls waiting", shown(m.watchers)),
    fact("Registry memory", m.resident_bytes == null ? "—" : (m.resident_bytes / 1048576).toFixed(1) + " MiB"),
  ];
}

// ---- Refresh and live updates --------------------------------------------------------

async function refresh() {
  if (state.refreshing) {
    state.again = true;
    return state.refreshing;
  }
  const main = document.getElementById("main");
  const view = route();
  markNav(view.page);
  state.refreshing = (async () => {
    try {
      if (view.page === "service") await renderService(main, view.key);
      else if (view.page === "registry") await renderRegistry(main);
      else await renderServices(main, view.params);
      document.body.dataset.rendered = String(Date.now());
      // Milliseconds from navigation to the first frame drawn with data (the bench reads it).
      if (window.srpcFirstRender === undefined) {
        window.srpcFirstRender = null;
        requestAnimationFrame(() => requestAnimationFrame(() => {
          window.srpcFirstRender = performance.now();
        }));
      }
    } catch (error) {
      main.replaceChildren(el("p", { class: "banner", role: "alert" }, "Could not load: " + error.message));
    }
  })();
  await state.refreshing;
  state.refreshing = null;
  if (state.again) {
    state.again = false;
    refresh();
  }
}

function follow() {
  if (!window.EventSource) {
    setInterval(refresh, 5000);
    return;
  }
  const source = new EventSource("api/events");
  source.addEventListener("changed", (event) => {
    state.serverLost = false;
    const changed = JSON.parse(event.data);
    setStatus(changed.connected);
    refresh();
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      // Refused (too many pages follow): poll instead.
      setInterval(refresh, 5000);
    } else {
      state.serverLost = true;
      showBanner();
    }
  });
}

window.addEventListener("hashchange", () => {
  const view = route();
  if (view.page !== state.view) document.getElementById("main").focus();
  state.view = view.page;
  refresh();
});
refresh();
follow();
