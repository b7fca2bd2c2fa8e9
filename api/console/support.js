// Support's page: the privacy requests (filter by person and state), opening one on a
// person's behalf, and on a chosen request: verify the identity, extend the deadline, retry
// from the failed step, record a step done by hand (also deny, pause, resume). Each action is
// the API's command (`/v1/support/privacy-requests/{id}/{action}`, with an Idempotency-Key)
// and the request is shown again as the API answers it.
//
// Parked workflow items come from `GET /v1/operations/workflows` (`{"items": [{"workflow",
// "item", "state": "parked", "attempts", "last_error", "updated_at", …}]}`), each with a retry
// (`POST /v1/operations/workflows/{workflow}/items/{item}/retry`, body `{}`); a version of the
// API without the route says "not available".

import { api, optional, seg } from './api.js';
import { stepsTable, text } from './auditor.js';
import { badge, chainMark, dl, field, fmtInt, h, note, num, replace, section, table } from './dom.js';

const KINDS = ['access', 'erase', 'restrict', 'lift_restriction', 'rectify'];
const STATES = ['', 'pending', 'in_progress', 'failed', 'paused', 'completed', 'denied'];

function time(instant) {
  return instant ? h('time', { datetime: instant }, instant) : '—';
}

export async function render(root, params, ctx) {
  const { signal } = ctx;
  const selected = params.get('request') || '';
  const person = params.get('person') || '';
  const state = params.get('state') || '';

  root.append(h('h1', {}, 'Support'));
  const detail = h('div', { id: 'request-detail' });
  root.append(detail);

  const filters = { person, state, selected };
  const listHolder = h('div', { id: 'requests-holder' });
  // The list comes from the audit trail's read model: after a command it is read with the
  // command's position as `min_position`, so it shows what was just done.
  ctx.reloadList = async () => {
    const query = new URLSearchParams();
    if (person) query.set('person', person);
    if (state) query.set('state', state);
    if (lastPosition) query.set('min_position', lastPosition);
    const list = await api(`/v1/audit/privacy-requests${query.toString() ? '?' + query : ''}`, { signal });
    replace(listHolder, listSection(list.requests, filters, ctx));
  };
  const [, workflows, view] = await Promise.all([
    ctx.reloadList(),
    optional('/v1/operations/workflows', null, { signal }),
    selected ? api(`/v1/support/privacy-requests/${seg(selected)}`, { signal }) : null,
  ]);

  if (view) replace(detail, requestSection(view, ctx, detail));
  root.append(listHolder, openSection(ctx), workflowsSection(workflows, ctx));
}

/** The feed position of the last command this tab sent (its answer's `position`). */
let lastPosition = null;

function listSection(requests, filters, ctx) {
  const personInput = h('input', { name: 'person', value: filters.person, autocomplete: 'off', spellcheck: 'false' });
  const stateSelect = h('select', { name: 'state' }, STATES.map((s) => h('option', { value: s, selected: s === filters.state }, s || 'any')));
  const form = h('form', {
    class: 'inline', 'aria-label': 'Filter requests',
    onsubmit: (event) => {
      event.preventDefault();
      ctx.navigate({ person: personInput.value.trim(), state: stateSelect.value, request: filters.selected });
    },
  }, field('Person id', personInput), field('State', stateSelect), h('button', { type: 'submit' }, 'Filter'));
  const rows = requests.map((r) => ({
    attrs: { 'data-request-id': r.request_id, 'data-state': r.state, class: r.overdue ? 'overdue' : null },
    cells: [
      h('a', { href: `#/support?${new URLSearchParams({ ...strip(filters), request: r.request_id })}` }, r.request_id),
      h('code', {}, r.person_id),
      r.kind,
      badge(r.state, r.state),
      h('span', {}, time(r.deadline), r.overdue ? [' ', badge('Overdue', 'overdue')] : null),
      time(r.opened_at),
    ],
  }));
  return section('Privacy requests', { id: 'requests' }, form,
    requests.length
      ? table(['Request', 'Person', 'Kind', 'State', 'Deadline', 'Opened'], rows, { 'aria-label': 'Privacy requests' })
      : note('No request matches.'));
}

