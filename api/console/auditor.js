// The auditor's page: one person's consent timeline per purpose (each change with its notice,
// text hash, method, jurisdiction and evidence, and its receipt), the replay of their consents
// as of any instant (`/v1/audit/people/{id}/consents?as_of=`) with the hash-chain check, and
// their privacy requests (steps, attempts, deadlines, overdue ones marked) with the erasure
// certificates. Everything shown is what those endpoints answer.

import { api, seg } from './api.js';
import { badge, chainMark, dl, field, fmtInt, h, note, replace, section, table } from './dom.js';

/** An instant before any event: the replay there shows nothing granted. */
const BEFORE_EVERYTHING = '1970-01-01T00:00:00Z';

const PURPOSE_NAMES = {
  'cookies.analytics': 'Analytics cookies',
  'cookies.marketing': 'Marketing cookies',
  'email.marketing': 'Marketing email',
  ai_features: 'AI features',
  ad_attribution: 'Ad attribution',
};

const CHANGE_NAMES = {
  granted: 'Granted',
  withdrawn: 'Withdrawn',
  policy_accepted: 'Policy accepted',
  attribution_ids_recorded: 'Click ids recorded',
};

/** A compact text for a value the API gives as an object (an opener, an outcome). */
export function text(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value !== 'object') return String(value);
  return Object.entries(value).map(([k, v]) => `${k}: ${typeof v === 'object' && v !== null ? text(v) : v}`).join('; ');
}

function time(instant) {
  return instant ? h('time', { datetime: instant }, instant) : '—';
}

export async function render(root, params, ctx) {
  const person = (params.get('person') || '').trim();
  const asOf = (params.get('as_of') || '').trim();
  const { signal } = ctx;

  const input = h('input', { name: 'person', value: person, list: 'people-seen', autocomplete: 'off', spellcheck: 'false', required: true });
  const seen = h('datalist', { id: 'people-seen' });
  const form = h('form', {
    class: 'inline', 'aria-label': 'Choose a person',
    onsubmit: (event) => {
      event.preventDefault();
      if (input.value.trim()) ctx.navigate({ person: input.value.trim() });
    },
  }, field('Person id', input, 'People with privacy requests are suggested.'), seen, h('button', { type: 'submit' }, 'Show'));
  root.append(h('h1', {}, 'Auditor'), section('Person', { id: 'person' }, form));

  // Suggestions: every person with a privacy request (the auditor may list them all).
  const suggestions = api('/v1/audit/privacy-requests', { signal }).then((all) => {
    const ids = [...new Set(all.requests.map((r) => r.person_id))];
    replace(seen, ids.map((id) => h('option', { value: id })));
  });

  if (!person) {
    root.append(note('Enter a person id to see their consents and privacy requests.'));
    await suggestions;
    return;
  }

  const base = `/v1/audit/people/${seg(person)}/consents`;
  const [full, requests] = await Promise.all([
    api(base, { signal }),
    api(`/v1/audit/privacy-requests?person=${encodeURIComponent(person)}`, { signal }),
    suggestions,
  ]);
  const erased = requests.requests.some((r) => r.kind === 'erase' && r.state === 'completed');
  const certificates = erased ? await api(`/v1/audit/people/${seg(person)}/erasure-certificates`, { signal }) : null;

  root.append(
    asOfSection(person, full, asOf, ctx),
    timelineSection(person, full, ctx),
    requestsSection(requests.requests),
    certificatesSection(certificates),
  );
  if (asOf) await root.querySelector('#as-of').replay(asOf);
}

