// The reporting dashboard: figures from /v1/stream (a snapshot, then every change), the year
// over year view from /v1/areas/{code}/years, TPMAP's 2561 figures from /v1/tpmap/2561/{code}.
// Plain ES modules, no build step; the only third-party asset is the province map.
import { TEXT } from "./i18n.js";
import { PROVINCE_CODE, WATER } from "./provinces.js";

const MAP_MODULE = "/dashboard/vendor/thailand-map/index.js";
const DIMENSIONS = ["health", "living", "education", "income", "access"];
const CARDS = { all: "cardAll", card: "cardCard", nocard: "cardNocard" };
const SUMMARY = [
  "households_surveyed", "persons_surveyed", "welfare_registered", "welfare_verified",
  "poor_households", "poor_persons", "poor_registered", "target_persons", "target_rate",
  "target_households", "nocard_poor_households", "crisis_households", "unregistered_poor",
  "welfare_only", "elderly", "disabled", "chronic_patients",
];
const HEADLINE = new Set(["target_persons", "target_rate"]);
const CHILD_COLUMNS = [
  "persons_surveyed", "poor_persons", "target_persons", "target_rate", "target_households",
  "crisis_households",
];
const COMPARED = [
  "households_surveyed", "persons_surveyed", "welfare_registered", "welfare_verified",
  "poor_households", "poor_persons", "poor_registered", "target_persons", "target_rate",
];
const PROGRESS_SHOWN = [
  "cases", "visited", "with_intervention", "helped", "self_resolved", "in_progress", "not_started",
];
const PROGRESS_BAR = ["helped", "in_progress", "not_started"];
const PALETTE = ["#fee5d9", "#fcae91", "#fb6a4a", "#de2d26", "#a50f15"];
const COMPARED_YEAR = 2561;
const LEVELS = { 2: "province", 4: "district", 6: "subdistrict", 8: "village" };

const state = {
  lang: "th",
  year: null,
  mask: "11111",
  card: "all",
  path: ["TH"],
  sort: { key: "target_persons", order: "desc" },
  areas: new Map(), // area code -> its latest figures from the stream
  updated: new Set(), // codes changed by live events since the last render (they flash)
  source: null,
  connected: false,
  lastUpdate: null,
  freshness: null,
  catalogue: null,
  map: null,
  years: null,
  published: undefined, // undefined: not asked; null: TPMAP published nothing here
};

const $ = (id) => document.getElementById(id);
const t = () => TEXT[state.lang];
const current = () => state.path[state.path.length - 1];
const levelOf = (code) => (code === "TH" ? "country" : LEVELS[code.length]);
const parentOf = (code) => (code === "TH" ? null : code.length === 2 ? "TH" : code.slice(0, -2));
const chainOf = (code) =>
  code === "TH" ? ["TH"] : ["TH", ...[2, 4, 6, 8].filter((n) => n <= code.length).map((n) => code.slice(0, n))];

function nameOf(code) {
  if (code === "TH") return t().countryName;
  const area = state.areas.get(code);
  if (!area) return code;
  return (state.lang === "en" && area.name_en) || area.name_th || code;
}

function fmt(value, digits = 0) {
  if (value == null) return "–";
  return new Intl.NumberFormat(state.lang === "th" ? "th-TH" : "en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  }).format(value);
}
const fmtFigure = (name, value) => fmt(value, name === "target_rate" ? 2 : 0);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== false && value != null) node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c != null));
  return node;
}

function bar(value, max) {
  const width = max > 0 ? (100 * value) / max : 0;
  return el("td", { class: "bar" }, el("span", { style: `width:${width.toFixed(1)}%` }));
}

// --- where the page is: kept in the URL's hash so a view can be shared -----------------------

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (TEXT[params.get("lang")]) state.lang = params.get("lang");
  if (/^[01]{5}$/.test(params.get("mask") ?? "") && params.get("mask") !== "00000") state.mask = params.get("mask");
  if (CARDS[params.get("card")]) state.card = params.get("card");
  if (/^\d{4}$/.test(params.get("year") ?? "")) state.year = Number(params.get("year"));
  if (levelOf(params.get("area") ?? "") && /^(TH|\d+)$/.test(params.get("area"))) state.path = chainOf(params.get("area"));
}

