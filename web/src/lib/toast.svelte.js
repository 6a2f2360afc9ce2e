// Short notices at the corner of the screen ("Project created"); errors stay until closed.
export const toasts = $state([]);
let next = 1;

export function toast(text, kind = 'ok', ms = 3500) {
  const id = next++;
  toasts.push({ id, text, kind });
  if (kind !== 'error') setTimeout(() => dismiss(id), ms);
}

export function dismiss(id) {
  const i = toasts.findIndex((x) => x.id === id);
  if (i >= 0) toasts.splice(i, 1);
}