/** The state per purpose as of an instant, with a slider over the instants of the changes. */
function asOfSection(person, full, initial, ctx) {
  const history = full.history;
  const stops = [BEFORE_EVERYTHING, ...history.map((e) => e.recorded_at)];
  const startIndex = initial ? stops.indexOf(initial) : stops.length - 1;
  const slider = h('input', {
    type: 'range', min: 0, max: stops.length - 1, step: 1, value: startIndex >= 0 ? startIndex : stops.length - 1,
    id: 'as-of-step', 'aria-describedby': 'as-of-step-text',
  });
  const sliderText = h('output', { id: 'as-of-step-text', for: 'as-of-step' });
  const instant = h('input', { id: 'as-of-instant', name: 'as_of', value: initial, placeholder: '2026-11-29T12:00:00Z', spellcheck: 'false', autocomplete: 'off' });
  const result = h('div', { id: 'as-of-result', 'aria-live': 'polite' });
  let latest = 0;

  function describe(index, at = stops[Number(index)]) {
    const value = Number(index);
    const label = value === 0 ? `before the first change (${at})` : `after change ${value} of ${history.length} (${at})`;
    sliderText.textContent = label;
    slider.setAttribute('aria-valuetext', label);
  }

  async function replay(at) {
    latest += 1;
    const mine = latest;
    result.dataset.loading = 'true';
    const answer = at ? await api(`/v1/audit/people/${seg(person)}/consents?as_of=${encodeURIComponent(at)}`, { signal: ctx.signal }) : full;
    if (mine !== latest) return;
    showState(result, answer, at);
    // The slider follows: the changes recorded up to that instant (the API writes instants
    // in one format, so their text orders as their time does).
    const applied = history.filter((e) => e.recorded_at <= answer.as_of).length;
    slider.value = applied;
    describe(applied, answer.as_of);
    window.history.replaceState(null, '', `#/auditor?${new URLSearchParams(at ? { person, as_of: at } : { person })}`);
  }

  slider.addEventListener('input', () => {
    const at = stops[Number(slider.value)];
    describe(slider.value);
    instant.value = at;
    replay(at).catch((error) => error.name !== 'AbortError' && ctx.showError(error));
  });
  const form = h('form', {
    class: 'inline', 'aria-label': 'Replay at an instant',
    onsubmit: (event) => {
      event.preventDefault();
      const at = instant.value.trim();
      replay(at).catch((error) => error.name !== 'AbortError' && ctx.showError(error));
    },
  },
  field('Instant (RFC 3339, UTC)', instant, 'Any instant; the slider steps through the changes.'),
  h('button', { type: 'submit' }, 'Replay'),
  h('button', {
    type: 'button',
    onclick: () => {
      instant.value = '';
      slider.value = stops.length - 1;
      describe(slider.value);
      replay('').catch((error) => error.name !== 'AbortError' && ctx.showError(error));
    },
  }, 'Now'));

  describe(slider.value);
  showState(result, full, '');
  const sec = section('Consents as of an instant', { id: 'as-of' },
    h('p', {}, 'Replayed from the person\u2019s consent stream in the event log, its hash chain verified.'),
    h('div', { class: 'field' }, h('label', { for: 'as-of-step' }, 'Step through the changes'), slider, sliderText),
    form, result);
  sec.replay = replay;
  return sec;
}

function showState(container, answer, requested) {
  container.dataset.asOf = answer.as_of;
  container.dataset.requested = requested;
  container.dataset.loading = 'false';
  replace(container,
    h('p', {}, 'State as of ', time(answer.as_of), ' ', chainMark(answer.chain)),
    table(['Purpose', 'State', 'Since', 'Notice', 'Method'], answer.purposes.map((p) => ({
      attrs: { 'data-purpose': p.purpose, 'data-granted': String(p.granted), 'data-set-by': p.set_by ? p.set_by.event_id : '' },
      cells: [
        PURPOSE_NAMES[p.purpose] || p.purpose,
        p.granted ? badge('Granted', 'granted') : (p.set_by ? badge('Withdrawn', 'withdrawn') : badge('Never given', 'none')),
        p.set_by ? time(p.set_by.recorded_at) : '—',
        p.set_by && p.set_by.notice ? p.set_by.notice.version_label : '—',
        p.set_by ? p.set_by.method : '—',
      ],
    })), { 'aria-label': 'Consent state per purpose', class: 'state' }),
    answer.policy_acceptance
      ? h('p', {}, 'Policy accepted: ', answer.policy_acceptance.notice.version_label, ' at ', time(answer.policy_acceptance.recorded_at))
      : null);
}

