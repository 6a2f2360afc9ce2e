// English and Simplified Chinese. t('key', {name: value}) looks the key up in the current
// language (falling back to English, then to the key itself) and formats it with
// intl-messageformat: messages are ICU MessageFormat strings, each compiled once per language
// and cached.
//   {name}                              a value as it is (strings as given, numbers without
//                                       grouping: ids, years, ports, "v12")
//   {n, number}                         a number in the language's format (1,234)
//   {n, plural, one {# image} other {# images}}   a count: # is n in the language's format;
//                                       Chinese has only "other", so a wording of its own for
//                                       one item uses an exact match: {n, plural, =1 {…} other {…}}
// Counts are passed as numbers (t('data.count', {n: total})), not as num() strings. A straight
// apostrophe before { } or # starts ICU quoting ('{' is a literal brace, '' an apostrophe), so
// the texts use ’ and “ ”; < and > are plain text (ignoreTag). A message that does not parse,
// or a value it cannot take, is logged once (console.error) and shown as the raw text.
// The choice is remembered per user on the server (the user's "lang", so it follows them to
// any computer; session.svelte.js saves it) and in localStorage (autocv.lang.<username>, for a
// server that has none yet); the last choice on this browser is what the sign-in screen shows.
// Keys live in locales/en.js and locales/zh.js, and per screen in locales/parts/*.js (each
// exporting `en` and `zh` objects with the same keys and the same placeholders; the end-to-end
// test checks the keys, src/lib/i18n.test.js that every message parses and the placeholders).
import { IntlMessageFormat } from 'intl-messageformat';
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

// The Intl locale of each language: plural rules and number formats.
const LOCALES = { en: 'en-US', zh: 'zh-CN' };
const OPTIONS = { ignoreTag: true };

// lang + key -> { mf, numeric } (numeric: the argument names that must be numbers), or
// { raw } for a message that does not parse
const compiled = new Map();
const reported = new Set();

function report(key, what, err) {
  if (reported.has(key)) return;
  reported.add(key);
  console.error(`i18n: ${what} "${key}": ${err?.message ?? err}`);
}

// AST element types (@formatjs/icu-messageformat-parser's TYPE.number and TYPE.plural, the
// latter for selectordinal too) that take a number; i18n.test.js fails if they drift
const NUMBER = 2, PLURAL = 6;
function numericArgs(ast, out) {
  for (const el of ast) {
    if (el.type === NUMBER || el.type === PLURAL) out.add(el.value);
    if (el.options) for (const o of Object.values(el.options)) numericArgs(o.value, out);
  }
  return out;
}

function compile(code, key, s) {
  const id = code + '\u0000' + key;
  let c = compiled.get(id);
  if (!c) {
    try {
      const mf = new IntlMessageFormat(s, LOCALES[code], undefined, OPTIONS);
      c = { mf, numeric: numericArgs(mf.getAst(), new Set()) };
    } catch (e) {
      report(key, 'cannot parse', e);
      c = { raw: s };
    }
    compiled.set(id, c);
  }
  return c;
}

// the old way, for a message that cannot be formatted: {name} filled where a value is given
function fill(s, params) {
  return params ? s.replace(/\{(\w+)\}/g, (m, k) => (params[k] !== undefined ? String(params[k]) : m)) : s;
}

// A count given as text ("1,234", from num()) still selects the right form, but is reported.
function values(key, c, params) {
  let v = params;
  for (const name of c.numeric) {
    if (typeof params[name] !== 'string') continue;
    report(key, `a number is wanted for {${name}} in`, JSON.stringify(params[name]));
    if (v === params) v = { ...params };
    v[name] = Number(params[name].replace(/[^0-9.-]/g, ''));
  }
  return v;
}

export function t(key, params) {
  let code = lang.code;
  let s = DICTS[code][key];
  if (s === undefined) {
    code = 'en'; // an English text keeps English plural rules
    s = en[key];
  }
  if (s === undefined) return key;
  const c = compile(code, key, s);
  if (c.raw !== undefined) return fill(c.raw, params);
  try {
    const out = c.mf.format(params ? values(key, c, params) : undefined);
    return Array.isArray(out) ? out.join('') : String(out);
  } catch (e) {
    report(key, 'cannot format', e);
    return fill(s, params);
  }
}

// The locale for Intl formatting.
export function locale() {
  return LOCALES[lang.code];
}
