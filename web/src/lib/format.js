// Numbers, sizes, times and durations in the user's language.
import { locale, t } from './i18n.svelte.js';

export function num(x, digits = 0) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(x);
}

export function pct(x, digits = 1) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  return num(x * 100, digits) + '%';
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return num(n, i === 0 ? 0 : 1) + ' ' + u[i];
}

export function date(s) {
  if (!s) return '—';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return s;
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'short' }).format(d);
}

export function ago(s) {
  if (!s) return '—';
  const sec = (Date.now() - new Date(s).getTime()) / 1000;
  const rtf = new Intl.RelativeTimeFormat(locale(), { numeric: 'auto' });
  if (Math.abs(sec) < 60) return rtf.format(-Math.round(sec), 'second');
  if (Math.abs(sec) < 3600) return rtf.format(-Math.round(sec / 60), 'minute');
  if (Math.abs(sec) < 86400) return rtf.format(-Math.round(sec / 3600), 'hour');
  return rtf.format(-Math.round(sec / 86400), 'day');
}

export function duration(sec) {
  if (sec === null || sec === undefined || !Number.isFinite(sec)) return '—';
  sec = Math.max(0, Math.round(sec));
  const h = Math.floor(sec / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = sec % 60;
  if (h) return t('dur.hm', { h, m });
  if (m) return t('dur.ms', { m, s });
  return t('dur.s', { s });
}