function strip(filters) {
  const out = {};
  if (filters.person) out.person = filters.person;
  if (filters.state) out.state = filters.state;
  return out;
}

function openSection(ctx) {
  const person = h('input', { name: 'person', required: true, autocomplete: 'off', spellcheck: 'false' });
  const kind = h('select', { name: 'kind' }, KINDS.map((k) => h('option', { value: k }, k)));
  const reason = h('input', { name: 'reason', required: true, placeholder: 'email to privacy@ on 2026-11-28' });
  const name = h('input', { name: 'name', autocomplete: 'off' });
  const email = h('input', { name: 'email', type: 'email', autocomplete: 'off' });
  const rectify = h('fieldset', { hidden: true }, h('legend', {}, 'New values (rectify)'), field('Name', name), field('Email', email));
  kind.addEventListener('change', () => { rectify.hidden = kind.value !== 'rectify'; });
  const form = h('form', {
    'aria-label': 'Open a request',
    onsubmit: async (event) => {
      event.preventDefault();
      const body = { kind: kind.value, reason: reason.value.trim() };
      if (kind.value === 'rectify') {
        if (name.value.trim()) body.name = name.value.trim();
        if (email.value.trim()) body.email = email.value.trim();
      }
      await act(ctx, () => api(`/v1/support/people/${seg(person.value.trim())}/privacy-requests`, { method: 'POST', body }),
        (answer) => ctx.navigate({ request: answer.request_id }));
    },
  },
  field('Person id', person),
  field('Kind', kind),
  field('How the person asked', reason),
  rectify,
  h('button', { type: 'submit' }, 'Open request'));
  return section('Open a request on a person\u2019s behalf', { id: 'open' }, form);
}

/** Runs a command, shows its refusal, and hands its answer on. */
async function act(ctx, run, then) {
  ctx.showError(null);
  try {
    const answer = await run();
    if (answer && typeof answer.position === 'string') lastPosition = answer.position;
    await then(answer);
  } catch (error) {
    if (error.name !== 'AbortError') ctx.showError(error);
  }
}

