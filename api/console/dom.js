// DOM helpers and number formats shared by the console's pages.
//
// Numbers are shown exactly as the API gives them: money in micros becomes a decimal by moving
// the point (never rounded), counts get thousands separators, basis points become a percentage
// by moving the point. Each shown number also carries its raw value in `data-value`.

/** An HTML element: `h('p', {class: 'x', onclick: f, 'data-id': 1}, 'text', child, [more])`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element, same calling convention as `h`. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'text') {
      el.textContent = String(value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** `1234567` → `1,234,567` (always commas, whatever the locale, so the text is predictable). */
export function fmtInt(n) {
  if (n === null || n === undefined) return '—';
  const negative = n < 0;
  const digits = String(Math.abs(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return (negative ? '-' : '') + digits;
}

/** Moves the decimal point `places` to the left, exactly; keeps at least `min` decimals. */
function shift(n, places, min) {
  const negative = n < 0;
  const digits = String(Math.abs(n)).padStart(places + 1, '0');
  const whole = digits.slice(0, digits.length - places);
  let fraction = digits.slice(digits.length - places).replace(/0+$/, '');
  if (fraction.length < min) fraction = fraction.padEnd(min, '0');
  return (negative ? '-' : '') + fmtInt(Number(whole)) + (fraction ? '.' + fraction : '');
}

/** Currency micros, exactly: `1899950000` → `1,899.95`. */
export function fmtMicros(micros, currency) {
  if (micros === null || micros === undefined) return '—';
  return shift(micros, 6, 2) + (currency ? ' ' + currency : '');
}

/** Basis points as a percentage, exactly: `125` → `1.25 %`. */
export function fmtBasisPoints(bp) {
  if (bp === null || bp === undefined) return '—';
  return shift(bp, 2, 0) + ' %';
}

/** A number element with its raw value in `data-value`. */
export function num(value, text, extra = {}) {
  return h('span', { class: 'num', 'data-value': value === null || value === undefined ? '' : value, ...extra }, text);
}

/** A table: `table(['A', 'B'], rows)` where each row is an array of cells or `{cells, attrs}`. */
export function table(headers, rows, attrs = {}) {
  const head = h('thead', {}, h('tr', {}, headers.map((label) => h('th', { scope: 'col' }, label))));
  const body = h('tbody', {}, rows.map((row) => {
    const { cells, attrs: rowAttrs } = Array.isArray(row) ? { cells: row, attrs: {} } : row;
    return h('tr', rowAttrs, cells.map((cell, i) => (i === 0 ? h('th', { scope: 'row' }, cell) : h('td', {}, cell))));
  }));
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': attrs['aria-label'] || 'table' },
    h('table', attrs, head, body));
}

/** A definition list from `[term, description]` pairs (pairs whose description is null are left out). */
export function dl(pairs, attrs = {}) {
  return h('dl', { class: 'facts', ...attrs },
    pairs.filter(([, d]) => d !== null && d !== undefined).map(([t, d]) => [h('dt', {}, t), h('dd', {}, d)]));
}

/** A status badge; `kind` picks its colour class. */
export function badge(text, kind = text) {
  return h('span', { class: `badge badge-${String(kind).replace(/[^a-z0-9_-]/gi, '')}` }, text);
}

/** The chain check as a mark: verified, or where it broke. */
export function chainMark(chain) {
  if (!chain) return null;
  if (chain.verified) {
    return h('span', { class: 'chain ok', 'data-chain': 'verified' },
      '✓ hash chain verified', chain.events !== undefined ? ` (${fmtInt(chain.events)} events)` : '');
  }
  const where = chain.broken ? ` at sequence ${chain.broken.sequence ?? JSON.stringify(chain.broken)}` : '';
  return h('span', { class: 'chain broken', 'data-chain': 'broken' }, `✗ hash chain broken${where}`);
}

/** A page section with a heading. */
export function section(title, attrs = {}, ...children) {
  const id = attrs.id || 'sec-' + title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return h('section', { class: 'card', 'aria-labelledby': id + '-h', ...attrs, id },
    h('h2', { id: id + '-h' }, title), children);
}

/** A labelled form field: `field('Person id', h('input', {...}))`; gives the input an id. */
export function field(label, input, hint) {
  if (!input.id) input.id = 'f-' + Math.random().toString(36).slice(2, 10);
  const hintEl = hint ? h('span', { class: 'hint', id: input.id + '-hint' }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input, hintEl);
}

/** A message for an empty or unavailable part. */
export function note(text, attrs = {}) {
  return h('p', { class: 'note', ...attrs }, text);
}

/** JSON as readable, preformatted text. */
export function pre(value) {
  return h('pre', { class: 'json' }, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
}