function writeHash() {
  const params = new URLSearchParams({
    year: state.year ?? "", area: current(), mask: state.mask, card: state.card, lang: state.lang,
  });
  history.replaceState(null, "", `#${params}`);
}

// --- live figures ----------------------------------------------------------------------------

function followed() {
  // The provinces (for the map), the path down to the current area, and its children.
  const code = current();
  const areas = new Set(["TH*", ...chainOf(code)]);
  if (levelOf(code) !== "village") areas.add(`${code}*`);
  return [...areas].join(",");
}

function connect() {
  if (state.source) state.source.close();
  state.areas = new Map();
  state.updated.clear();
  state.connected = false;
  const params = new URLSearchParams({ areas: followed(), mask: state.mask, card: state.card });
  if (state.year) params.set("year", state.year);
  const source = new EventSource(`/v1/stream?${params}`);
  state.source = source;
  source.addEventListener("area", (event) => {
    const area = JSON.parse(event.data);
    state.areas.set(area.area_code, area);
    if (state.connected) {
      state.updated.add(area.area_code);
      state.lastUpdate = Date.now();
    }
    if (area.area_code === current()) scheduleYears();
    scheduleRender();
  });
  source.addEventListener("ready", (event) => {
    const ready = JSON.parse(event.data);
    state.connected = true;
    state.year ??= ready.survey_year;
    state.lastUpdate ??= Date.now();
    scheduleRender();
  });
  source.onerror = () => {
    state.connected = false; // EventSource reconnects by itself, with Last-Event-ID
    renderFreshness();
  };
  renderFreshness();
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

let yearsTimer = null;
function scheduleYears() {
  clearTimeout(yearsTimer);
  yearsTimer = setTimeout(fetchYears, 1000);
}

async function getJson(url) {
  const response = await fetch(url);
  return response.ok ? response.json() : null;
}

async function fetchYears() {
  const params = new URLSearchParams({ mask: state.mask, card: state.card });
  state.years = await getJson(`/v1/areas/${current()}/years?${params}`);
  renderYears();
}

async function fetchPublished() {
  state.published = undefined;
  if (state.year === COMPARED_YEAR) {
    state.published = await getJson(`/v1/tpmap/${COMPARED_YEAR}/${current()}?mask=${state.mask}`);
  }
  renderCompare();
}

async function fetchCatalogue() {
  state.catalogue = await getJson(`/dashboard/catalogue.json?year=${state.year ?? COMPARED_YEAR}`);
  renderIndicators();
}

async function pollFreshness() {
  try {
    state.freshness = await getJson("/v1/freshness");
  } catch {
    state.freshness = null;
  }
  renderFreshness();
}

function go(code) {
  state.path = chainOf(code);
  writeHash();
  connect();
  fetchYears();
  fetchPublished();
  render();
}

function refilter() {
  writeHash();
  connect();
  fetchYears();
  fetchPublished();
  render();
}

// --- rendering -------------------------------------------------------------------------------

function render() {
  renderTexts();
  renderCrumbs();
  renderSummary();
  renderProgress();
  renderDimensions();
  renderChildren();
  renderIndicators();
  renderMap();
  renderYears();
  renderCompare();
  renderFreshness();
  state.updated.clear();
}

function renderTexts() {
  document.documentElement.lang = state.lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t()[node.dataset.i18n];
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === state.lang));
  }
  for (const label of document.querySelectorAll("#mask label")) {
    label.lastChild.textContent = ` ${t().dimensions[label.dataset.dimension]}`;
  }
  for (const label of document.querySelectorAll("#card label")) {
    label.lastChild.textContent = ` ${t()[CARDS[label.dataset.card]]}`;
  }
}

function renderCrumbs() {
  const crumbs = state.path.flatMap((code, i) => {
    const link = el("a", { "data-code": code, onclick: () => go(code) }, nameOf(code));
    return i ? [el("span", { class: "sep" }, "›"), link] : [link];
  });
  $("crumbs").replaceChildren(...crumbs);
}

