// Small charts drawn as inline SVG (no library): bars or a line over periods. Every point is an
// element with `data-period` and `data-value` (the API's number, untouched) and a `<title>`
// that shows the period and the formatted value on hover; a table of the same points follows
// the chart for keyboard and screen-reader users.

import { h, s, table } from './dom.js';

const W = 640;
const H = 240;
const M = { top: 12, right: 12, bottom: 30, left: 72 };

/** A "nice" tick step of at least `value`: 1, 2, 2.5 or 5 times a power of ten (whole
 * numbers only when `whole`). */
function niceStep(value, whole) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  const steps = whole && power < 10 ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10];
  for (const step of steps) if (step * power >= value) return Math.max(whole ? 1 : 0, step * power);
  return 10 * power;
}

/**
 * `chart({title, points: [{period, value}], kind: 'bar' | 'line', format, axisFormat})` →
 * a `<figure>` with the SVG and a table of the points.
 */
export function chart({ title, points, kind = 'bar', format = String, axisFormat = format, id, whole = false }) {
  const figureId = id || 'chart-' + Math.random().toString(36).slice(2, 9);
  const step = niceStep(Math.max(0, ...points.map((p) => p.value)) / 4, whole);
  const max = step * 4;
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const band = points.length ? plotW / points.length : plotW;
  const x = (i) => M.left + band * i + band / 2;
  const y = (v) => M.top + plotH - (Math.max(0, v) / max) * plotH;

  const grid = [];
  for (let i = 0; i <= 4; i += 1) {
    const value = step * i;
    grid.push(s('line', { class: 'grid', x1: M.left, x2: W - M.right, y1: y(value), y2: y(value) }));
    grid.push(s('text', { class: 'axis', x: M.left - 6, y: y(value) + 4, 'text-anchor': 'end' }, axisFormat(value)));
  }
  const every = Math.max(1, Math.ceil(points.length / 5));
  const labels = points.map((p, i) => (i % every === 0
    ? s('text', { class: 'axis', x: x(i), y: H - 10, 'text-anchor': 'middle' }, p.period)
    : null));

  let marks;
  if (kind === 'line') {
    const path = points.map((p, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
    marks = [
      s('path', { class: 'line', d: path || 'M0,0' }),
      points.map((p, i) => s('circle', {
        class: 'point', cx: x(i).toFixed(1), cy: y(p.value).toFixed(1), r: 3.5,
        'data-period': p.period, 'data-value': p.value,
      }, s('title', {}, `${p.period}: ${format(p.value)}`))),
    ];
  } else {
    const width = Math.max(1, band * 0.72);
    marks = points.map((p, i) => s('rect', {
      class: 'bar', x: (x(i) - width / 2).toFixed(1), y: y(p.value).toFixed(1), width: width.toFixed(1),
      height: Math.max(0, M.top + plotH - y(p.value)).toFixed(1),
      'data-period': p.period, 'data-value': p.value,
    }, s('title', {}, `${p.period}: ${format(p.value)}`)));
  }

  const svg = s('svg', {
    viewBox: `0 0 ${W} ${H}`, class: `chart chart-${kind}`, role: 'img', 'aria-labelledby': `${figureId}-t`,
  }, s('title', { id: `${figureId}-t` }, `${title}: ${points.length} points`), grid, labels, marks);

  return h('figure', { class: 'chart-figure', id: figureId, 'data-chart': kind },
    h('figcaption', {}, title),
    points.length ? svg : h('p', { class: 'note' }, 'No data for these filters.'),
    h('details', { class: 'chart-table' }, h('summary', {}, `${title} as a table`),
      table(['Period', 'Value'], points.map((p) => [p.period, h('span', { class: 'num', 'data-value': p.value }, format(p.value))]),
        { 'aria-label': `${title} as a table` })));
}
