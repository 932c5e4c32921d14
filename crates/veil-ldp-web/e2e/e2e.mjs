// The consent page end to end in headless Chromium (run by scripts/web-e2e.sh, which starts
// the collector and checks what it stored).
//
//   node e2e.mjs --page DIR --port PORT --collector URL --chromium /usr/bin/chromium
//                --visitors N --bench-descriptors DIR --out RESULT.json
//
// Serves DIR (the page and the built client) on loopback, opens it with the collector in
// its query, and checks: the axe-core audit (no serious or critical violation), choices off
// by default, keyboard access, a phone-width layout, a preview before anything is sent,
// one report sent on request, N simulated visitors with known countries, a withdrawal
// after which nothing is sent. It times the randomizers in the page, and writes what it
// sent (per country) and measured to RESULT.json. Every wait has a timeout.

import { createServer } from "node:http";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from "node:fs";
import { extname, join, normalize } from "node:path";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);

function argument(name, fallback) {
  const at = process.argv.indexOf(name);
  if (at >= 0 && at + 1 < process.argv.length) return process.argv[at + 1];
  if (fallback === undefined) throw new Error(`missing ${name}`);
  return fallback;
}

const pageDir = argument("--page");
const collector = argument("--collector");
const executablePath = argument("--chromium", "/usr/bin/chromium");
const visitors = Number(argument("--visitors", "3000"));
const benchDir = argument("--bench-descriptors", "");
const resultPath = argument("--out");
const TIMEOUT = 60_000;

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