function renderSummary() {
  const code = current();
  const area = state.areas.get(code);
  $("area-title").textContent = `${nameOf(code)} (${code})`;
  if (!area) {
    $("figures").replaceChildren(el("dt", {}, state.connected ? t().noData : t().connecting));
    $("mpi").replaceChildren();
    return;
  }
  const flash = state.updated.has(code) ? "updated" : null;
  $("figures").replaceChildren(
    ...SUMMARY.flatMap((name) => [
      el("dt", {}, t().figures[name]),
      el("dd", { "data-figure": name, class: [HEADLINE.has(name) ? "headline" : "", flash].filter(Boolean).join(" ") },
        fmtFigure(name, area[name])),
    ]),
  );
  $("mpi").replaceChildren(
    el("tr", {}, el("th"), el("th", { class: "num" }, "H"), el("th", { class: "num" }, "A"), el("th", { class: "num" }, "M0")),
    ...[["mpiPoor", area.mpi_poor], ["mpiTarget", area.mpi_target]].map(([label, mpi]) =>
      el("tr", { "data-mpi": label },
        el("td", {}, t()[label]),
        ...["H", "A", "M0"].map((k) => el("td", { class: "num" }, fmt(mpi[k], 4))),
      ),
    ),
  );
}

function renderProgress() {
  const progress = state.areas.get(current())?.progress;
  $("progress").hidden = !progress;
  if (!progress) return;
  const total = PROGRESS_BAR.reduce((sum, name) => sum + (progress[name] ?? 0), 0);
  $("progress-bar").replaceChildren(
    ...PROGRESS_BAR.map((name) =>
      el("span", {
        class: name,
        title: `${t().progressFigures[name]}: ${fmt(progress[name])}`,
        style: `width:${total ? (100 * progress[name]) / total : 0}%`,
      }),
    ),
  );
  $("progress-figures").replaceChildren(
    ...(progress.cases
      ? PROGRESS_SHOWN.flatMap((name) => [
          el("dt", {}, t().progressFigures[name]),
          el("dd", { "data-progress": name }, fmt(progress[name])),
        ])
      : [el("dt", {}, t().noProgress)]),
  );
}

function renderDimensions() {
  const area = state.areas.get(current());
  const values = DIMENSIONS.map((d) => area?.target_by_dimension?.[d] ?? 0);
  const max = Math.max(...values);
  $("dimension-table").replaceChildren(
    ...DIMENSIONS.map((d, i) =>
      el("tr", { "data-dimension": d },
        el("td", {}, t().dimensions[d]),
        el("td", { class: "num" }, fmt(values[i])),
        bar(values[i], max),
      ),
    ),
  );
}

function childRows() {
  const code = current();
  const rows = [...state.areas.values()].filter((a) => parentOf(a.area_code) === code);
  const { key, order } = state.sort;
  const value = (a) => (key === "name" ? nameOf(a.area_code) : key === "area_code" ? a.area_code : a[key]);
  rows.sort((a, b) => {
    const x = value(a);
    const y = value(b);
    const c = typeof x === "string" ? x.localeCompare(y, state.lang) : x - y;
    return (order === "asc" ? c : -c) || a.area_code.localeCompare(b.area_code);
  });
  return rows;
}

function sortBy(key) {
  const same = state.sort.key === key;
  state.sort = { key, order: same && state.sort.order === "desc" ? "asc" : same ? "desc" : key === "name" || key === "area_code" ? "asc" : "desc" };
  renderChildren();
}

function renderChildren() {
  const level = levelOf(current());
  $("children").hidden = level === "village";
  if (level === "village") return;
  $("children-title").textContent = t().children[level];
  const header = (key, label, numeric) =>
    el("th", {
      "data-sort": key,
      class: numeric ? "num" : null,
      "aria-sort": state.sort.key === key ? (state.sort.order === "asc" ? "ascending" : "descending") : null,
      onclick: () => sortBy(key),
    }, label);
  const rows = childRows();
  const max = Math.max(0, ...rows.map((r) => r.target_persons));
  $("children-table").replaceChildren(
    el("thead", {}, el("tr", {},
      header("name", t().area), header("area_code", t().code),
      ...CHILD_COLUMNS.map((name) => header(name, t().figures[name], true)),
      el("th"),
    )),
    el("tbody", {}, ...rows.map((area) =>
      el("tr", {
        "data-code": area.area_code,
        class: state.updated.has(area.area_code) ? "updated" : null,
        onclick: () => go(area.area_code),
      },
        el("td", {}, nameOf(area.area_code)),
        el("td", {}, area.area_code),
        ...CHILD_COLUMNS.map((name) => el("td", { class: "num", "data-figure": name }, fmtFigure(name, area[name]))),
        bar(area.target_persons, max),
      ),
    )),
  );
}

