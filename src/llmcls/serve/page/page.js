// The page to try a model: asks /v1/info about the run, sends the text to /v1/predict, draws the probabilities.
// Plain JS, no libraries, nothing fetched from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);

function headers() {
  const token = sessionStorage.getItem("llmcls-token");
  const h = { "Content-Type": "application/json" };
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

async function call(path, options) {
  const response = await fetch(path, { ...options, headers: headers() });
  if (response.status === 401) {
    $("token-row").hidden = false;
    throw new Error("this server needs a bearer token: enter it above");
  }
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function fmt(value) {
  return typeof value === "number" && !Number.isInteger(value) ? value.toFixed(4) : String(value);
}

function showInfo(info) {
  $("run-name").textContent = info.run;
  $("version").textContent = "llmcls " + info.llmcls_version + " · backend " + info.backend;
  const model = info.config.model;
  $("run-summary").textContent = info.labels.length + " labels (" + info.labels.join(", ") + ")" +
    (info.multi_label ? ", multi-label" : "") + (info.best_epoch ? " · best epoch " + info.best_epoch : "") +
    (model && model.hidden_size ? " · hidden " + model.hidden_size : "");
  const table = $("metrics");
  table.replaceChildren();
  for (const [split, values] of Object.entries(info.metrics)) {
    for (const [key, value] of Object.entries(values)) {
      const row = table.insertRow();
      row.insertCell().textContent = split + " " + key;
      row.insertCell().textContent = fmt(value);
    }
  }
  if (!table.rows.length) table.insertRow().insertCell().textContent = "no results yet";
  $("plots-card").hidden = info.plots.length === 0;
  for (const name of info.plots) loadPlot(name);
}

async function loadPlot(name) {
  try {  // fetched (not <img src>) so that the bearer token goes with it
    const blob = await (await call("/v1/plots/" + name)).blob();
    const img = document.createElement("img");
    img.alt = name;
    img.src = URL.createObjectURL(blob);
    $("plots").appendChild(img);
  } catch (e) { /* the metrics table says enough */ }
}

function showPrediction(prediction) {
  const chosen = new Set(prediction.labels || [prediction.label]);
  const result = $("result");
  result.replaceChildren();
  for (const { label, probability } of prediction.top_k) {
    const row = document.createElement("div");
    row.className = "row" + (chosen.has(label) ? " chosen" : "");
    row.dataset.label = label;
    row.innerHTML = '<span class="name"></span><div class="track"><div class="fill"></div></div>' +
                    '<span class="prob"></span>';
    row.querySelector(".name").textContent = label;
    row.querySelector(".fill").style.width = (100 * probability).toFixed(1) + "%";
    row.querySelector(".prob").textContent = probability.toFixed(3);
    result.appendChild(row);
  }
}

let labelCount = 1;

async function submit(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  if (token) sessionStorage.setItem("llmcls-token", token);
  $("submit").disabled = true;
  $("status").textContent = "classifying…";
  $("status").className = "muted";
  try {
    const started = performance.now();
    const response = await call("/v1/predict", {
      method: "POST", body: JSON.stringify({ texts: [$("text").value], top_k: labelCount }),
    });
    const body = await response.json();
    showPrediction(body.predictions[0]);
    $("status").textContent = "answered in " + Math.round(performance.now() - started) + " ms";
    document.body.dataset.state = "answered";
  } catch (e) {
    $("status").textContent = e.message;
    $("status").className = "error";
    document.body.dataset.state = "error";
  } finally {
    $("submit").disabled = false;
  }
}

async function start() {
  $("predict-form").addEventListener("submit", submit);
  try {
    const info = await (await call("/v1/info")).json();
    labelCount = info.labels.length;
    showInfo(info);
  } catch (e) {
    $("run-summary").textContent = e.message;
    $("run-summary").className = "error";
  }
}

start();
