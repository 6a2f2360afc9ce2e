// Errors in words a line operator understands: what happened and what to do next, with the
// server's own message (which names the field or file) as the detail.
import { t } from './i18n.svelte.js';

export function friendly(err) {
  if (!err) return null;
  const status = err.status ?? -1;
  const detail = err.message || String(err);
  const key =
    status === 0 ? 'network'
    : status === 401 ? 'unauthorized'
    : status === 403 ? 'forbidden'
    : status === 404 ? 'notfound'
    : status === 409 ? 'conflict'
    : status === 413 ? 'toolarge'
    : status === 429 ? 'toomany'
    : status === 400 || status === 415 || status === 422 ? 'input'
    : status >= 500 ? 'server'
    : 'unknown';
  return { title: t('err.' + key), hint: t('err.' + key + '.hint'), detail, status };
}

// One line for a toast: what happened in words, then the server's detail when it adds something.
export function errorText(err) {
  const f = friendly(err);
  if (!f) return '';
  return f.detail && f.detail !== f.title ? `${f.title} — ${f.detail}` : f.title;
}
