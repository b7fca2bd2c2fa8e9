// The operator's page: every projection (state, position, events applied, lag, a stall and
// its cause, a rebuild's progress) and the head of the global feed, from
// `GET /v1/operations/projections`; the scheduled jobs from `GET /v1/operations/jobs`
// (`{"now", "jobs": [{"job", "schedule": "HH:MM" | "off", "setting", "last_run": {"run_key",
// "started_at", "finished_at", "outcome", "lease_until", "attempts"} | null, "next_run"}]}`);
// and the durable workflows from `GET /v1/operations/workflows` (checkpoint and item counts).
// A section whose route the API does not have says "not available".

import { api, optional } from './api.js';
import { badge, dl, fmtInt, h, note, num, section, table } from './dom.js';
import { text } from './auditor.js';

/** A feed position as the API writes it in tokens: `commit.global`. */
function position(p) {
  if (p === null || p === undefined) return '—';
  if (typeof p === 'string') return p;
  return `${p.commit}.${p.global}`;
}

function time(instant) {
  return instant ? h('time', { datetime: instant }, instant) : '—';
}

export async function render(root, params, ctx) {
  const { signal } = ctx;
  const [status, jobs, workflows] = await Promise.all([
    api('/v1/operations/projections', { signal }),
    optional('/v1/operations/jobs', null, { signal }),
    optional('/v1/operations/workflows', null, { signal }),
  ]);
  const refresh = h('button', { type: 'button', onclick: () => ctx.navigate({}) }, 'Refresh');
  root.append(
    h('div', { class: 'title-row' }, h('h1', {}, 'Operator'), refresh),
    feedSection(status.feed_head),
    projectionsSection(status.projections),
    jobsSection(jobs),
    workflowsSection(workflows),
  );
}

function feedSection(head) {
  return section('Global feed', { id: 'feed' }, dl([
    ['Head position', h('code', { 'data-feed-head': head.position || '' }, head.position || 'empty')],
    ['Events', num(head.events, fmtInt(head.events), { 'data-field': 'events' })],
  ]));
}

function projectionsSection(projections) {
  const stalled = projections.filter((p) => p.state === 'stalled');
  const rows = projections.map((p) => ({
    attrs: { 'data-projection': p.name, 'data-state': p.state, class: p.state === 'stalled' ? 'stalled' : null },
    cells: [
      h('code', {}, p.name),
      badge(p.state, p.state),
      `v${p.version} / g${p.generation ?? '—'}`,
      h('code', { 'data-field': 'position' }, position(p.position)),
      num(p.events_applied, fmtInt(p.events_applied), { 'data-field': 'events_applied' }),
      num(p.lag_events, fmtInt(p.lag_events), { 'data-field': 'lag_events' }),
      num(p.lag_seconds, String(p.lag_seconds), { 'data-field': 'lag_seconds' }),
      p.last_error ? h('span', { class: 'error-text' }, p.last_error, p.error_position ? ` (at ${p.error_position})` : '') : '—',
      p.rebuilding ? rebuilding(p.rebuilding) : '—',
    ],
  }));
  return section('Projections', { id: 'projections' },
    stalled.length
      ? h('p', { class: 'warning', 'data-stalled': stalled.length }, `${stalled.length} stalled: `, stalled.map((p) => p.name).join(', '))
      : h('p', { 'data-stalled': 0 }, 'None stalled.'),
    table(['Projection', 'State', 'Version', 'Position', 'Applied', 'Lag (events)', 'Lag (s)', 'Stall cause', 'Rebuild'], rows,
      { 'aria-label': 'Projections' }));
}

/** A generation being rebuilt beside the active one: applied so far, and what is left. */
function rebuilding(r) {
  const total = r.events_applied + r.lag_events;
  return h('div', { class: 'rebuild', 'data-generation': r.generation },
    h('progress', { max: total || 1, value: r.events_applied, 'aria-label': `rebuild of generation ${r.generation}` }),
    ` g${r.generation} v${r.version}: `, num(r.events_applied, fmtInt(r.events_applied)), ' applied, ',
    num(r.lag_events, fmtInt(r.lag_events)), ' to go, at ', h('code', {}, position(r.position)));
}

function jobsSection(answer) {
  if (answer === null) {
    return section('Jobs', { id: 'jobs', 'data-available': 'false' },
      note('Not available: this version of the API does not report its jobs (GET /v1/operations/jobs).'));
  }
  const jobs = answer.jobs || [];
  const state = (run) => {
    if (!run) return 'never';
    if (!run.finished_at) return 'running';
    return (run.outcome || '').startsWith('failed') ? 'failed' : 'done';
  };
  return section('Jobs', { id: 'jobs', 'data-available': 'true' },
    jobs.length
      ? table(['Job', 'Schedule', 'Last day', 'State', 'Outcome', 'Claims', 'Next run'], jobs.map((j) => ({
        attrs: { 'data-job': j.job, 'data-state': state(j.last_run) },
        cells: [h('code', {}, j.job), h('span', { 'data-field': 'schedule' }, j.schedule),
          j.last_run ? j.last_run.run_key : '—', badge(state(j.last_run), state(j.last_run)),
          j.last_run ? text(j.last_run.outcome) : '—',
          j.last_run ? num(j.last_run.attempts, fmtInt(j.last_run.attempts), { 'data-field': 'attempts' }) : '—',
          h('span', { 'data-field': 'next_run' }, j.next_run ? time(j.next_run) : 'off')],
      })), { 'aria-label': 'Jobs' })
      : note('No job.'));
}

function workflowsSection(answer) {
  if (answer === null) {
    return section('Workflows', { id: 'workflow-counts', 'data-available': 'false' },
      note('Not available: this version of the API does not report its workflows (GET /v1/operations/workflows).'));
  }
  const workflows = answer.workflows || [];
  return section('Workflows', { id: 'workflow-counts', 'data-available': 'true' },
    table(['Workflow', 'Checkpoint', 'Pending', 'Done', 'Parked', 'Waiting for'], workflows.map((w) => ({
      attrs: { 'data-workflow': w.workflow, class: w.parked ? 'stalled' : null },
      cells: [h('code', {}, w.workflow), h('code', {}, w.checkpoint),
        num(w.pending, fmtInt(w.pending), { 'data-field': 'pending' }),
        num(w.done, fmtInt(w.done), { 'data-field': 'done' }),
        num(w.parked, fmtInt(w.parked), { 'data-field': 'parked' }),
        w.blocked ? text(w.blocked) : '—'],
    })), { 'aria-label': 'Workflows' }));
}