// A static server for the page, on loopback only.
const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".wasm": "application/wasm", ".json": "application/json" };
const server = createServer((request, response) => {
  const path = normalize(decodeURIComponent(new URL(request.url, "http://x").pathname)).replace(/^\/+/, "");
  if (path.includes("..")) {
    response.writeHead(403).end();
    return;
  }
  try {
    const body = readFileSync(join(pageDir, path === "" ? "index.html" : path));
    response.writeHead(200, { "Content-Type": types[extname(path)] ?? "application/octet-stream" }).end(body);
  } catch {
    response.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(Number(argument("--port", "0")), "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${server.address().port}`;
console.log(`page served at ${origin}`);

// A fresh profile; no network beyond loopback is used.
const profile = mkdtempSync(join(tmpdir(), "veil-e2e-profile-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  timeout: TIMEOUT,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
context.setDefaultTimeout(TIMEOUT);

const result = { origin, posts: [], axe: null, bench: {} };
try {
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
  // Every request to the collector, with when it was made relative to the withdrawal.
  let withdrawn = false;
  page.on("request", (request) => {
    if (request.url().startsWith(collector) && request.method() === "POST") {
      result.posts.push({ url: request.url(), afterWithdrawal: withdrawn, cookie: request.headers()["cookie"] ?? null });
    }
  });

  await page.goto(`${origin}/index.html?collector=${encodeURIComponent(collector)}`);
  await page.evaluate(() => window.veilDemo.ready);
  check(consoleErrors.length === 0, `no console errors: ${consoleErrors.join("; ")}`);

  // Accessibility: axe-core in the page.
  await page.addScriptTag({ content: readFileSync(require.resolve("axe-core/axe.min.js"), "utf8") });
  const axe = await page.evaluate(async () => {
    const report = await window.axe.run(document, { resultTypes: ["violations"] });
    return report.violations.map((violation) => ({ id: violation.id, impact: violation.impact, nodes: violation.nodes.length, help: violation.help }));
  });
  result.axe = axe;
  const serious = axe.filter((violation) => violation.impact === "serious" || violation.impact === "critical");
  check(serious.length === 0, `no serious accessibility violations: ${JSON.stringify(serious)}`);

  // Off by default, for every purpose.
  check(!(await page.isChecked("#consent-analytics")), "analytics is off by default");
  check(!(await page.isChecked("#consent-recommendations")), "recommendations are off by default");
  check(await page.isHidden("#analytics-share"), "nothing to send while off");

  // Readable on a phone: no horizontal scrolling at 360 px.
  await page.setViewportSize({ width: 360, height: 740 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `no horizontal scroll at 360 px (overflow ${overflow} px)`);

  // Keyboard: Tab reaches the analytics choice, Space turns it on.
  let reached = false;
  for (let presses = 0; presses < 20 && !reached; presses += 1) {
    await page.keyboard.press("Tab");
    reached = await page.evaluate(() => document.activeElement?.id === "consent-analytics");
  }
  check(reached, "the analytics choice is reachable with Tab");
  await page.keyboard.press("Space");
  check(await page.isChecked("#consent-analytics"), "Space turns analytics on");
  check(await page.isVisible("#analytics-share"), "the share panel shows once on");

  // The preview shows the report; nothing is sent until Send.
  await page.selectOption("#country", "DE");
  await page.click("#preview");
  await page.waitForSelector("#preview-panel:not([hidden])");
  const words = await page.textContent("#preview-words");
  const bytes = await page.textContent("#preview-bytes");
  check(/This report says: the answer "[A-Z]{2}"\./.test(words), `the preview names the answer: ${words}`);
  check(bytes.trim().split(" ").length >= 10, `the preview shows the bytes: ${bytes}`);
  check(result.posts.length === 0, "nothing was sent by the preview");
  await page.click("#send");
  await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("Sent"));
  check(result.posts.length === 1, "one report sent on Send");
  const spent = await page.textContent("#analytics-privacy");
  check(spent.includes("so far: 2"), `the page shows the epsilon spent: ${spent}`);

  // Simulated visitors with known countries: FR 40%, DE 30%, IT 20%, ES 10%, PL none.
  const pattern = ["FR", "FR", "FR", "FR", "DE", "DE", "DE", "IT", "IT", "ES"];
  const countries = Array.from({ length: visitors }, (_, index) => pattern[index % pattern.length]);
  const started = Date.now();
  const sentByVisitors = await page.evaluate((values) => window.veilDemo.simulateVisitors(values), countries);
  result.visitorSeconds = (Date.now() - started) / 1000;
  check(sentByVisitors === visitors, `every visitor's report was accepted (${sentByVisitors} of ${visitors})`);
  result.truth = { FR: 0, DE: 0, IT: 0, ES: 0, PL: 0 };
  for (const country of countries) result.truth[country] += 1;
  result.truth.DE += 1; // the report sent from the preview was made from DE
  result.sent = sentByVisitors + 1;

  // Withdraw: nothing more leaves the page.
  await page.click("#withdraw");
  withdrawn = true;
  check(!(await page.isChecked("#consent-analytics")), "withdrawing turns the choice off");
  const status = await page.textContent("#status");
  check(status.includes("Nothing more will be sent"), `the page says what withdrawal does: ${status}`);
  const afterWithdrawal = await page.evaluate(() => window.veilDemo.simulateVisitors(["FR", "DE", "IT"]));
  check(afterWithdrawal === 0, "nothing is made after withdrawal");
  await page.reload();
  await page.evaluate(() => window.veilDemo.ready);
  check(!(await page.isChecked("#consent-analytics")), "the withdrawal survives a reload");
  check(result.posts.every((post) => !post.afterWithdrawal), "no request after withdrawal");
  check(result.posts.every((post) => post.cookie === null), "no cookie sent to the collector");

  // The randomizers' speed in this browser: the WebAssembly client alone, then through
  // the wrapper (which also persists the device's state on every report).
  if (benchDir !== "") {
    for (const file of readdirSync(benchDir).filter((name) => name.endsWith(".json")).sort()) {
      const descriptor = readFileSync(join(benchDir, file), "utf8");
      result.bench[file.replace(/\.json$/, "")] = await page.evaluate(async (text) => {
        const module = await import("./veil-ldp/veil_ldp_web.js");
        const wrapper = await import("./veil-ldp/index.js");
        await wrapper.load();
        const rounds = 20000;
        const client = new module.LdpClient(text, undefined, 1e9);
        const size = client.domainValues.length || 64;
        for (let index = 0; index < 2000; index += 1) client.randomizeIndex(index % size);
        let start = performance.now();
        for (let index = 0; index < rounds; index += 1) client.randomizeIndex(index % size);
        const bare = ((performance.now() - start) * 1000) / rounds;
        const items = new Map();
        const storage = { getItem: (key) => items.get(key) ?? null, setItem: (key, value) => items.set(key, value) };
        const wrapped = await wrapper.VeilLdpClient.create({ descriptor: text, lifetimeEpsilon: 1e9, storage });
        start = performance.now();
        for (let index = 0; index < rounds / 4; index += 1) wrapped.randomizeIndex(index % size);
        const persisted = ((performance.now() - start) * 1000) / (rounds / 4);
        return { microsecondsPerReport: bare, withStateSaved: persisted, rounds };
      }, descriptor);
    }
  }
  result.userAgent = await page.evaluate(() => navigator.userAgent);
  check(consoleErrors.length === 0, `no console errors: ${consoleErrors.join("; ")}`);
  result.ok = true;
} finally {
  writeFileSync(resultPath, `${JSON.stringify(result, null, 2)}\n`);
  await context.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify({ axe: result.axe, sent: result.sent, truth: result.truth, bench: result.bench }, null, 2));
