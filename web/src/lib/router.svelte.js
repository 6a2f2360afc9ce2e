// Client-side routing over the History API: the server answers every non-API path with
// index.html, so a reload or a shared link opens the same screen.
export const route = $state({ path: location.pathname, search: location.search });

export function go(path, { replace = false } = {}) {
  const url = new URL(path, location.origin);
  if (url.pathname + url.search === route.path + route.search) return;
  if (replace) history.replaceState(null, '', url.pathname + url.search);
  else history.pushState(null, '', url.pathname + url.search);
  route.path = url.pathname;
  route.search = url.search;
  window.scrollTo(0, 0);
}

window.addEventListener('popstate', () => {
  route.path = location.pathname;
  route.search = location.search;
});

// Same-origin <a href> clicks navigate without a page load (modifier keys and targets keep
// their browser meaning).
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
  e.preventDefault();
  go(url.pathname + url.search);
});

// match('/projects/:id/:tab', '/projects/3/data') -> {id: '3', tab: 'data'} or null
export function match(pattern, path) {
  const p = pattern.split('/').filter(Boolean);
  const s = path.split('/').filter(Boolean);
  if (p.length !== s.length) return null;
  const out = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i][0] === ':') out[p[i].slice(1)] = decodeURIComponent(s[i]);
    else if (p[i] !== s[i]) return null;
  }
  return out;
}

export function query(name) {
  return new URLSearchParams(route.search).get(name);
}

// Sets a query parameter of the current address in place (no new history entry, no scroll),
// so that a reload or a shared link shows the same choice.
export function replaceQuery(name, value) {
  if (query(name) === String(value)) return;
  const url = new URL(location.href);
  url.searchParams.set(name, String(value));
  history.replaceState(history.state, '', url.pathname + url.search);
  route.search = url.search;
}
