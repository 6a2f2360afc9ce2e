// The API client: every call to `autocv serve` goes through here. JSON in and out, the bearer
// token from the session, errors as ApiError (status, code, message), uploads with progress
// (XMLHttpRequest), server-sent events read with fetch() (EventSource cannot send the
// Authorization header), and authorized images as blob: URLs with a bounded cache.

const TOKEN_KEY = 'autocv.token';

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message || code || `HTTP ${status}`);
    this.status = status; // 0: the server could not be reached
    this.code = code || '';
    this.body = body;
  }
}

let token = null;
try {
  token = localStorage.getItem(TOKEN_KEY);
} catch {
  token = null;
}
let onUnauthorized = () => {};

export function getToken() {
  return token;
}

export function setToken(t) {
  token = t;
  try {
    if (t) localStorage.setItem(TOKEN_KEY, t);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* private mode: the session lasts until the tab closes */
  }
}

// Called once when a request answers 401 with a token that used to work (expired, revoked).
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

function authHeaders(extra) {
  const h = { ...(extra || {}) };
  if (token) h.Authorization = 'Bearer ' + token;
  return h;
}

async function errorOf(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  const e = body && body.error ? body.error : {};
  return new ApiError(res.status, e.code, e.message, body);
}

// api('/api/v1/projects', {method, json, body, headers, signal, as: 'json'|'text'|'blob'|'response'})
export async function api(path, opts = {}) {
  const { method = 'GET', json, body, headers, signal, as = 'json' } = opts;
  const h = authHeaders(headers);
  let b = body;
  if (json !== undefined) {
    h['Content-Type'] = 'application/json';
    b = JSON.stringify(json);
  }
  let res;
  try {
    res = await fetch(path, { method, headers: h, body: b, signal });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', String(err && err.message ? err.message : err));
  }
  if (!res.ok) {
    const e = await errorOf(res);
    if (res.status === 401 && token && !path.endsWith('/auth/login')) onUnauthorized(e);
    throw e;
  }
  if (as === 'response') return res;
  if (res.status === 204) return null;
  if (as === 'text') return res.text();
  if (as === 'blob') return res.blob();
  const ct = res.headers.get('Content-Type') || '';
  return ct.includes('json') ? res.json() : res.text();
}

// Every page of a paged list (at most `max` items): the first page says how many there are,
// the others are fetched four at a time.
export async function apiAll(path, { max = 100000, limit = 1000, signal } = {}) {
  const sep = path.includes('?') ? '&' : '?';
  const first = await api(`${path}${sep}limit=${limit}&offset=0`, { signal });
  const total = Math.min(first.total, max);
  const offsets = [];
  for (let o = limit; o < total; o += limit) offsets.push(o);
  const pages = new Array(offsets.length);
  let next = 0;
  async function worker() {
    while (next < offsets.length) {
      const i = next++;
      pages[i] = (await api(`${path}${sep}limit=${limit}&offset=${offsets[i]}`, { signal })).items;
    }
  }
  await Promise.all([worker(), worker(), worker(), worker()]);
  return first.items.concat(...pages).slice(0, max);
}

// Creates a dataset version of annotation set setId (the Versions tab and the training
// wizard): `split` in per cent {train, val, test}, sent as fractions; the seed a whole number
// >= 0. Resolves to the version.
export function createVersion(setId, { name, split, seed = 0 }) {
  return api(`/api/v1/annotation-sets/${setId}/versions`, {
    method: 'POST',
    json: {
      name: String(name || '').trim(),
      split: { train: split.train / 100, val: split.val / 100, test: split.test / 100 },
      seed: Math.max(0, Math.floor(Number(seed) || 0)),
    },
  });
}

// Uploads FormData with progress: onProgress(loaded, total). Resolves with {status, body}
// for 2xx and 422 (per-file errors come back in the body); rejects with ApiError otherwise.
export function upload(path, form, { onProgress, signal } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    if (token) xhr.setRequestHeader('Authorization', 'Bearer ' + token);
    xhr.responseType = 'text';
    xhr.upload.onprogress = (e) => onProgress && onProgress(e.loaded, e.lengthComputable ? e.total : 0);
    xhr.onload = () => {
      let body = null;
      try {
        body = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        body = null;
      }
      if ((xhr.status >= 200 && xhr.status < 300) || xhr.status === 422) {
        resolve({ status: xhr.status, body });
        return;
      }
      const e = body && body.error ? body.error : {};
      if (xhr.status === 401 && token) onUnauthorized(e);
      reject(new ApiError(xhr.status, e.code, e.message, body));
    };
    xhr.onerror = () => reject(new ApiError(0, 'network', 'the connection failed'));
    xhr.onabort = () => reject(new DOMException('aborted', 'AbortError'));
    if (signal) signal.addEventListener('abort', () => xhr.abort());
    xhr.send(form);
  });
}

