// Veil's local-DP client for web pages: the WebAssembly randomizer (veil_ldp_web.js, made
// by wasm-bindgen) with the device's state kept in a storage the page provides
// (localStorage by default), and the collector's upload format.
//
// Nothing here sees a value in the clear after `randomize*` returns: what is stored and
// sent is the randomized report, already epsilon-LDP.

import init, { LdpClient } from "./veil_ldp_web.js";

/** The collector's media type for a batch of reports (see `encodeBatch`). */
export const BATCH_CONTENT_TYPE = "application/vnd.veil.ldp-reports";

/** The most reports one batch may carry (the collector refuses more). */
export const MAX_BATCH_REPORTS = 1000;

let ready = null;

/**
 * Loads the WebAssembly module once. `module` is what wasm-bindgen's `init` accepts (a URL,
 * a Response, bytes); by default the .wasm file beside this script.
 */
export function load(module) {
  if (ready === null) {
    ready = init(module === undefined ? undefined : { module_or_path: module });
  }
  return ready;
}

/** The storage key of a protocol's state on this device. */
export function storageKey(protocolId) {
  return `veil-ldp/${protocolId}`;
}

/**
 * One protocol on this device. Every randomization persists the device's state (the ε it
 * has spent, memoised permanent answers) before it returns the report, so a report that
 * exists was always charged.
 */
export class VeilLdpClient {
  #client;
  #storage;
  #key;

  constructor(client, storage, key) {
    this.#client = client;
    this.#storage = storage;
    this.#key = key;
  }

  /**
   * A client for `descriptor` (the TOML or JSON text `veil ldp protocol` writes, or the
   * collector serves at /v1/protocol), with the device's lifetime ε cap for it.
   */
  static async create({ descriptor, lifetimeEpsilon, storage = globalThis.localStorage, module } = {}) {
    if (typeof descriptor !== "string") {
      throw new TypeError("descriptor must be the protocol descriptor's text");
    }
    if (storage === undefined || storage === null) {
      throw new TypeError("no storage: pass one with getItem and setItem (localStorage is not available here)");
    }
    await load(module);
    const key = storageKey(LdpClient.protocolIdOf(descriptor));
    const stored = storage.getItem(key);
    const client = new LdpClient(descriptor, stored ?? undefined, lifetimeEpsilon);
    const wrapper = new VeilLdpClient(client, storage, key);
    wrapper.#save();
    return wrapper;
  }

  get protocolId() { return this.#client.protocolId; }
  get oracle() { return this.#client.oracle; }
  get epsilon() { return this.#client.epsilon; }
  get spentEpsilon() { return this.#client.spentEpsilon; }
  get lifetimeEpsilon() { return this.#client.lifetimeEpsilon; }
  get remainingEpsilon() { return Math.max(0, this.lifetimeEpsilon - this.spentEpsilon); }
  get domainValues() { return this.#client.domainValues; }

  /** What reporting `value` costs now: 0 if its permanent answer is memoised, else ε. */
  costOfValue(value) { return this.#client.costOfValue(value); }

  /** Randomizes a category (or any string, for an open domain); the report's bytes. */
  randomizeValue(value) { return this.#charged(() => this.#client.randomizeValue(value)); }

  /** Randomizes the value with index `index`; the report's bytes. */
  randomizeIndex(index) { return this.#charged(() => this.#client.randomizeIndex(index)); }

  /** Randomizes a number (numeric protocols); the report's bytes. */
  randomizeNumber(number) { return this.#charged(() => this.#client.randomizeNumber(number)); }

  /** The report in words, for the person to see before it is sent. */
  describeReport(report) { return this.#client.describeReport(report); }

  #charged(randomize) {
    const report = randomize();
    // Persisted before the report is handed out: if storing fails, the report is dropped.
    this.#save();
    return report;
  }

  #save() {
    this.#storage.setItem(this.#key, this.#client.state());
  }
}

/**
 * The upload format: each report as its length (2 bytes, little-endian) then its bytes.
 */
export function encodeBatch(reports) {
  if (reports.length === 0 || reports.length > MAX_BATCH_REPORTS) {
    throw new RangeError(`a batch holds 1 to ${MAX_BATCH_REPORTS} reports, not ${reports.length}`);
  }
  let size = 0;
  for (const report of reports) {
    if (!(report instanceof Uint8Array) || report.length === 0 || report.length > 0xffff) {
      throw new TypeError("each report is the non-empty Uint8Array a randomize call returned");
    }
    size += 2 + report.length;
  }
  const body = new Uint8Array(size);
  let at = 0;
  for (const report of reports) {
    body[at] = report.length & 0xff;
    body[at + 1] = report.length >> 8;
    body.set(report, at + 2);
    at += 2 + report.length;
  }
  return body;
}

/**
 * Sends reports to a collector (`veil ldp collect`): `url` is its base address. Sends no
 * cookie, no referrer and nothing else about the page; resolves to the number accepted,
 * rejects with the collector's reason.
 */
export async function sendReports(url, reports, { fetch = globalThis.fetch, signal } = {}) {
  const response = await fetch(new URL("v1/reports", url.endsWith("/") ? url : `${url}/`), {
    method: "POST",
    headers: { "Content-Type": BATCH_CONTENT_TYPE },
    body: encodeBatch(reports),
    credentials: "omit",
    referrerPolicy: "no-referrer",
    cache: "no-store",
    mode: "cors",
    signal,
  });
  const text = await response.text();
  let reply;
  try {
    reply = JSON.parse(text);
  } catch {
    reply = { error: text };
  }
  if (!response.ok) {
    throw new Error(`the collector refused the reports (${response.status}): ${reply.error ?? text}`);
  }
  return reply.accepted;
}
