// Downloads a file the API serves behind the token: fetched as a blob, saved under the name
// the server gives (Content-Disposition) or `fallback`.
import { api } from './api.js';

export async function download(path, fallback) {
  const res = await api(path, { as: 'response' });
  const cd = res.headers.get('Content-Disposition') || '';
  const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
  const name = m ? decodeURIComponent(m[1]) : fallback;
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
