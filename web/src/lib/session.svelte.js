// Who is signed in: the user from GET /api/v1/auth/me (roles, projects), the token in
// localStorage (api.js). signIn/signOut keep both in step.
import { api, getToken, setToken, forgetImages, setUnauthorizedHandler } from './api.js';
import { restoreLang } from './i18n.svelte.js';

export const session = $state({ user: null, ready: false, expired: false });

export async function loadSession() {
  if (!getToken()) {
    session.ready = true;
    return;
  }
  try {
    session.user = await api('/api/v1/auth/me');
    restoreLang(session.user.username);
  } catch {
    setToken(null);
    session.user = null;
  }
  session.ready = true;
}

export async function signIn(username, password) {
  const r = await api('/api/v1/auth/login', { method: 'POST', json: { username, password } });
  setToken(r.token);
  session.expired = false;
  session.user = await api('/api/v1/auth/me');
  restoreLang(session.user.username);
}

export async function signOut() {
  try {
    await api('/api/v1/auth/logout', { method: 'POST' });
  } catch {
    /* the token may already be dead */
  }
  setToken(null);
  forgetImages();
  session.user = null;
}

setUnauthorizedHandler(() => {
  setToken(null);
  forgetImages();
  session.user = null;
  session.expired = true;
});

export function hasRole(...roles) {
  const r = (session.user && session.user.roles) || [];
  return r.includes('admin') || roles.some((x) => r.includes(x));
}
