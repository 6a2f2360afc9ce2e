// The API client (api.js) against stand-ins for the browser: fetch, XMLHttpRequest and
// localStorage are replaced with vi.stubGlobal, and the module is imported afresh for each
// test (it reads the token from localStorage when it loads). Covered: JSON calls and what
// they send, errors as ApiError (status, code, message, body), the 401 handler, the bearer
// token, paging, uploads with progress, the server-sent-events parser and follower, and the
// authorized image cache.
import { describe, it, expect, vi, beforeEach, afterEach } from 'vitest';

// ---- stand-ins ----------------------------------------------------------------------------

function memoryStorage(initial = {}) {
  const m = new Map(Object.entries(initial));
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => m.set(k, String(v)),
    removeItem: (k) => m.delete(k),
    clear: () => m.clear(),
    get map() {
      return m;
    },
  };
}

function json(status, body, headers = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  });
}

// fetch that answers from a list of handlers in order and records what it was asked
function fakeFetch(...answers) {
  const calls = [];
  const fn = vi.fn(async (url, init = {}) => {
    calls.push({ url, init });
    const a = answers.length > 1 ? answers.shift() : answers[0];
    return typeof a === 'function' ? a(url, init) : a.clone();
  });
  fn.calls = calls;
  return fn;
}

// An XMLHttpRequest that records what it was given; the test drives its events.
class FakeXHR {
  static last = null;
  constructor() {
    this.headers = {};
    this.upload = {};
    this.status = 0;
    this.responseText = '';
    this.aborted = false;
    FakeXHR.last = this;
  }
  open(method, url) {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(k, v) {
    this.headers[k] = v;
  }
  send(body) {
    this.body = body;
  }
  abort() {
    this.aborted = true;
    this.onabort && this.onabort();
  }
  answer(status, body) {
    this.status = status;
    this.responseText = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
    this.onload();
  }
}

let storage;
async function load({ token = null, fetch = fakeFetch(json(200, {})) } = {}) {
  storage = memoryStorage(token ? { 'autocv.token': token } : {});
  vi.stubGlobal('localStorage', storage);
  vi.stubGlobal('fetch', fetch);
  vi.stubGlobal('XMLHttpRequest', FakeXHR);
  vi.resetModules();
  return import('./api.js');
}

beforeEach(() => {
  FakeXHR.last = null;
});
afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
  vi.useRealTimers();
});

// ---- JSON calls ---------------------------------------------------------------------------

