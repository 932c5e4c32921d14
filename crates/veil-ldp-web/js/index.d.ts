// Types of Veil's local-DP client for web pages (index.js).

/** Where the device's state is kept: `localStorage`, `sessionStorage` or your own. */
export interface DeviceStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** What `VeilLdpClient.create` takes. */
export interface CreateOptions {
  /** The protocol descriptor's text (TOML or JSON), as the server uses it. */
  descriptor: string;
  /** The most ε this device may ever spend under the protocol (the smallest given wins). */
  lifetimeEpsilon: number;
  /** Where the state is kept (default: `localStorage`). */
  storage?: DeviceStorage;
  /** The .wasm module (a URL, a Response or bytes); default: the file beside index.js. */
  module?: unknown;
}

/** The collector's media type for a batch of reports. */
export const BATCH_CONTENT_TYPE: string;
/** The most reports one batch may carry. */
export const MAX_BATCH_REPORTS: number;

/** Loads the WebAssembly module (once). */
export function load(module?: unknown): Promise<unknown>;
/** The storage key of a protocol's state. */
export function storageKey(protocolId: string): string;

/** One protocol on this device; every randomization is charged and persisted first. */
export class VeilLdpClient {
  static create(options: CreateOptions): Promise<VeilLdpClient>;
  readonly protocolId: string;
  readonly oracle: string;
  readonly epsilon: number;
  readonly spentEpsilon: number;
  readonly lifetimeEpsilon: number;
  readonly remainingEpsilon: number;
  /** The listed values of a categorical domain (empty otherwise). */
  readonly domainValues: string[];
  costOfValue(value: string): number;
  randomizeValue(value: string): Uint8Array;
  randomizeIndex(index: number): Uint8Array;
  randomizeNumber(value: number): Uint8Array;
  describeReport(report: Uint8Array): string;
}

/** The upload body: each report's length (2 bytes, little-endian), then its bytes. */
export function encodeBatch(reports: Uint8Array[]): Uint8Array;

/** Posts reports to a collector; resolves to how many it accepted. */
export function sendReports(
  url: string,
  reports: Uint8Array[],
  options?: { fetch?: typeof fetch; signal?: AbortSignal },
): Promise<number>;