/** Which timeline an entry belongs to. */
function groupOf(entry) {
  if (entry.change === 'policy_accepted') return 'policy';
  if (entry.change === 'attribution_ids_recorded') return 'ad_attribution';
  return entry.purpose;
}

/** Every change, one timeline per purpose (and one for policy notices), in the stream's order. */
function timelineSection(person, full, ctx) {
  const groups = [...full.purposes.map((p) => p.purpose), 'policy'];
  const lists = groups.map((group) => {
    const entries = full.history.filter((e) => groupOf(e) === group);
    const title = group === 'policy' ? 'Policy notices' : (PURPOSE_NAMES[group] || group);
    return h('div', { class: 'timeline-group', 'data-group': group },
      h('h3', {}, title, ' ', h('span', { class: 'count' }, `(${entries.length})`)),
      entries.length
        ? h('ol', { class: 'timeline' }, entries.map((e) => entryItem(person, e, ctx)))
        : note('No change recorded.'));
  });
  return section('Consent timeline', { id: 'timeline' },
    h('p', {}, `${fmtInt(full.history.length)} ${full.history.length === 1 ? 'change' : 'changes'}. `, chainMark(full.chain)), lists);
}

function entryItem(person, entry, ctx) {
  const receiptBox = h('div', { class: 'receipt', id: `receipt-${entry.event_id}`, hidden: true });
  const button = h('button', { type: 'button', class: 'link', 'aria-expanded': 'false', 'aria-controls': receiptBox.id }, 'Receipt');
  button.addEventListener('click', async () => {
    const open = button.getAttribute('aria-expanded') === 'true';
    if (open) {
      button.setAttribute('aria-expanded', 'false');
      receiptBox.hidden = true;
      return;
    }
    if (!receiptBox.dataset.loaded) {
      try {
        const receipt = await api(`/v1/audit/people/${seg(person)}/consents/receipts/${seg(entry.event_id)}`, { signal: ctx.signal });
        replace(receiptBox, receiptView(receipt));
        receiptBox.dataset.loaded = 'true';
      } catch (error) {
        if (error.name !== 'AbortError') ctx.showError(error);
        return;
      }
    }
    receiptBox.hidden = false;
    button.setAttribute('aria-expanded', 'true');
  });
  const notice = entry.notice;
  const evidence = entry.evidence;
  return h('li', { class: `entry change-${entry.change}`, 'data-event-id': entry.event_id, 'data-change': entry.change, 'data-recorded-at': entry.recorded_at },
    h('div', { class: 'entry-head' }, badge(CHANGE_NAMES[entry.change] || entry.change, entry.change), ' ', time(entry.recorded_at),
      h('span', { class: 'seq' }, ` #${entry.sequence}`)),
    dl([
      ['Notice', notice ? `${notice.version_label} (${notice.document_id})` : null],
      ['Text hash', notice ? h('code', { class: 'hash' }, notice.text_sha256) : null],
      ['Acceptance', entry.acceptance ? text(entry.acceptance) : null],
      ['Method', entry.method || null],
      ['Jurisdiction', entry.jurisdiction || null],
      ['Evidence', evidence ? `${evidence.user_agent || 'no user agent'}; IP ${evidence.ip_truncated || 'not recorded'}` : null],
      ['Click ids', entry.change === 'attribution_ids_recorded' ? `fbc ${entry.fbc_recorded ? 'recorded' : 'absent'}, fbp ${entry.fbp_recorded ? 'recorded' : 'absent'}` : null],
    ]),
    button, receiptBox);
}

function receiptView(r) {
  const integrity = r.integrity || {};
  return dl([
    ['Record', h('code', {}, r.record_id)],
    ['State', r.state],
    ['Timestamp', time(r.timestamp)],
    ['Purposes', r.purposes && r.purposes.length ? r.purposes.map((p) => `${p.purpose} — ${p.legal_basis}`).join('; ') : '—'],
    ['Collection method', r.collection_method || '—'],
    ['Jurisdiction', r.jurisdiction || '—'],
    ['Stream', `${integrity.stream} #${integrity.sequence}`],
    ['Chain hash', h('code', { class: 'hash', 'data-chain-hash': integrity.chain_hash }, integrity.chain_hash)],
    ['Chain', chainMark({ verified: integrity.chain_verified })],
    ['Schema', r.schema_version],
  ], { 'data-receipt': r.record_id });
}