describe('api(): JSON in and out', () => {
  it('sends the token from localStorage as a bearer header and parses JSON', async () => {
    const f = fakeFetch(json(200, { items: [1, 2], total: 2 }));
    const m = await load({ token: 'acv_abc', fetch: f });
    expect(m.getToken()).toBe('acv_abc');
    const r = await m.api('/api/v1/projects');
    expect(r).toEqual({ items: [1, 2], total: 2 });
    expect(f.calls[0].url).toBe('/api/v1/projects');
    expect(f.calls[0].init.method).toBe('GET');
    expect(f.calls[0].init.headers.Authorization).toBe('Bearer acv_abc');
  });

  it('sends no Authorization header without a token', async () => {
    const f = fakeFetch(json(200, { ok: true }));
    const m = await load({ fetch: f });
    await m.api('/healthz');
    expect(f.calls[0].init.headers).not.toHaveProperty('Authorization');
  });

  it('encodes a json body with its content type and keeps other headers', async () => {
    const f = fakeFetch(json(201, { id: 4 }));
    const m = await load({ token: 't1', fetch: f });
    const r = await m.api('/api/v1/projects/1/annotation-sets', { method: 'POST', json: { name: 'a', task: 'det' }, headers: { 'X-Test': '1' } });
    expect(r).toEqual({ id: 4 });
    const { init } = f.calls[0];
    expect(init.method).toBe('POST');
    expect(init.headers['Content-Type']).toBe('application/json');
    expect(init.headers['X-Test']).toBe('1');
    expect(init.headers.Authorization).toBe('Bearer t1');
    expect(JSON.parse(init.body)).toEqual({ name: 'a', task: 'det' });
  });

  it('creates a dataset version: per cent to fractions, the name trimmed, the seed whole', async () => {
    const f = fakeFetch(json(201, { id: 9, name: 'v1' }));
    const m = await load({ token: 't', fetch: f });
    const v = await m.createVersion(3, { name: ' v1 ', split: { train: 70, val: 20, test: 10 }, seed: '-4.5' });
    expect(v).toEqual({ id: 9, name: 'v1' });
    expect(f.calls[0].url).toBe('/api/v1/annotation-sets/3/versions');
    expect(f.calls[0].init.method).toBe('POST');
    expect(JSON.parse(f.calls[0].init.body)).toEqual({ name: 'v1', split: { train: 0.7, val: 0.2, test: 0.1 }, seed: 0 });
    await m.createVersion(3, { name: 'v2', split: { train: 80, val: 10, test: 10 }, seed: 7.9 });
    expect(JSON.parse(f.calls[1].init.body).seed).toBe(7);
  });

  it('passes a raw body through untouched', async () => {
    const f = fakeFetch(json(201, {}));
    const m = await load({ fetch: f });
    const csv = 'name\nscratch\n';
    await m.api('/api/v1/projects/1/labels', { method: 'POST', body: csv, headers: { 'Content-Type': 'text/csv' } });
    expect(f.calls[0].init.body).toBe(csv);
    expect(f.calls[0].init.headers['Content-Type']).toBe('text/csv');
  });

  it('answers null for 204, text for non-JSON, and the asked form for as=text/blob/response', async () => {
    const m = await load({
      fetch: fakeFetch(
        new Response(null, { status: 204 }),
        new Response('plain words', { status: 200, headers: { 'Content-Type': 'text/plain' } }),
        new Response('{"a":1}', { status: 200, headers: { 'Content-Type': 'application/json' } }),
        new Response('bytes', { status: 200, headers: { 'Content-Type': 'image/png' } }),
        new Response('x', { status: 200 }),
      ),
    });
    expect(await m.api('/api/v1/annotation-sets/4', { method: 'DELETE' })).toBeNull();
    expect(await m.api('/api/v1/jobs/1/logs')).toBe('plain words');
    expect(await m.api('/api/v1/x', { as: 'text' })).toBe('{"a":1}');
    const b = await m.api('/api/v1/images/1/file', { as: 'blob' });
    expect(b).toBeInstanceOf(Blob);
    expect(await b.text()).toBe('bytes');
    const res = await m.api('/api/v1/y', { as: 'response' });
    expect(res).toBeInstanceOf(Response);
    expect(res.status).toBe(200);
  });

  it('setToken stores and forgets the token', async () => {
    const f = fakeFetch(json(200, {}));
    const m = await load({ fetch: f });
    m.setToken('acv_new');
    expect(storage.getItem('autocv.token')).toBe('acv_new');
    await m.api('/a');
    expect(f.calls[0].init.headers.Authorization).toBe('Bearer acv_new');
    m.setToken(null);
    expect(storage.getItem('autocv.token')).toBeNull();
    await m.api('/b');
    expect(f.calls[1].init.headers).not.toHaveProperty('Authorization');
  });

  it('keeps working when localStorage throws (private mode)', async () => {
    vi.stubGlobal('localStorage', {
      getItem() {
        throw new Error('denied');
      },
      setItem() {
        throw new Error('denied');
      },
      removeItem() {
        throw new Error('denied');
      },
    });
    vi.stubGlobal('fetch', fakeFetch(json(200, {})));
    vi.resetModules();
    const m = await import('./api.js');
    expect(m.getToken()).toBeNull();
    m.setToken('t');
    expect(m.getToken()).toBe('t');
  });
});

// ---- errors ---------------------------------------------------------------------------------

