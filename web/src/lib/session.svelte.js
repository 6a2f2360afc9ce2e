// Who is signed in: the user from GET /api/v1/auth/me (roles, projects), the token in
// localStorage (api.js). signIn/signOut keep both in step.
import { api, getToken, setToken, forgetImages, setUnauthorizedHandler } from './api.js';
import { restoreLang, setLang, takeLoginChoice } from './i18n.svelte.js';

export const session = $state({ user: null, ready: false, expired: false });

export async function loadSession() {
  if (!getToken()) {
    session.ready = true;
    return;
  }
  try {
    session.user = await api('/api/v1/auth/me');
    userLang(null);
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
  // a language picked on the sign-in screen is this user's choice from now on
  userLang(takeLoginChoice());
}

// The signed-in user's language: `picked` (chosen on the sign-in screen) when given, else the
// one the server remembers, else this browser's (then saved on the server too).
function userLang(picked) {
  const u = session.user;
  if (picked) {
    chooseLang(picked);
    return;
  }
  const c = restoreLang(u);
  if (c && !u.lang) chooseLang(c);
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

// The signed-in user's language choice: shown at once, remembered in this browser and saved
// on the server (so another computer opens in it too). A failed save keeps the choice here.
export async function chooseLang(code) {
  const u = session.user;
  setLang(code, u && u.username);
  if (!u || u.lang === code) return;
  try {
    const r = await api(`/api/v1/users/${u.id}`, { method: 'PATCH', json: { lang: code } });
    if (session.user === u) u.lang = r.lang;
  } catch {
    /* remembered in this browser only */
  }
}

export function hasRole(...roles) {
  const r = (session.user && session.user.roles) || [];
  return r.includes('admin') || roles.some((x) => r.includes(x));
}
