// The forecast page: reads the JSON API (/model, /forecast, /history) and draws the
// history, the forecast with its intervals, the backtest and the numbers. Text from
// the server (series names, file names, messages) is only ever set as textContent,
// never parsed as HTML: an uploaded CSV decides some of it.
"use strict";

(function () {
  const { make, byId: $ } = window.Dom;
  const MAX_HORIZON = 60;
  const INTERVALS = [["lower_95", "upper_95", "95%"], ["lower_80", "upper_80", "80%"]];
  const NAIVE = "seasonal-naive";
  const numberFormat = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1,
                                                          maximumFractionDigits: 1 });
  // Sales in a large unit (millions: 0.0024 a month) would all read 0.0 to one
  // decimal; under 100 they keep four significant digits instead.
  const smallNumberFormat = new Intl.NumberFormat(undefined,
                                                  { maximumSignificantDigits: 4 });
  // A phone-sized screen starts with the last five years: all of a long history
  // would squeeze each year into a few pixels.
  const NARROW_WINDOW = window.matchMedia("(max-width: 40rem)").matches ? 60 : 0;
  // `meta` is /model without the per-series parts, which for thousands of series are
  // tens of megabytes; `detail` is /model for the series shown, read with its forecast.
  const state = { meta: null, detail: null, series: null, horizon: 12, forecast: null,
                  history: null, window: NARROW_WINDOW, request: 0, notice: "" };

  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const options = { method, headers: { Accept: "application/json" } };
    if (body instanceof FormData) {
      options.body = body;
    } else if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (e) {
      throw new ApiError(`The service did not answer ${method} ${path} (${e.message}).`,
        0, "network");
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const message = data && data.error ? data.error
        : `${method} ${path} answered ${response.status}.`;
      throw new ApiError(message, response.status, data && data.code);
    }
    return data;
  }

  function say(text) {
    $("status").textContent = text;
  }

  function showProblem(text) {
    const box = $("problem");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function formatNumber(value) {
    if (typeof value !== "number") return "–";
    return (Math.abs(value) < 100 ? smallNumberFormat : numberFormat).format(value);
  }

  function percent(value) {
    return typeof value === "number" ? `${value.toFixed(1)}%` : "undefined";
  }

  // Model facts --------------------------------------------------------------------

  function seriesInfo(name) {
    return (state.meta.series || []).find((s) => s.name === name) || null;
  }

  function renderFacts() {
    const meta = state.meta;
    const data = meta.data || {};
    const created = meta.created_at ? new Date(meta.created_at) : null;
    const facts = [
      ["Version", meta.version],
      ["Trained", created && !isNaN(created)
        ? `${created.toISOString().slice(0, 16).replace("T", " ")} UTC` : "unknown"],
      ["Model", meta.model_kind || "unknown"],
      ["Data", data.source ? `${data.source}: ${data.rows} rows, ${data.first} to ${data.last}`
        : "unknown"],
      ["Series", String((meta.series || []).length)],
      ...overallFacts(meta.metrics),
    ];
    const list = $("model-facts");
    list.textContent = "";
    for (const [term, value] of facts) {
      const row = make("div");
      row.append(make("dt", term), make("dd", value));
      list.append(row);
    }
  }

  // The served models over every series at once, when training recorded it.
  function overallFacts(metrics) {
    const facts = [];
    if (!metrics || typeof metrics !== "object") return facts;
    if (typeof metrics.relative_rmse === "number") {
      const change = (metrics.relative_rmse - 1) * 100;
      facts.push(["Backtest RMSE vs seasonal naive", `${metrics.relative_rmse.toFixed(2)}× `
        + `(${Math.abs(change).toFixed(0)}% ${change <= 0 ? "lower" : "higher"})`]);
    }
    const hits = [["80", metrics.coverage_80], ["95", metrics.coverage_95]]
      .filter(([, value]) => typeof value === "number")
      .map(([level, value]) => `${level}%: ${(value * 100).toFixed(0)}%`);
    if (hits.length) facts.push(["Intervals held the actual", hits.join(" · ")]);
    return facts;
  }

  // Series picker ------------------------------------------------------------------

  function fillSeries(filter) {
    const select = $("series");
    const names = (state.meta.series || []).map((s) => s.name);
    const wanted = (filter || "").trim().toLowerCase();
    const shown = wanted ? names.filter((n) => n.toLowerCase().includes(wanted)) : names;
    const count = $("filter-count");
    if (shown.length === 0) {
      count.textContent = `No series matches “${filter}”.`;
      return;
    }
    count.textContent = wanted ? `${shown.length} of ${names.length} series` : "";
    select.textContent = "";
    for (const name of shown) select.append(new Option(name, name));
    if (!shown.includes(state.series)) {
      state.series = shown[0];
      scheduleUpdate();
    }
    select.value = state.series;
  }

  function setUpControls() {
    const names = (state.meta.series || []).map((s) => s.name);
    const fromLink = new URLSearchParams(location.hash.slice(1));
    const linked = fromLink.get("series");
    state.series = names.includes(linked) ? linked
      : names.includes(state.series) ? state.series : names[0];
    // A link to a series this version lacks shows another one: said once, in the
    // status line a screen reader announces.
    state.notice = linked && linked !== state.series
      ? `No series “${linked}” in this model; showing ${state.series}. ` : "";
    const horizon = Number(fromLink.get("horizon"));
    if (Number.isInteger(horizon) && horizon >= 1 && horizon <= MAX_HORIZON) {
      state.horizon = horizon;
    }
    $("horizon").value = String(state.horizon);
    $("filter-field").hidden = names.length < 8;
    $("series-filter").value = "";
    fillSeries("");
    $("series").disabled = false;
  }

  let updateTimer = null;
  function scheduleUpdate() {
    clearTimeout(updateTimer);
    updateTimer = setTimeout(update, 200);
  }

  function readHorizon() {
    const input = $("horizon");
    const value = Number(input.value);
    const valid = Number.isInteger(value) && value >= 1 && value <= MAX_HORIZON;
    input.setAttribute("aria-invalid", valid ? "false" : "true");
    // The hint is a live region: rewritten with the same words at every keystroke,
    // a screen reader would read it out each time.
    const hint = valid ? `1 to ${MAX_HORIZON}`
      : `Enter a whole number of months from 1 to ${MAX_HORIZON}.`;
    if ($("horizon-hint").textContent !== hint) $("horizon-hint").textContent = hint;
    return valid ? value : null;
  }

  // Forecast, history, chart -------------------------------------------------------

  async function update() {
    const id = ++state.request;
    const series = state.series;
    const horizon = state.horizon;
    history.replaceState(null, "", `#series=${encodeURIComponent(series)}&horizon=${horizon}`);
    say(`Loading ${series}…`);
    try {
      const [forecast, past, detail] = await Promise.all([
        api("POST", "/forecast", { series, horizon }),
        api("GET", `/history?series=${encodeURIComponent(series)}`).catch((e) => e),
        api("GET", `/model?series=${encodeURIComponent(series)}`).catch(() => null),
      ]);
      if (id !== state.request) return;
      state.forecast = forecast;
      state.detail = detail;
      state.history = past instanceof ApiError ? null : past.history;
      showProblem(past instanceof ApiError ? `History not shown: ${past.message}` : "");
      renderAll();
      say(`${state.notice}${series}: ${horizon}-month forecast from model `
        + `${forecast.model_version}.`);
      state.notice = "";
    } catch (e) {
      if (id !== state.request) return;
      showProblem(e.message);
      say("The forecast could not be loaded.");
    }
  }

  function renderAll() {
    renderGlance();
    renderChart();
    renderBacktest();
    renderTable();
  }

  // The metadata holding the shown series' evaluation and backtest.
  function seriesMeta() {
    return state.detail || state.meta;
  }

  function evaluationOf(series) {
    const evaluation = (seriesMeta().evaluation || {})[series];
    return evaluation && evaluation.scores ? evaluation : null;
  }

  // The model serving a series: training may choose one per series.
  function modelKind(series) {
    const evaluation = (seriesMeta().evaluation || {})[series];
    const info = seriesInfo(series);
    return (evaluation && evaluation.served) || (info && info.model)
      || state.meta.model_kind;
  }

  // How the scores were measured, in one sentence: a rolling-origin backtest when the
  // metadata describes one, else the single held-out stretch at the end.
  function protocolText(evaluation) {
    const backtest = evaluation.backtest;
    if (backtest && Array.isArray(backtest.origins) && backtest.origins.length) {
      const origins = backtest.origins;
      return `Backtest: ${backtest.months_scored ?? "?"} months scored, forecasting up to `
        + `${backtest.horizon} months ahead from ${origins.length} cut-offs (${origins[0]} `
        + `to ${origins[origins.length - 1]}), every model refitted at each cut-off.`;
    }
    return `Last ${evaluation.holdout_months} months held out; every model fitted on the `
      + `months up to ${evaluation.train_end}.`;
  }

  function renderGlance() {
    const box = $("glance");
    box.textContent = "";
    const evaluation = evaluationOf(state.series);
    if (!evaluation) {
      box.append(make("p", "No evaluation is recorded for this series.", "hint"));
      return;
    }
    const kind = modelKind(state.series);
    const own = evaluation.scores[kind] || Object.values(evaluation.scores)[0];
    const naive = evaluation.scores[NAIVE];
    if (!own) {
      box.append(make("p", "This series was too short to score.", "hint"));
      return;
    }
    const where = evaluation.backtest ? "Backtest" : "Holdout";
    const cards = [
      [`${where} MAPE`, percent(own.mape)],
      ["MASE", typeof own.mase === "number" ? own.mase.toFixed(2) : "undefined"],
      ["MAE", formatNumber(own.mae)],
    ];
    if (naive && naive.mae > 0) {
      const change = (own.mae / naive.mae - 1) * 100;
      cards.push(["vs seasonal naive (MAE)",
        `${Math.abs(change).toFixed(0)}% ${change <= 0 ? "lower" : "higher"}`]);
    }
    for (const [label, value] of cards) {
      const card = make("div", null, "glance-card");
      card.append(make("span", label, "glance-label"), make("span", value, "glance-value"));
      box.append(card);
    }
    box.append(make("p", `Served model: ${kind}. ${where} scores; how they were measured `
      + "is under “Backtest against seasonal naive”.", "hint"));
  }

  function intervalKeys(rows) {
    return INTERVALS.filter(([low, high]) => rows.length > 0
      && rows.every((r) => typeof r[low] === "number" && typeof r[high] === "number"));
  }

  function backtestLines(series) {
    const found = findBacktest(series);
    if (!found) return [];
    const kind = modelKind(series);
    const lines = [];
    for (const [name, className, label] of [[kind, "backtest-model", `Backtest: ${kind}`],
      [NAIVE, "backtest-naive", "Backtest: seasonal naive"]]) {
      const points = found.rows.filter((r) => typeof r[name] === "number")
        .map((r) => ({ x: SalesChart.monthIndex(r.date), y: r[name],
                       title: `${r.date.slice(0, 7)} ${label}: ${formatNumber(r[name])}` }));
      if (points.length > 0) lines.push({ kind: "line", className, label, points });
    }
    return lines;
  }

  function renderChart() {
    const rows = state.forecast.forecast;
    const past = state.window ? (state.history || []).slice(-state.window)
      : state.history || [];
    const layers = [];
    for (const [low, high, label] of intervalKeys(rows)) {
      layers.push({ kind: "band", className: `band-${label.slice(0, 2)}`,
                    label: `${label} interval`,
                    points: rows.map((r) => ({ x: SalesChart.monthIndex(r.date),
                                               low: r[low], high: r[high] })) });
    }
    layers.push({ kind: "line", className: "history", label: "Sales (history)",
                  points: past.map((r) => ({ x: SalesChart.monthIndex(r.date), y: r.sales })) });
    layers.push(...backtestLines(state.series));
    layers.push({ kind: "line", className: "forecast", label: "Forecast", markers: true,
                  points: rows.map((r) => ({
                    x: SalesChart.monthIndex(r.date), y: r.sales,
                    title: `${r.date.slice(0, 7)} forecast: ${formatNumber(r.sales)}` })) });

    const first = rows[0].date.slice(0, 7);
    const last = rows[rows.length - 1].date.slice(0, 7);
    const historyText = past.length
      ? `History ${past[0].date.slice(0, 7)} to ${past[past.length - 1].date.slice(0, 7)}, `
        + `${past.length} months. ` : "History not available. ";
    SalesChart.render($("chart"), {
      title: `${state.series}: monthly sales and a ${rows.length}-month forecast`,
      description: `${historyText}Forecast ${first} to ${last}; the table below lists `
        + "every forecast number.",
      layers,
      marker: SalesChart.monthIndex(rows[0].date) - 0.5,
    });
    renderLegend(layers);
  }

  function renderLegend(layers) {
    const legend = $("legend");
    legend.textContent = "";
    for (const layer of layers) {
      if (layer.points.length === 0) continue;
      const item = make("li");
      item.append(make("span", null, `swatch ${layer.className}`), make("span", layer.label));
      legend.append(item);
    }
  }

  // Backtest -----------------------------------------------------------------------

  // Per-month backtest forecasts for a series, if the model's metadata has them:
  // {rows: [{date, actual, <kind>: value, ...}]}, or null.
  function findBacktest(series) {
    const backtest = seriesMeta().backtest;
    if (!backtest || typeof backtest !== "object") return null;
    const entry = (backtest.series && backtest.series[series]) || backtest[series];
    if (!entry) return null;
    const rows = Array.isArray(entry) ? entry : entry.rows || entry.forecasts;
    if (!Array.isArray(rows) || rows.length === 0 || typeof rows[0].date !== "string") {
      return null;
    }
    return { rows };
  }

  function scoresTable(scores, kind, captionText) {
    const kinds = [kind, ...Object.keys(scores).filter((k) => k !== kind)]
      .filter((k) => scores[k]);
    const metrics = [["rmse", "RMSE"], ["mae", "MAE"], ["mape", "MAPE"], ["smape", "sMAPE"],
      ["mase", "MASE"]].filter(([key]) => kinds.some((k) => key in scores[k]));
    const table = make("table", null, "scores");
    table.append(make("caption", captionText));
    const head = make("tr");
    head.append(make("th", "Model"));
    for (const [, label] of metrics) head.append(make("th", label));
    const thead = make("thead");
    thead.append(head);
    table.append(thead);
    const body = make("tbody");
    for (const k of kinds) {
      const row = make("tr", null, k === kind ? "chosen" : "");
      const name = make("th", k === kind ? `${k} (served)` : k);
      name.scope = "row";
      row.append(name);
      for (const [key] of metrics) {
        const value = scores[k][key];
        const text = value === null || value === undefined ? "undefined"
          : key === "mape" || key === "smape" ? percent(value)
            : key === "mase" ? value.toFixed(2) : formatNumber(value);
        row.append(make("td", text, "number"));
      }
      body.append(row);
    }
    table.append(body);
    return table;
  }

  function renderBacktest() {
    const box = $("backtest");
    box.textContent = "";
    $("series-report").href = `/report?series=${encodeURIComponent(state.series)}`;
    const evaluation = evaluationOf(state.series);
    if (!evaluation) {
      box.append(make("p", "This model version records no backtest for the series."));
      return;
    }
    const kind = modelKind(state.series);
    const own = evaluation.scores[kind];
    const naive = evaluation.scores[NAIVE];
    if (own && naive && naive.mae > 0) {
      const ratio = own.mae / naive.mae;
      const where = evaluation.backtest ? "On the backtest" : "On the held-out months";
      const verdict = ratio < 1
        ? `${where} the served model's error (MAE) is ${((1 - ratio) * 100).toFixed(0)}% `
          + "lower than seasonal naive's (the same month a year earlier)."
        : `${where} the served model's error (MAE) is ${((ratio - 1) * 100).toFixed(0)}% `
          + "higher than seasonal naive's: the simple baseline did better.";
      box.append(make("p", verdict, ratio < 1 ? "verdict good" : "verdict bad"));
    }
    if (evaluation.reason) box.append(make("p", `Why ${kind} serves: ${evaluation.reason}`));
    const wrap = make("div", null, "table-wrap");
    wrap.append(scoresTable(evaluation.scores, kind, protocolText(evaluation)));
    box.append(wrap);
    const found = findBacktest(state.series);
    if (found) {
      box.append(make("p", `The chart shows the backtest forecasts for ${found.rows.length} `
        + "months next to the history.", "hint"));
    }
  }

  // Table, copy, download ----------------------------------------------------------

  function columnsOf(rows) {
    const columns = [["date", "Month"], ["sales", "Forecast"]];
    for (const [low, high, label] of intervalKeys(rows).reverse()) {
      columns.push([low, `${label} lower`], [high, `${label} upper`]);
    }
    return columns;
  }

  function renderTable() {
    const rows = state.forecast.forecast;
    const columns = columnsOf(rows);
    const table = $("forecast-table");
    $("table-caption").textContent = `${state.series}: forecast for ${rows.length} months, `
      + `model ${state.forecast.model_version}`;
    const head = make("tr");
    for (const [, label] of columns) head.append(make("th", label));
    table.tHead.textContent = "";
    table.tHead.append(head);
    const body = table.tBodies[0];
    body.textContent = "";
    for (const r of rows) {
      const row = make("tr");
      for (const [key] of columns) {
        row.append(key === "date" ? make("th", r.date.slice(0, 7))
          : make("td", formatNumber(r[key]), "number"));
      }
      row.firstChild.scope = "row";
      body.append(row);
    }
    $("copy-table").disabled = false;
    $("download-csv").disabled = false;
  }

  // Every field of the /forecast rows with raw values, not the formatted ones: a
  // spreadsheet or program reading them gets exactly what /forecast returned (a
  // bound the version has no interval for is an empty cell).
  function delimited(separator) {
    const rows = state.forecast.forecast;
    const keys = Object.keys(rows[0]);
    const cell = (value) => (value === null || value === undefined ? "" : String(value));
    return [keys.join(separator),
      ...rows.map((r) => keys.map((k) => cell(r[k])).join(separator))].join("\n") + "\n";
  }

  async function copyTable() {
    const text = delimited("\t");
    try {
      await navigator.clipboard.writeText(text);
    } catch (e) {
      // No clipboard permission (an insecure origin): copy through a selection.
      const area = make("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    $("table-note").textContent = `Copied ${state.forecast.forecast.length} rows, `
      + "tab-separated.";
  }

  function downloadCsv() {
    const blob = new Blob([delimited(",")], { type: "text/csv" });
    const link = make("a");
    const safe = state.series.replace(/[^A-Za-z0-9._-]+/g, "_");
    link.href = URL.createObjectURL(blob);
    link.download = `forecast-${safe}-${state.forecast.forecast.length}m.csv`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    $("table-note").textContent = `Downloaded ${link.download}.`;
  }

  // Loading the model --------------------------------------------------------------

  async function loadModel(attempt = 0) {
    try {
      state.meta = await api("GET", "/model?series=");
    } catch (e) {
      if (e.status === 503 && attempt < 150) {
        say(`Waiting for a model: ${e.message}`);
        setTimeout(() => loadModel(attempt + 1), 2000);
        return;
      }
      showProblem(e.message);
      say("The model could not be loaded.");
      return;
    }
    renderFacts();
    setUpControls();
    await update();
  }

  // Uploads ------------------------------------------------------------------------

  // Unchecked boxes are left out by FormData, which is what the server expects.
  function uploadForm() {
    return new FormData($("upload-form"));
  }

  function listSection(title, items) {
    const section = make("div");
    section.append(make("h4", title));
    const list = make("ul");
    for (const item of items) list.append(make("li", item));
    section.append(list);
    return section;
  }

  function renderParse(summary, heading) {
    const box = $("upload-result");
    box.textContent = "";
    box.append(make("h3", heading));
    const months = summary.series.map((s) => s.months).reduce((a, b) => a + b, 0);
    const firsts = summary.series.map((s) => s.first).sort();
    const lasts = summary.series.map((s) => s.last).sort();
    box.append(make("p", `${summary.source}: ${summary.rows} rows usable, `
      + `${summary.series.length} series (${months} months), `
      + `${firsts[0].slice(0, 7)} to ${lasts[lasts.length - 1].slice(0, 7)}.`));

    const table = make("table", null, "scores");
    table.append(make("caption", "Series that training would use"));
    const head = make("tr");
    for (const label of ["Series", "First month", "Last month", "Months"]) {
      head.append(make("th", label));
    }
    const thead = make("thead");
    thead.append(head);
    table.append(thead);
    const body = make("tbody");
    for (const s of summary.series) {
      const row = make("tr");
      row.append(make("th", s.name), make("td", s.first.slice(0, 7)),
        make("td", s.last.slice(0, 7)), make("td", s.months, "number"));
      body.append(row);
    }
    table.append(body);
    const wrap = make("div", null, "table-wrap");
    wrap.append(table);
    box.append(wrap);

    if (summary.notes.length) box.append(listSection("Notes", summary.notes));
    const rejected = Object.entries(summary.rejected);
    if (rejected.length) {
      box.append(listSection(`Series left out (${rejected.length})`,
        rejected.map(([name, why]) => `${name}: ${why}`)));
    }
  }

  function renderUploadProblem(error) {
    const box = $("upload-result");
    box.textContent = "";
    const alert = make("div", null, "problem");
    alert.setAttribute("role", "alert");
    const titles = { invalid_data: "The file cannot be used",
                     not_promoted: "Trained, but not published",
                     store_unwritable: "Not published: the store cannot be written" };
    alert.append(make("h3", titles[error.code] || "The upload was refused"),
      make("p", error.message, "upload-error"));
    box.append(alert);
  }

  async function checkUpload(event) {
    event.preventDefault();
    const train = $("upload-train");
    train.disabled = true;
    if (!$("upload-file").files.length) {
      renderUploadProblem(new ApiError("Choose a CSV file first.", 0, "no_file"));
      return;
    }
    $("upload-result").textContent = "Reading the file…";
    try {
      const summary = await api("POST", "/upload/check", uploadForm());
      renderParse(summary, "Ready to train");
      train.disabled = false;
    } catch (e) {
      renderUploadProblem(e);
    }
  }

  async function waitForVersion(version, seconds) {
    const deadline = Date.now() + seconds * 1000;
    while (Date.now() < deadline) {
      const meta = await api("GET", "/model?series=").catch(() => null);
      if (meta && meta.version === version) return meta;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    return null;
  }

  async function trainUpload() {
    const button = $("upload-train");
    // Disabling the focused button would drop the keyboard focus to the top of the
    // page; it goes to the box where the progress and the outcome appear.
    $("upload-result").focus();
    button.disabled = true;
    $("upload-check").disabled = true;
    const note = make("p", "Training…");
    // The result box is a live region: the seconds counter stays out of what a
    // screen reader hears, or it would read the line out again every second.
    const clock = make("span");
    clock.setAttribute("aria-hidden", "true");
    note.append(clock);
    $("upload-result").append(note);
    const started = Date.now();
    const ticker = setInterval(() => {
      clock.textContent = ` ${Math.round((Date.now() - started) / 1000)} s `
        + "(about half a second per series on an idle core)";
    }, 1000);
    try {
      const result = await api("POST", "/upload/train", uploadForm()).finally(
        () => clearInterval(ticker));
      note.textContent = `Published model version ${result.version} (trained in `
        + `${result.seconds.toFixed(1)} s). Waiting for the service to serve it…`;
      const meta = await waitForVersion(result.version, result.reload_interval * 3 + 10);
      if (!meta) {
        note.textContent = `Published ${result.version}, but the service still serves `
          + "another version; reload the page in a few seconds.";
        return;
      }
      const dropped = result.dropped_series || [];
      note.textContent = `Now serving model version ${result.version}.`
        + (dropped.length ? ` It does not have ${dropped.length} series the previous `
          + `version answered (${dropped.slice(0, 5).join(", ")}`
          + `${dropped.length > 5 ? ", …" : ""}); requests for them are now refused.`
          : "");
      // Somewhere to go from the box that holds the focus: without these links the
      // next Tab would leave the page, as nothing focusable follows the upload.
      const next = make("p", "See ");
      const toChart = make("a", "its forecast");
      toChart.href = "#chart-heading";
      // The address keeps the series and horizon shown (#series=…&horizon=…), so
      // following the link moves the focus instead of replacing them.
      toChart.addEventListener("click", (event) => {
        event.preventDefault();
        const heading = $("chart-heading");
        heading.tabIndex = -1;
        heading.focus();
        heading.scrollIntoView();
      });
      // Known shortcoming: another worker may serve the previous version for up to
      // its reload interval after this one switched, and its report with it.
      const toReport = make("a", "its training report");
      toReport.href = "/report";
      next.append(toChart, " or ", toReport, ".");
      $("upload-result").append(next);
      state.meta = meta;
      state.series = result.summary.series[0].name;
      location.hash = "";
      renderFacts();
      setUpControls();
      await update();
    } catch (e) {
      renderUploadProblem(e);
    } finally {
      $("upload-check").disabled = false;
    }
  }

  // Wiring -------------------------------------------------------------------------

  function start() {
    $("series").addEventListener("change", (e) => {
      state.series = e.target.value;
      scheduleUpdate();
    });
    $("series-filter").addEventListener("input", (e) => fillSeries(e.target.value));
    $("series-filter").addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        $("series").focus();
      }
    });
    $("horizon").addEventListener("input", () => {
      const horizon = readHorizon();
      if (horizon !== null && horizon !== state.horizon) {
        state.horizon = horizon;
        scheduleUpdate();
      }
    });
    $("window").value = String(state.window);
    $("window").addEventListener("change", (e) => {
      state.window = Number(e.target.value);
      if (state.forecast) renderChart();
    });
    $("controls").addEventListener("submit", (e) => e.preventDefault());
    $("copy-table").addEventListener("click", copyTable);
    $("download-csv").addEventListener("click", downloadCsv);
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => state.forecast && renderChart(), 150);
    });
    if (document.body.dataset.uploads === "on") {
      $("upload-form").addEventListener("submit", checkUpload);
      $("upload-file").addEventListener("change", () => { $("upload-train").disabled = true; });
      $("upload-train").addEventListener("click", trainUpload);
    }
    loadModel();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