describe('api(): errors as ApiError', () => {
  it('maps the server error body to status, code and message', async () => {
    const body = { error: { code: 'invalid', message: "shapes[0].label: unknown label 'scrach'" } };
    const m = await load({ fetch: fakeFetch(json(422, body)) });
    const e = await m.api('/api/v1/annotation-sets/1/items/2', { method: 'PUT', json: {} }).catch((x) => x);
    expect(e).toBeInstanceOf(m.ApiError);
    expect(e).toBeInstanceOf(Error);
    expect(e.status).toBe(422);
    expect(e.code).toBe('invalid');
    expect(e.message).toBe("shapes[0].label: unknown label 'scrach'");
    expect(e.body).toEqual(body);
  });

  it('keeps the conflict body (the current item of a 409)', async () => {
    const body = { error: { code: 'conflict', message: 'stale revision 0', revision: 1, current: { revision: 1, shapes: [] } } };
    const m = await load({ fetch: fakeFetch(json(409, body)) });
    const e = await m.api('/x', { method: 'PUT', json: { revision: 0 } }).catch((x) => x);
    expect([e.status, e.code]).toEqual([409, 'conflict']);
    expect(e.body.error.current.revision).toBe(1);
  });

  it('falls back to HTTP <status> when the body is not JSON', async () => {
    const m = await load({ fetch: fakeFetch(new Response('<html>bad gateway</html>', { status: 502 })) });
    const e = await m.api('/x').catch((x) => x);
    expect(e).toBeInstanceOf(m.ApiError);
    expect([e.status, e.code, e.message, e.body]).toEqual([502, '', 'HTTP 502', null]);
  });

  it('uses the code as the message when there is no message', async () => {
    const m = await load({ fetch: fakeFetch(json(404, { error: { code: 'not_found' } })) });
    const e = await m.api('/x').catch((x) => x);
    expect([e.status, e.code, e.message]).toEqual([404, 'not_found', 'not_found']);
  });

  it('turns a failed connection into status 0, code network', async () => {
    const m = await load({
      fetch: vi.fn(async () => {
        throw new TypeError('Failed to fetch');
      }),
    });
    const e = await m.api('/x').catch((x) => x);
    expect(e).toBeInstanceOf(m.ApiError);
    expect([e.status, e.code, e.message]).toEqual([0, 'network', 'Failed to fetch']);
  });

  it('lets an abort through as an AbortError, not an ApiError', async () => {
    const m = await load({
      fetch: vi.fn(async () => {
        throw new DOMException('The operation was aborted.', 'AbortError');
      }),
    });
    const e = await m.api('/x').catch((x) => x);
    expect(e.name).toBe('AbortError');
    expect(e).not.toBeInstanceOf(m.ApiError);
  });
});

describe('the 401 handler', () => {
  it('is called when a token stops working, with the error', async () => {
    const m = await load({ token: 'old', fetch: fakeFetch(json(401, { error: { code: 'unauthorized', message: 'token expired' } })) });
    const seen = [];
    m.setUnauthorizedHandler((e) => seen.push(e));
    const e = await m.api('/api/v1/projects').catch((x) => x);
    expect(e.status).toBe(401);
    expect(seen).toHaveLength(1);
    expect(seen[0].message).toBe('token expired');
  });

  it('is not called for a wrong password at sign-in, nor without a token', async () => {
    const m = await load({ token: 'old', fetch: fakeFetch(json(401, { error: { code: 'unauthorized', message: 'wrong' } })) });
    const handler = vi.fn();
    m.setUnauthorizedHandler(handler);
    await expect(m.api('/api/v1/auth/login', { method: 'POST', json: {} })).rejects.toMatchObject({ status: 401 });
    m.setToken(null);
    await expect(m.api('/api/v1/projects')).rejects.toMatchObject({ status: 401 });
    expect(handler).not.toHaveBeenCalled();
  });

  it('is not called for a 403', async () => {
    const m = await load({ token: 't', fetch: fakeFetch(json(403, { error: { code: 'forbidden', message: 'no' } })) });
    const handler = vi.fn();
    m.setUnauthorizedHandler(handler);
    await expect(m.api('/x')).rejects.toMatchObject({ status: 403, code: 'forbidden' });
    expect(handler).not.toHaveBeenCalled();
  });
});

// ---- paging -------------------------------------------------------------------------------