function renderIndicators() {
  const area = state.areas.get(current());
  const indicators = state.catalogue?.indicators ?? [];
  const max = Math.max(0, ...indicators.map((i) => area?.indicator_failed?.[i.number] ?? 0));
  $("indicator-table").replaceChildren(
    el("tr", {},
      el("th", {}, "#"), el("th", {}, t().indicator),
      el("th", {}, t().dimension),
      el("th", { class: "num" }, t().figures.indicator_failed),
      el("th", { class: "num" }, t().figures.target_by_indicator),
      el("th"),
    ),
    ...indicators.map((indicator) => {
      const failed = area?.indicator_failed?.[indicator.number] ?? 0;
      return el("tr", { "data-indicator": indicator.number },
        el("td", {}, indicator.number),
        el("td", {}, state.lang === "en" ? indicator.label_en : indicator.label_th),
        el("td", {}, indicator.dimension ? t().dimensions[indicator.dimension] : "–"),
        el("td", { class: "num" }, fmt(failed)),
        el("td", { class: "num" }, fmt(area?.target_by_indicator?.[indicator.number] ?? 0)),
        bar(failed, max),
      );
    }),
  );
}

function quantileBreaks(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return [1, 2, 3, 4].map((q) => sorted[Math.floor((q * sorted.length) / PALETTE.length)] ?? 0);
}

function renderMap() {
  if (!state.map) return;
  const provinces = [...state.areas.values()].filter((a) => a.level === "province");
  const breaks = quantileBreaks(provinces.map((a) => a.target_rate));
  const colour = (rate) => PALETTE[breaks.filter((b) => rate > b).length];
  const selected = state.path[1];
  for (const path of state.map.querySelectorAll("path[data-code]")) {
    const area = state.areas.get(path.dataset.code);
    path.style.fill = area ? colour(area.target_rate) : "#e9ecef";
    path.classList.toggle("selected", path.dataset.code === selected);
    path.querySelector("title").textContent = `${nameOf(path.dataset.code)}: ${area ? fmtFigure("target_rate", area.target_rate) : t().noData}`;
  }
  const bounds = [0, ...breaks];
  $("legend").replaceChildren(
    ...PALETTE.map((c, i) =>
      el("span", {}, el("i", { style: `background:${c}` }), i < 4 ? `≤ ${fmt(bounds[i + 1], 2)}` : `> ${fmt(bounds[4], 2)}`),
    ),
  );
}

async function loadMap() {
  try {
    const { default: thailand } = await import(MAP_MODULE);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", thailand.viewBox);
    svg.setAttribute("role", "img");
    for (const location of thailand.locations) {
      const path = document.createElementNS(ns, "path");
      path.setAttribute("d", location.path);
      if (WATER.has(location.id)) {
        path.classList.add("water");
      } else {
        const code = PROVINCE_CODE[location.id];
        path.dataset.code = code;
        path.append(document.createElementNS(ns, "title"));
        path.addEventListener("click", () => go(code));
      }
      svg.append(path);
    }
    $("map").replaceChildren(svg);
    state.map = svg;
    renderMap();
  } catch (error) {
    $("map").textContent = `${t().noData} (make assets): ${error.message}`;
  }
}

function renderYears() {
  const years = state.years?.years ?? [];
  const max = Math.max(0, ...years.map((y) => y.target_persons));
  $("years-table").replaceChildren(
    el("tr", {},
      el("th", {}, t().year),
      ...["persons_surveyed", "poor_persons", "target_persons", "target_rate"].map((name) =>
        el("th", { class: "num" }, t().figures[name]),
      ),
      el("th"),
    ),
    ...years.map((y) =>
      el("tr", { "data-year": y.survey_year, "aria-current": y.survey_year === state.year ? "true" : null },
        el("td", {}, y.survey_year),
        ...["persons_surveyed", "poor_persons", "target_persons", "target_rate"].map((name) =>
          el("td", { class: "num" }, fmtFigure(name, y[name])),
        ),
        bar(y.target_persons, max),
      ),
    ),
  );
}

