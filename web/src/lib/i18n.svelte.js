// English and Simplified Chinese. t('key', {name: value}) looks the key up in the current
// language (falling back to English, then to the key itself) and fills {name} placeholders.
// The choice is remembered per user on the server (the user's "lang", so it follows them to
// any computer; session.svelte.js saves it) and in localStorage (autocv.lang.<username>, for a
// server that has none yet); the last choice on this browser is what the sign-in screen shows.
// Keys live in locales/en.js and locales/zh.js, and per screen in locales/parts/*.js (each
// exporting `en` and `zh` objects with the same keys; the end-to-end test checks all of them).
import enMain from './locales/en.js';
import zhMain from './locales/zh.js';

const en = { ...enMain };
const zh = { ...zhMain };
for (const part of Object.values(import.meta.glob('./locales/parts/*.js', { eager: true }))) {
  Object.assign(en, part.en);
  Object.assign(zh, part.zh);
}

export const LANGS = [
  { code: 'en', name: 'English' },
  { code: 'zh', name: '简体中文' },
];
const DICTS = { en, zh };

function stored(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function initial() {
  const s = stored('autocv.lang');
  if (s && DICTS[s]) return s;
  return (navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

export const lang = $state({ code: initial() });

function apply(code) {
  lang.code = code;
  document.documentElement.lang = code === 'zh' ? 'zh-CN' : 'en';
}
apply(lang.code);

// a language chosen on the sign-in screen (setLang without a user): it wins over the one
// remembered for the user who then signs in (takeLoginChoice)
let loginChoice = null;

export function setLang(code, username) {
  if (!DICTS[code]) return;
  if (!username) loginChoice = code;
  apply(code);
  try {
    localStorage.setItem('autocv.lang', code);
    if (username) localStorage.setItem('autocv.lang.' + username, code);
  } catch {
    /* not remembered */
  }
}

export function takeLoginChoice() {
  const c = loginChoice;
  loginChoice = null;
  return c;
}

// After sign-in: the language this user chose last time, if any: the server's record first
// (user.lang), else this browser's.
// Returns the language applied, or null.
export function restoreLang(user) {
  const s = user.lang && DICTS[user.lang] ? user.lang : stored('autocv.lang.' + user.username);
  if (!s || !DICTS[s]) return null;
  setLang(s, user.username);
  return s;
}

// A key with {n} has a singular form "<key>.one" where the language needs it (n === 1).
export function t(key, params) {
  const d = DICTS[lang.code];
  if (params && Number(String(params.n).replace(/[^0-9.]/g, '')) === 1 && d[key + '.one'] !== undefined) key += '.one';
  let s = d[key];
  if (s === undefined) s = en[key];
  if (s === undefined) return key;
  if (params) s = s.replace(/\{(\w+)\}/g, (m, k) => (params[k] !== undefined ? String(params[k]) : m));
  return s;
}

// The locale for Intl formatting.
export function locale() {
  return lang.code === 'zh' ? 'zh-CN' : 'en-US';
}