describe('apiAll()', () => {
  const page = (offset, limit, total) =>
    json(200, { items: Array.from({ length: Math.max(0, Math.min(limit, total - offset)) }, (_, i) => offset + i), total, limit, offset });

  it('fetches every page and keeps their order', async () => {
    const f = fakeFetch((url) => {
      const u = new URL(url, 'http://x');
      return page(Number(u.searchParams.get('offset')), Number(u.searchParams.get('limit')), 2500);
    });
    const m = await load({ fetch: f });
    const all = await m.apiAll('/api/v1/projects/1/labels');
    expect(all).toHaveLength(2500);
    expect(all[0]).toBe(0);
    expect(all[1000]).toBe(1000);
    expect(all[2499]).toBe(2499);
    const offsets = f.calls.map((c) => Number(new URL(c.url, 'http://x').searchParams.get('offset'))).sort((a, b) => a - b);
    expect(offsets).toEqual([0, 1000, 2000]);
    expect(f.calls[0].url).toBe('/api/v1/projects/1/labels?limit=1000&offset=0');
  });

  it('appends to a query string that is already there and stops at max', async () => {
    const f = fakeFetch((url) => {
      const u = new URL(url, 'http://x');
      return page(Number(u.searchParams.get('offset')), Number(u.searchParams.get('limit')), 500);
    });
    const m = await load({ fetch: f });
    const some = await m.apiAll('/api/v1/annotation-sets/1/items?status=new', { limit: 100, max: 250 });
    expect(some).toHaveLength(250);
    expect(f.calls[0].url).toBe('/api/v1/annotation-sets/1/items?status=new&limit=100&offset=0');
    expect(f.calls).toHaveLength(3); // 0, 100, 200: nothing beyond max
  });

  it('fails with the error of a failing page', async () => {
    const f = fakeFetch(json(200, { items: [1], total: 2, limit: 1, offset: 0 }), json(500, { error: { code: 'internal', message: 'disk' } }));
    const m = await load({ fetch: f });
    await expect(m.apiAll('/x', { limit: 1 })).rejects.toMatchObject({ status: 500, message: 'disk' });
  });
});

// ---- uploads ------------------------------------------------------------------------------

describe('upload()', () => {
  it('posts the form with the token and reports progress', async () => {
    const m = await load({ token: 'tok' });
    const seen = [];
    const form = { fake: 'form' };
    const p = m.upload('/api/v1/projects/1/images', form, { onProgress: (a, b) => seen.push([a, b]) });
    const x = FakeXHR.last;
    expect([x.method, x.url, x.headers.Authorization, x.body]).toEqual(['POST', '/api/v1/projects/1/images', 'Bearer tok', form]);
    x.upload.onprogress({ loaded: 10, total: 100, lengthComputable: true });
    x.upload.onprogress({ loaded: 60, total: 0, lengthComputable: false });
    x.answer(201, { images: [{ id: 7 }], errors: [] });
    await expect(p).resolves.toEqual({ status: 201, body: { images: [{ id: 7 }], errors: [] } });
    expect(seen).toEqual([[10, 100], [60, 0]]);
  });

  it('resolves a 422 (every file refused) with the per-file errors', async () => {
    const m = await load();
    const p = m.upload('/u', {});
    FakeXHR.last.answer(422, { error: { code: 'invalid', message: 'no image' }, images: [], errors: [{ filename: 'a.txt', error: 'not an image' }] });
    const r = await p;
    expect(r.status).toBe(422);
    expect(r.body.errors[0].filename).toBe('a.txt');
  });

  it('rejects other statuses with an ApiError, and calls the 401 handler', async () => {
    const m = await load({ token: 't' });
    const handler = vi.fn();
    m.setUnauthorizedHandler(handler);
    let p = m.upload('/u', {});
    FakeXHR.last.answer(413, { error: { code: 'too_large', message: 'over 512 MiB' } });
    await expect(p).rejects.toMatchObject({ status: 413, code: 'too_large', message: 'over 512 MiB' });
    expect(handler).not.toHaveBeenCalled();
    p = m.upload('/u', {});
    FakeXHR.last.answer(401, { error: { code: 'unauthorized', message: 'expired' } });
    await expect(p).rejects.toBeInstanceOf(m.ApiError);
    expect(handler).toHaveBeenCalledTimes(1);
    p = m.upload('/u', {});
    FakeXHR.last.answer(500, 'not json');
    await expect(p).rejects.toMatchObject({ status: 500, code: '', message: 'HTTP 500' });
  });

  it('rejects a failed connection as network and an abort as AbortError', async () => {
    const m = await load();
    let p = m.upload('/u', {});
    FakeXHR.last.onerror();
    await expect(p).rejects.toMatchObject({ status: 0, code: 'network' });
    const ctl = new AbortController();
    p = m.upload('/u', {}, { signal: ctl.signal });
    const x = FakeXHR.last;
    ctl.abort();
    expect(x.aborted).toBe(true);
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
  });
});