function renderCompare() {
  $("compare").hidden = state.year !== COMPARED_YEAR;
  if (state.year !== COMPARED_YEAR) return;
  const ours = state.areas.get(current());
  const theirs = state.published;
  const note = state.card !== "all" ? t().compareCard : theirs === null ? t().compareMissing : t().compareNote;
  $("compare-note").textContent = note;
  if (!theirs || state.card !== "all") {
    $("compare-table").replaceChildren();
    return;
  }
  const rows = [
    ...COMPARED.map((name) => [t().figures[name], name, theirs[name], ours?.[name]]),
    ...DIMENSIONS.map((d) => [
      `${t().figures.target_persons}: ${t().dimensions[d]}`, d,
      theirs.target_by_dimension?.[d], ours?.target_by_dimension?.[d],
    ]),
  ];
  $("compare-table").replaceChildren(
    el("tr", {}, el("th"), el("th", { class: "num" }, t().tpmap), el("th", { class: "num" }, t().platform),
      el("th", { class: "num" }, t().difference)),
    ...rows.map(([label, name, tpmap, platform]) => {
      const diff = tpmap != null && platform != null ? platform - tpmap : null;
      return el("tr", { "data-compare": name },
        el("td", {}, label),
        el("td", { class: "num" }, fmtFigure(name, tpmap)),
        el("td", { class: "num" }, fmtFigure(name, platform)),
        el("td", { class: `num ${diff > 0 ? "diff-pos" : diff < 0 ? "diff-neg" : ""}` }, fmtFigure(name, diff)),
      );
    }),
  );
}

function renderFreshness() {
  const node = $("freshness");
  const fresh = state.freshness;
  if (!state.connected) {
    node.dataset.state = state.lastUpdate ? "offline" : "connecting";
    node.textContent = state.lastUpdate ? t().offline : t().connecting;
    return;
  }
  const lag = fresh?.consumer_lag;
  node.dataset.state = lag ? "behind" : "live";
  const received = state.lastUpdate ? Math.round((Date.now() - state.lastUpdate) / 1000) : null;
  const newest = fresh?.newest_event_age_seconds;
  node.textContent = [
    t().live,
    received == null ? null : `${t().received} ${fmt(received)} ${t().secondsAgo}`,
    newest == null ? null : `${t().newest} ${fmt(newest)} ${t().secondsAgo}`,
    lag == null ? null : `${t().lag} ${fmt(lag)}`,
  ].filter(Boolean).join(" · ");
}

// --- controls --------------------------------------------------------------------------------

function buildControls(years) {
  $("year").replaceChildren(...years.map((y) => el("option", { value: y, selected: y === state.year }, y)));
  $("year").addEventListener("change", (event) => {
    state.year = Number(event.target.value);
    fetchCatalogue();
    refilter();
  });
  $("mask").append(
    ...DIMENSIONS.map((d, i) =>
      el("label", { "data-dimension": d },
        el("input", {
          type: "checkbox", value: d, checked: state.mask[i] === "1",
          onchange: (event) => {
            const bits = [...state.mask];
            bits[i] = event.target.checked ? "1" : "0";
            if (!bits.includes("1")) {
              event.target.checked = true; // a mask needs at least one dimension
              return;
            }
            state.mask = bits.join("");
            refilter();
          },
        }),
        " ",
      ),
    ),
  );
  $("card").append(
    ...Object.keys(CARDS).map((card) =>
      el("label", { "data-card": card },
        el("input", {
          type: "radio", name: "card", value: card, checked: card === state.card,
          onchange: () => {
            state.card = card;
            refilter();
          },
        }),
        " ",
      ),
    ),
  );
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.addEventListener("click", () => {
      state.lang = button.dataset.lang;
      writeHash();
      render();
    });
  }
}

async function start() {
  readHash();
  const counted = (await getJson("/v1/years"))?.years ?? [];
  if (!counted.includes(state.year)) state.year = counted.at(-1) ?? null;
  buildControls(counted);
  writeHash();
  connect();
  render();
  await Promise.all([loadMap(), fetchCatalogue(), fetchYears(), fetchPublished(), pollFreshness()]);
  setInterval(pollFreshness, 2000);
}

start();
