// The server's HTTP API as the page uses it, and its errors in plain words.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

// What a status means to someone using the page; the server's own message follows it.
const MEANING = {
  400: "The server could not do that",
  401: "This server needs an API key (enter it at the top of the page)",
  403: "This server refused the request",
  404: "Not found",
  408: "The request took too long to send",
  413: "The request is too large",
  503: "The model is not available right now",
  504: "The server took too long to answer",
};

function plain(status, detail) {
  const meaning = MEANING[status] ?? (status >= 500 ? "The server failed" : `The server answered ${status}`);
  return detail ? `${meaning}: ${detail}` : `${meaning}.`;
}

// A server started with --api-keys wants a bearer token; the page keeps the one typed at the
// top for this tab only (sessionStorage), never in the URL that a shared link carries.
const KEY = "modelserve-api-key";
export const apiKey = {
  get: () => sessionStorage.getItem(KEY) ?? "",
  set: (value) => (value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY)),
};

async function send(path, { body, signal, method } = {}) {
  const init = { method: method ?? (body === undefined ? "GET" : "POST"), signal, headers: {} };
  if (apiKey.get()) init.headers["Authorization"] = `Bearer ${apiKey.get()}`;
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;  // the page stopped it: not an error to show
    throw new ApiError("Could not reach the server. Is it still running?", 0);
  }
  if (!response.ok) {
    let detail = "";
    try {
      detail = (await response.json()).error ?? "";
    } catch {
      detail = response.statusText;
    }
    throw new ApiError(plain(response.status, detail), response.status);
  }
  return response;
}

// The server writes non-finite floats as Python and Triton do (NaN, Infinity, -Infinity), which
// JSON.parse rejects: outside strings, turn those bare words into tagged strings, then back.
const NON_FINITE = { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity };
const TAG = "\u0000nonfinite:";

export function parseJSON(text) {
  try {
    return JSON.parse(text);
  } catch (err) {
    if (!/NaN|Infinity/.test(text)) throw err;
  }
  const tagged = text.replace(/"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g, (token) =>
    token.startsWith('"') ? token : `"\\u0000nonfinite:${token}"`);
  return JSON.parse(tagged, (key, value) =>
    typeof value === "string" && value.startsWith(TAG) ? NON_FINITE[value.slice(TAG.length)] : value);
}

export async function getJSON(path, options) {
  return parseJSON(await (await send(path, options)).text());
}

export async function postJSON(path, body, options = {}) {
  return parseJSON(await (await send(path, { ...options, body })).text());
}

// POST a body and call onEvent with each server-sent event's JSON (EventSource cannot POST).
// Aborting `signal` closes the connection, and the server stops sampling when it sees that.
export async function streamEvents(path, body, onEvent, signal) {
  const response = await send(path, { body, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (!data) continue;
      const event = parseJSON(data);
      if (event.error) throw new ApiError(`The generation failed: ${event.error}`, 200);
      onEvent(event);
    }
  }
}

export function describe(err) {
  if (err instanceof ApiError) return err.message;
  return `Something went wrong in the page: ${err.message ?? err}`;
}

export const v1 = (name) => `/v1/models/${encodeURIComponent(name)}`;
export const v2 = (name) => `/v2/models/${encodeURIComponent(name)}`;