// ---- server-sent events -------------------------------------------------------------------

describe('sseParser()', () => {
  it('parses events split anywhere, with CRLF, comments, ids and multi-line data', async () => {
    const m = await load();
    const out = [];
    const feed = m.sseParser((e) => out.push(e));
    const text = ': keep-alive\r\nid: 1\r\nevent: status\r\ndata: {"status":"running"}\r\n\r\n' +
      'id: 2\nevent: log\ndata: first line\ndata: second line\n\n' +
      'data:no space\n\n' +
      'id: 3\nevent: epoch\n\n' + // no data: not dispatched
      'id: 4\nevent: done\ndata: {"a": [1, 2]}\n\n';
    for (let i = 0; i < text.length; i += 7) feed(text.slice(i, i + 7));
    expect(out).toEqual([
      { id: 1, event: 'status', data: { status: 'running' } },
      { id: 2, event: 'log', data: 'first line\nsecond line' },
      { id: null, event: 'message', data: 'no space' },
      { id: 4, event: 'done', data: { a: [1, 2] } },
    ]);
  });

  it('waits for the blank line before dispatching', async () => {
    const m = await load();
    const out = [];
    const feed = m.sseParser((e) => out.push(e));
    feed('id: 9\nevent: step\ndata: {"loss":0.5}\n');
    expect(out).toHaveLength(0);
    feed('\n');
    expect(out).toEqual([{ id: 9, event: 'step', data: { loss: 0.5 } }]);
  });
});

function sseResponse(text) {
  const bytes = new TextEncoder().encode(text);
  return new Response(
    new ReadableStream({
      start(c) {
        c.enqueue(bytes.slice(0, 20));
        c.enqueue(bytes.slice(20));
        c.close();
      },
    }),
    { status: 200, headers: { 'Content-Type': 'text/event-stream' } },
  );
}

describe('followEvents()', () => {
  it('follows to the final event, reconnecting after the last id without repeats', async () => {
    const f = fakeFetch(
      () => sseResponse('id: 1\nevent: status\ndata: {"status":"running"}\n\nid: 2\nevent: log\ndata: {"message":"a"}\n\n'),
      () => sseResponse('id: 3\nevent: status\ndata: {"status":"succeeded"}\n\n'),
    );
    const m = await load({ token: 'tk', fetch: f });
    const events = [];
    const states = [];
    await m.followEvents('/api/v1/jobs/5/events', {
      onEvent: (e) => events.push(e.id),
      isFinal: (e) => e.event === 'status' && e.data.status === 'succeeded',
      onState: (s) => states.push(s),
    });
    expect(events).toEqual([1, 2, 3]);
    expect(f.calls.map((c) => c.url)).toEqual(['/api/v1/jobs/5/events', '/api/v1/jobs/5/events?after=2']);
    expect(f.calls[0].init.headers.Authorization).toBe('Bearer tk');
    expect(f.calls[0].init.headers.Accept).toBe('text/event-stream');
    expect(states).toEqual(['live', 'reconnecting', 'live', 'ended']);
  });

  it('gives up with the error on a 4xx', async () => {
    const m = await load({ fetch: fakeFetch(json(404, { error: { code: 'not_found', message: 'job 9 not found' } })) });
    await expect(m.followEvents('/api/v1/jobs/9/events', { onEvent: () => {} })).rejects.toMatchObject({ status: 404, message: 'job 9 not found' });
  });

  it('stops when its signal aborts', async () => {
    const ctl = new AbortController();
    const f = fakeFetch(() => {
      ctl.abort();
      throw new DOMException('aborted', 'AbortError');
    });
    const m = await load({ fetch: f });
    const states = [];
    await m.followEvents('/e', { onEvent: () => {}, signal: ctl.signal, onState: (s) => states.push(s) });
    expect(states).toEqual(['ended']);
    expect(f).toHaveBeenCalledTimes(1);
  });
});