// ---- server-sent events ----------------------------------------------------------------------

// Parses an SSE byte stream: calls onEvent({id, event, data}) per event (data JSON-decoded
// when it is JSON). Exported for tests.
export function sseParser(onEvent) {
  let buf = '';
  let cur = {};
  const dispatch = () => {
    if (cur.data !== undefined) {
      let data = cur.data;
      try {
        data = JSON.parse(cur.data);
      } catch {
        /* plain text data */
      }
      onEvent({ id: cur.id !== undefined ? Number(cur.id) : null, event: cur.event || 'message', data });
    }
    cur = {};
  };
  return (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      let line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        dispatch();
        continue;
      }
      if (line[0] === ':') continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let value = c < 0 ? '' : line.slice(c + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'data') cur.data = cur.data === undefined ? value : cur.data + '\n' + value;
      else if (field === 'id' || field === 'event') cur[field] = value;
    }
  };
}

// Follows an event stream until `isFinal(event)` has been seen and the server closes it, or
// until signal aborts. Reconnects after a dropped connection with ?after=<last id>, so no
// event is seen twice. onState('live'|'reconnecting'|'ended') reports the connection.
export async function followEvents(path, { onEvent, isFinal = () => false, signal, onState = () => {} }) {
  let last = 0;
  let finished = false;
  let delay = 500;
  while (!finished && !(signal && signal.aborted)) {
    try {
      const sep = path.includes('?') ? '&' : '?';
      const res = await fetch(last ? `${path}${sep}after=${last}` : path, {
        headers: authHeaders({ Accept: 'text/event-stream' }),
        signal,
      });
      if (!res.ok) throw await errorOf(res);
      onState('live');
      delay = 500;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      const feed = sseParser((ev) => {
        if (ev.id) last = ev.id;
        if (isFinal(ev)) finished = true;
        onEvent(ev);
      });
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        feed(value);
      }
    } catch (err) {
      if (signal && signal.aborted) break;
      if (err instanceof ApiError && err.status >= 400 && err.status < 500) throw err;
    }
    if (!finished && !(signal && signal.aborted)) {
      onState('reconnecting');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 8000);
    }
  }
  onState('ended');
}

// ---- authorized images -------------------------------------------------------------------------

// Thumbnails and files need the bearer token, so <img src> cannot load them directly: they
// are fetched and shown as blob: URLs. The cache keeps the most recent `CACHE_MAX` and
// revokes the URLs it drops; at most `MAX_INFLIGHT` fetches run at once (the grid asks for
// what is visible, newest requests first).
const CACHE_MAX = 600;
const MAX_INFLIGHT = 6;
const cache = new Map(); // path -> url (insertion order = recency)
const waiting = []; // {path, resolve, reject}
const fetching = new Map(); // path -> promise of the url
let inflight = 0;

function remember(path, url) {
  cache.set(path, url);
  while (cache.size > CACHE_MAX) {
    const [k, v] = cache.entries().next().value;
    cache.delete(k);
    URL.revokeObjectURL(v);
  }
}

function pump() {
  while (inflight < MAX_INFLIGHT && waiting.length) {
    const job = waiting.pop(); // LIFO: what scrolled into view last is what the user sees
    const hit = cache.get(job.path);
    if (hit) {
      job.resolve(hit);
      continue;
    }
    if (fetching.has(job.path)) {
      fetching.get(job.path).then(job.resolve, job.reject);
      continue;
    }
    inflight++;
    const p = api(job.path, { as: 'blob' }).then((blob) => {
      const url = URL.createObjectURL(blob);
      remember(job.path, url);
      return url;
    });
    fetching.set(job.path, p);
    p.then(job.resolve, job.reject).finally(() => {
      fetching.delete(job.path);
      inflight--;
      pump();
    });
  }
}

// A blob: URL for an image path; an aborted signal takes the request out of the queue.
export function imageUrl(path, signal) {
  const hit = cache.get(path);
  if (hit) {
    cache.delete(path);
    cache.set(path, hit);
    return Promise.resolve(hit);
  }
  return new Promise((resolve, reject) => {
    const job = { path, resolve, reject };
    waiting.push(job);
    if (signal) {
      signal.addEventListener('abort', () => {
        const i = waiting.indexOf(job);
        if (i >= 0) waiting.splice(i, 1);
        reject(new DOMException('aborted', 'AbortError'));
      });
    }
    pump();
  });
}

export function forgetImages() {
  for (const url of cache.values()) URL.revokeObjectURL(url);
  cache.clear();
}
