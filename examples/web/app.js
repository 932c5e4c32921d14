// The consent page's logic: per-purpose choices (off by default), a preview of the exact
// randomized report before it is sent, sending to a Veil collector, and withdrawal.
//
// The collector is `?collector=URL` or the page's own origin; it serves the protocol
// descriptor at /v1/protocol. The browser client is ./veil-ldp/ (scripts/build-web.sh).

import { VeilLdpClient, sendReports, MAX_BATCH_REPORTS } from "./veil-ldp/index.js";

/** The most ε this device may ever spend on the analytics protocol. */
const LIFETIME_EPSILON = 8;
const CHOICES_KEY = "example-product/privacy-choices";

const collector = new URLSearchParams(location.search).get("collector") ?? `${location.origin}/`;
const element = (id) => document.getElementById(id);

function loadChoices() {
  try {
    const stored = JSON.parse(localStorage.getItem(CHOICES_KEY) ?? "{}");
    return { analytics: stored.analytics === true, recommendations: stored.recommendations === true };
  } catch {
    return { analytics: false, recommendations: false };
  }
}

let choices = loadChoices();
let client = null;
let descriptor = null;
let pending = null;
let sent = 0;

function saveChoices() {
  localStorage.setItem(CHOICES_KEY, JSON.stringify(choices));
}

function say(text) {
  element("status").textContent = text;
}

function hex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(" ");
}

function showAnalytics() {
  const on = choices.analytics;
  element("consent-analytics").checked = on;
  element("analytics-share").hidden = !on;
  element("analytics-state").textContent = on
    ? "On: a randomized report is sent only when you press “Send this report”."
    : "Off: nothing is sent.";
  if (!on) {
    pending = null;
    element("preview-panel").hidden = true;
  }
  if (client) {
    const factor = Math.exp(client.epsilon).toFixed(1);
    element("analytics-privacy").textContent =
      `Each report is randomized on this device with ε = ${client.epsilon}: whatever a report says is at most ${factor} times more likely with your true country than with any other. ` +
      `This device will spend at most ε = ${client.lifetimeEpsilon} on it in total (so far: ${client.spentEpsilon}).`;
  }
}

function showRecommendations() {
  element("consent-recommendations").checked = choices.recommendations;
  element("recommendations-state").textContent = choices.recommendations ? "On." : "Off.";
}

/** Turns analytics off: nothing more is sent; what was sent stays in the totals. */
function withdraw() {
  choices.analytics = false;
  saveChoices();
  showAnalytics();
  say(
    "Sharing is off. Nothing more will be sent from this device. Reports already sent stay in the totals until they are deleted after 180 days; they cannot be linked to you.",
  );
}

async function start() {
  showRecommendations();
  showAnalytics();
  try {
    const response = await fetch(new URL("v1/protocol", collector), { credentials: "omit", cache: "no-store" });
    if (!response.ok) {
      throw new Error(`the collector answered ${response.status}`);
    }
    descriptor = await response.text();
    client = await VeilLdpClient.create({ descriptor, lifetimeEpsilon: LIFETIME_EPSILON });
  } catch (error) {
    say(`Sharing is unavailable right now (${error.message}). Nothing was sent.`);
    element("consent-analytics").disabled = true;
    return;
  }
  const select = element("country");
  for (const value of client.domainValues) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = value;
    select.append(option);
  }
  showAnalytics();
}

element("consent-analytics").addEventListener("change", (event) => {
  if (event.target.checked) {
    choices.analytics = true;
    saveChoices();
    showAnalytics();
    say("Sharing is on. Choose your country and look at the report before sending it.");
  } else {
    withdraw();
  }
});

element("consent-recommendations").addEventListener("change", (event) => {
  choices.recommendations = event.target.checked;
  saveChoices();
  showRecommendations();
  say(choices.recommendations ? "Suggestions are on." : "Suggestions are off.");
});

element("preview").addEventListener("click", () => {
  if (!choices.analytics || !client) return;
  try {
    pending = client.randomizeValue(element("country").value);
  } catch (error) {
    say(`No report was made: ${error.message}`);
    return;
  }
  element("preview-words").textContent = `This report says: ${client.describeReport(pending)}.`;
  element("preview-bytes").textContent = hex(pending);
  element("preview-panel").hidden = false;
  showAnalytics();
  element("send").focus();
});

element("send").addEventListener("click", async () => {
  if (!choices.analytics || pending === null) return;
  const report = pending;
  pending = null;
  element("preview-panel").hidden = true;
  try {
    sent += await sendReports(collector, [report]);
    say("Sent. Thank you.");
  } catch (error) {
    say(`Not sent: ${error.message}`);
  }
});

element("discard").addEventListener("click", () => {
  pending = null;
  element("preview-panel").hidden = true;
  say("The report was discarded; nothing was sent.");
});

element("withdraw").addEventListener("click", withdraw);

// For the end-to-end test: many visitors, each a fresh device with its own state in memory,
// reporting their country through the same consent. Nothing is made or sent while
// analytics is off, and a withdrawal stops a run between batches.
class MemoryStorage {
  #items = new Map();
  getItem(key) { return this.#items.get(key) ?? null; }
  setItem(key, value) { this.#items.set(key, String(value)); }
}

async function simulateVisitors(countries) {
  let count = 0;
  for (let start = 0; start < countries.length; start += MAX_BATCH_REPORTS / 10) {
    if (!choices.analytics || descriptor === null) break;
    const batch = [];
    for (const country of countries.slice(start, start + MAX_BATCH_REPORTS / 10)) {
      const device = await VeilLdpClient.create({
        descriptor,
        lifetimeEpsilon: LIFETIME_EPSILON,
        storage: new MemoryStorage(),
      });
      batch.push(device.randomizeValue(country));
    }
    if (!choices.analytics) break;
    count += await sendReports(collector, batch);
  }
  sent += count;
  return count;
}

window.veilDemo = {
  ready: start(),
  simulateVisitors,
  get sent() { return sent; },
};