/** One request with its steps: the audit trail of the `privacy_requests` read model. */
export function requestArticle(r, extra = null) {
  return h('article', { class: `request${r.overdue ? ' overdue' : ''}`, 'data-request-id': r.request_id, 'data-state': r.state, 'data-overdue': String(Boolean(r.overdue)) },
    h('h3', {}, `${r.kind} `, h('code', {}, r.request_id), ' ', badge(r.state, r.state), r.overdue ? [' ', badge('Overdue', 'overdue')] : null),
    dl([
      ['Person', h('code', {}, r.person_id)],
      ['Opened by', text(r.opened_by)],
      ['Opened at', time(r.opened_at)],
      ['Deadline', h('span', { class: r.overdue ? 'deadline overdue' : 'deadline' }, time(r.deadline), r.overdue ? ' (overdue)' : '')],
      ['Completed at', r.completed_at ? time(r.completed_at) : null],
    ]),
    stepsTable(r.steps),
    extra);
}

/** The steps of a request (from the list, or from a request's own view). */
export function stepsTable(steps) {
  return table(['Step', 'Status', 'Attempts', 'Started', 'Finished', 'Outcome', 'Evidence'], steps.map((s) => {
    const result = s.result || {};
    return {
      attrs: { 'data-step': s.step, 'data-status': s.status, 'data-attempts': s.attempts },
      cells: [
        h('code', {}, s.step),
        badge(s.status, s.status),
        h('span', { class: 'num', 'data-value': s.attempts }, fmtInt(s.attempts)),
        time(s.started_at),
        time(s.finished_at),
        s.outcome !== undefined ? text(s.outcome) : text(result.outcome),
        s.evidence !== undefined ? text(s.evidence) : text(result.evidence || result.reason || (result.by ? `by ${result.by}` : null)),
      ],
    };
  }), { 'aria-label': 'Steps' });
}

function requestsSection(requests) {
  return section('Privacy requests', { id: 'requests' },
    requests.length ? requests.map((r) => requestArticle(r)) : note('No privacy request for this person.'));
}

function certificatesSection(answer) {
  if (!answer) return section('Erasure certificates', { id: 'certificates' }, note('No erasure certificate: this person has not been erased.'));
  return section('Erasure certificates', { id: 'certificates' }, answer.certificates.map((c) => {
    const cert = c.certificate;
    return h('article', { class: 'certificate', 'data-request-id': c.request_id, 'data-keys': cert.keys_destroyed.length },
      h('h3', {}, 'Erasure of request ', h('code', {}, c.request_id), ' ', chainMark(c.chain)),
      dl([
        ['Issued at', time(c.issued_at)],
        ['Erased at', time(cert.erased_at)],
        ['Event', h('code', {}, c.event_id)],
        ['Stream', c.chain ? c.chain.stream : null],
        ['Chain hash', c.chain_hash ? h('code', { class: 'hash' }, c.chain_hash) : null],
        ['Keys destroyed', h('span', { class: 'num', 'data-value': cert.keys_destroyed.length }, fmtInt(cert.keys_destroyed.length))],
      ]),
      h('details', {}, h('summary', {}, 'Key ids destroyed'), h('ul', { class: 'plain' }, cert.keys_destroyed.map((k) => h('li', {}, h('code', {}, k))))),
      h('h4', {}, 'Steps'),
      table(['Step', 'Completed', 'Outcome', 'Evidence'], cert.steps.map((s) => [h('code', {}, s.step), time(s.completed_at), s.outcome, s.evidence || s.reason || '—']), { 'aria-label': 'Certified steps' }),
      h('h4', {}, 'Kept, and why'),
      table(['Category', 'Basis', 'What'], cert.kept.map((k) => [k.category, k.basis, k.detail]), { 'aria-label': 'Kept after erasure' }));
  }));
}