function requestSection(view, ctx, container) {
  const id = view.request_id;
  // After a command, the request as the API tells it now (with its chain check).
  const show = async (verb) => {
    const fresh = await api(`/v1/support/privacy-requests/${seg(id)}`, { signal: ctx.signal });
    replace(container, requestSection(fresh, ctx, container));
    const status = container.querySelector('[role="status"]');
    status.textContent = `${verb}: done; the request is ${fresh.state}.`;
    container.querySelector('h2').focus();
    await ctx.reloadList();
  };
  // `data-actions` on the container counts the actions answered (done or refused).
  const post = async (verb, body) => {
    await act(ctx, () => api(`/v1/support/privacy-requests/${seg(id)}/${verb}`, { method: 'POST', body }), () => show(verb));
    container.dataset.actions = String(Number(container.dataset.actions || 0) + 1);
  };

  const method = h('input', { name: 'method', required: true, placeholder: 'reply from the account\u2019s email address' });
  const verify = h('form', { 'aria-label': 'Verify identity', 'data-action': 'verify', onsubmit: (e) => { e.preventDefault(); post('verify', { method: method.value.trim() }); } },
    field('How the identity was checked', method), h('button', { type: 'submit' }, 'Verify identity'));

  const extendReason = h('input', { name: 'reason', required: true });
  const until = h('input', { name: 'until', type: 'date', required: true });
  const extend = h('form', {
    'aria-label': 'Extend the deadline', 'data-action': 'extend',
    onsubmit: (e) => { e.preventDefault(); post('extend', { reason: extendReason.value.trim(), until: `${until.value}T23:59:59Z` }); },
  }, field('Why more time is needed', extendReason), field('New deadline (end of day, UTC)', until), h('button', { type: 'submit' }, 'Extend deadline'));

  const retry = h('form', { 'aria-label': 'Retry', 'data-action': 'retry', onsubmit: (e) => { e.preventDefault(); post('retry', {}); } },
    h('p', { class: 'hint' }, 'Runs the request again from its first step not done.'), h('button', { type: 'submit' }, 'Retry'));

  const open = view.steps.filter((s) => s.status !== 'done');
  const step = h('select', { name: 'step' }, open.map((s) => h('option', { value: s.step }, `${s.step} (${s.status})`)));
  const evidence = h('textarea', { name: 'evidence', rows: 2, required: true });
  const manual = h('form', {
    'aria-label': 'Record a manual step', 'data-action': 'manual-step',
    onsubmit: (e) => { e.preventDefault(); post('manual-step', { step: step.value, evidence: evidence.value.trim() }); },
  }, field('Step', step), field('What was done by hand', evidence), h('button', { type: 'submit', disabled: open.length === 0 }, 'Record manual step'));

  const reason = h('input', { name: 'reason' });
  const other = h('form', { 'aria-label': 'Deny, pause or resume', 'data-action': 'other', onsubmit: (e) => e.preventDefault() },
    field('Reason (deny, pause)', reason),
    h('div', { class: 'buttons' },
      h('button', { type: 'button', onclick: () => post('pause', { reason: reason.value.trim() }) }, 'Pause'),
      h('button', { type: 'button', onclick: () => post('resume', {}) }, 'Resume'),
      h('button', { type: 'button', class: 'danger', onclick: () => post('deny', { reason: reason.value.trim() }) }, 'Deny')));

  const sec = section(`Request ${id}`, { id: 'request', 'data-request-id': id, 'data-state': view.state },
    h('p', { role: 'status', class: 'status' }),
    h('p', {}, chainMark(view.chain)),
    dl([
      ['Kind', view.kind],
      ['State', badge(view.state, view.state)],
      ['Person', h('code', {}, view.person_id)],
      ['Opened by', text(view.opened_by)],
      ['Opened at', time(view.opened_at)],
      ['Deadline', h('span', { 'data-deadline': view.deadline || '' }, time(view.deadline))],
      ['Extension reason', view.extension_reason || null],
      ['Identity verified', view.verified ? `${view.verified.method} at ${view.verified.at}` : 'not yet'],
      ['Pause reason', view.pause_reason || null],
      ['Denial reason', view.denial_reason || null],
      ['Completed at', view.completed_at ? time(view.completed_at) : null],
    ]),
    stepsTable(view.steps),
    view.erasure_certificate
      ? h('p', {}, 'Erasure certificate issued: ', fmtInt(view.erasure_certificate.certificate.keys_destroyed.length), ' keys destroyed, chain hash ',
        h('code', { class: 'hash' }, view.erasure_certificate.chain_hash))
      : null,
    ['completed', 'denied'].includes(view.state)
      ? note(`This request is ${view.state}: no action applies to it any more.`, { 'data-actions': 'none' })
      : h('div', { class: 'actions' }, verify, extend, retry, manual, other),
    h('details', {}, h('summary', {}, `History (${view.history.length} events)`),
      table(['Event', 'Recorded at', 'Actor'], view.history.map((e) => [e.event_type, time(e.recorded_at), e.actor || '—']), { 'aria-label': 'History' })));
  sec.querySelector('h2').setAttribute('tabindex', '-1');
  return sec;
}

function workflowsSection(answer, ctx) {
  if (answer === null) {
    return section('Parked workflow items', { id: 'workflows', 'data-available': 'false' },
      note('Not available: this version of the API has no parked workflow items (GET /v1/operations/workflows).'));
  }
  const items = (answer.items || []).filter((i) => i.state === 'parked');
  return section('Parked workflow items', { id: 'workflows', 'data-available': 'true' },
    items.length
      ? table(['Workflow', 'Item', 'Attempts', 'Parked at', 'Why', ''], items.map((item) => ({
        attrs: { 'data-workflow': item.workflow, 'data-item': item.item },
        cells: [
          h('code', {}, item.workflow), h('code', {}, item.item),
          num(item.attempts, fmtInt(item.attempts), { 'data-field': 'attempts' }), time(item.updated_at), text(item.last_error),
          h('button', {
            type: 'button',
            onclick: () => act(ctx, () => api(`/v1/operations/workflows/${seg(item.workflow)}/items/${seg(item.item)}/retry`,
              { method: 'POST', body: {} }), () => ctx.navigate({})),
          }, 'Retry'),
        ],
      })), { 'aria-label': 'Parked workflow items' })
      : note('Nothing is parked.'));
}