// ---- authorized images --------------------------------------------------------------------

describe('imageUrl()', () => {
  it('fetches an image once with the token and hands out a blob: URL from the cache', async () => {
    const f = fakeFetch(() => new Response(new Blob(['png']), { status: 200, headers: { 'Content-Type': 'image/png' } }));
    const m = await load({ token: 'tok', fetch: f });
    let n = 0;
    vi.spyOn(URL, 'createObjectURL').mockImplementation(() => `blob:test/${++n}`);
    const revoke = vi.spyOn(URL, 'revokeObjectURL').mockImplementation(() => {});
    const [a, b] = await Promise.all([m.imageUrl('/api/v1/images/1/file'), m.imageUrl('/api/v1/images/1/file')]);
    expect(a).toBe('blob:test/1');
    expect(b).toBe('blob:test/1');
    expect(await m.imageUrl('/api/v1/images/1/file')).toBe('blob:test/1');
    expect(f).toHaveBeenCalledTimes(1);
    expect(f.calls[0].init.headers.Authorization).toBe('Bearer tok');
    expect(await m.imageUrl('/api/v1/images/2/thumbnail')).toBe('blob:test/2');
    m.forgetImages();
    expect(revoke.mock.calls.map((c) => c[0]).sort()).toEqual(['blob:test/1', 'blob:test/2']);
    expect(await m.imageUrl('/api/v1/images/1/file')).toBe('blob:test/3'); // fetched again
    expect(f).toHaveBeenCalledTimes(3);
  });

  it('rejects with the ApiError of a failed fetch and does not cache it', async () => {
    const f = fakeFetch(json(404, { error: { code: 'not_found', message: 'image 5 not found' } }), new Response(new Blob(['x']), { status: 200 }));
    const m = await load({ fetch: f });
    vi.spyOn(URL, 'createObjectURL').mockImplementation(() => 'blob:ok');
    await expect(m.imageUrl('/api/v1/images/5/file')).rejects.toMatchObject({ status: 404 });
    await expect(m.imageUrl('/api/v1/images/5/file')).resolves.toBe('blob:ok');
  });

  it('runs at most six fetches at once, newest waiting first, and drops an aborted one', async () => {
    const pending = [];
    const f = vi.fn((url) => new Promise((resolve) => pending.push({ url, resolve })));
    const m = await load({ fetch: f });
    vi.spyOn(URL, 'createObjectURL').mockImplementation(() => 'blob:x');
    const ok = () => new Response(new Blob(['x']), { status: 200 });
    const ctl = new AbortController();
    const ps = [];
    for (let i = 0; i < 9; i++) ps.push(m.imageUrl(`/img/${i}`, i === 6 ? ctl.signal : undefined).catch((e) => e.name));
    expect(f.mock.calls.map((c) => c[0])).toEqual(['/img/0', '/img/1', '/img/2', '/img/3', '/img/4', '/img/5']);
    ctl.abort(); // /img/6 was waiting: it leaves the queue
    expect(await ps[6]).toBe('AbortError');
    pending.shift().resolve(ok());
    expect(await ps[0]).toBe('blob:x');
    await vi.waitFor(() => expect(f).toHaveBeenCalledTimes(7));
    expect(f.mock.calls[6][0]).toBe('/img/8'); // what scrolled into view last comes first
    pending.shift().resolve(ok());
    await vi.waitFor(() => expect(f).toHaveBeenCalledTimes(8));
    expect(f.mock.calls[7][0]).toBe('/img/7');
    for (const p of pending.splice(0)) p.resolve(ok());
    for (const i of [1, 2, 3, 4, 5, 7, 8]) expect(await ps[i]).toBe('blob:x');
    expect(f.mock.calls.map((c) => c[0])).not.toContain('/img/6');
  });
});
