// An artist's page, for the people of its team: the dashboard as charts (spend and results per
// day, week or month, filtered by platform and campaign), the KPIs, the totals per platform
// and per campaign, the campaigns with their stage, and the billing account's usage and
// statements. Every number is the API's (`/v1/artists/{id}/dashboard`, `/campaigns`,
// `/v1/billing/accounts/{id}`, `/usage`, `/statements/{period}`), shown exactly; someone who
// is not on the artist's team gets the API's 404 and this page shows nothing of the artist.

import { api, ApiError, seg } from './api.js';
import { chart } from './chart.js';
import { badge, dl, field, fmtBasisPoints, fmtInt, fmtMicros, h, note, num, replace, section, table } from './dom.js';

const GRANULARITIES = ['day', 'week', 'month'];
const PLATFORMS = { meta: 'Meta', google_ads: 'Google Ads', youtube: 'YouTube', spotify: 'Spotify' };
const KPIS = [
  ['cpm_micros', 'CPM', 'money'],
  ['cpc_micros', 'CPC', 'money'],
  ['ctr_basis_points', 'CTR', 'bp'],
  ['cost_per_view_micros', 'Cost per view', 'money'],
  ['cost_per_follow_micros', 'Cost per follow', 'money'],
  ['cost_per_result_micros', 'Cost per result', 'money'],
];

function isoDay(value) {
  return /^\d{4}-\d{2}-\d{2}$/.test(value || '') ? value : '';
}

export async function render(root, params, ctx) {
  const filters = {
    artist: (params.get('artist') || '').trim(),
    account: (params.get('account') || '').trim(),
    from: isoDay(params.get('from')),
    to: isoDay(params.get('to')),
    granularity: GRANULARITIES.includes(params.get('granularity')) ? params.get('granularity') : 'week',
    platform: params.get('platform') || '',
    campaign: params.get('campaign') || '',
  };

  const artistInput = h('input', { name: 'artist', value: filters.artist, autocomplete: 'off', spellcheck: 'false', required: true });
  const accountInput = h('input', { name: 'account', value: filters.account, autocomplete: 'off', spellcheck: 'false', placeholder: 'cus_…' });
  const choose = h('form', {
    class: 'inline', 'aria-label': 'Choose an artist',
    onsubmit: (event) => {
      event.preventDefault();
      ctx.navigate({ artist: artistInput.value.trim(), account: accountInput.value.trim(), granularity: filters.granularity });
    },
  }, field('Artist id', artistInput), field('Billing account (optional)', accountInput), h('button', { type: 'submit' }, 'Show'));
  const heading = h('h1', {}, 'Artist');
  root.append(heading, section('Artist and billing account', { id: 'choose' }, choose));

  const parts = [];
  if (filters.artist) parts.push(artistPart(root, heading, filters, ctx));
  if (filters.account) parts.push(billingPart(filters, ctx));
  if (!parts.length) {
    root.append(note('Enter the id of an artist whose team you are on (`dynamoi demo` prints one).'));
    return;
  }
  const sections = await Promise.all(parts);
  root.append(...sections.flat());
}

/** The API's 404 as "nothing to show", anything else as an error. */
async function orNotFound(promise) {
  try {
    return await promise;
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

function dashboardPath(artist, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v) q.set(k, v);
  return `/v1/artists/${seg(artist)}/dashboard?${q}`;
}

async function artistPart(root, heading, filters, ctx) {
  const { signal } = ctx;
  const artist = await orNotFound(api(`/v1/artists/${seg(filters.artist)}`, { signal }));
  if (!artist) {
    return [section('Not found', { id: 'artist-missing', 'data-refused': 'not-found' },
      note('There is no artist with this id whose team you are on.'))];
  }
  heading.textContent = `Artist: ${artist.name}`;
  const range = { from: filters.from, to: filters.to };
  const [campaigns, dashboard] = await Promise.all([
    api(`/v1/artists/${seg(filters.artist)}/campaigns`, { signal }),
    api(dashboardPath(filters.artist, { ...range, granularity: filters.granularity, platform: filters.platform, campaign: filters.campaign }), { signal }),
  ]);
  const platforms = [...new Set(campaigns.campaigns.map((c) => c.platform))];
  const [perPlatform, perCampaign] = await Promise.all([
    Promise.all(platforms.map((p) => api(dashboardPath(filters.artist, { ...range, granularity: 'month', platform: p }), { signal }))),
    Promise.all(campaigns.campaigns.map((c) => api(dashboardPath(filters.artist, { ...range, granularity: 'month', campaign: c.campaign_id }), { signal }))),
  ]);

  return [
    h('p', { class: 'lead' }, `Your role: ${artist.your_role}. Artist id `, h('code', {}, artist.artist_id), '.'),
    filtersSection(filters, campaigns.campaigns, ctx),
    kpiSection(dashboard),
    chartsSection(dashboard),
    platformSection(platforms, perPlatform),
    campaignsSection(campaigns.campaigns, perCampaign, filters),
  ];
}

function filtersSection(filters, campaigns, ctx) {
  const from = h('input', { type: 'date', name: 'from', value: filters.from });
  const to = h('input', { type: 'date', name: 'to', value: filters.to });
  const granularity = h('select', { name: 'granularity', id: 'granularity' },
    GRANULARITIES.map((g) => h('option', { value: g, selected: g === filters.granularity }, `per ${g}`)));
  const platform = h('select', { name: 'platform', id: 'platform' }, h('option', { value: '' }, 'every platform'),
    [...new Set(campaigns.map((c) => c.platform))].map((p) => h('option', { value: p, selected: p === filters.platform }, PLATFORMS[p] || p)));
  const campaign = h('select', { name: 'campaign', id: 'campaign' }, h('option', { value: '' }, 'every campaign'),
    campaigns.map((c) => h('option', { value: c.campaign_id, selected: c.campaign_id === filters.campaign }, `${PLATFORMS[c.platform] || c.platform} ${c.objective} ${c.campaign_id.slice(-6)}`)));
  const form = h('form', {
    class: 'inline', 'aria-label': 'Dashboard filters',
    onsubmit: (event) => {
      event.preventDefault();
      ctx.navigate({
        artist: filters.artist, account: filters.account, from: from.value, to: to.value,
        granularity: granularity.value, platform: platform.value, campaign: campaign.value,
      });
    },
  }, field('From', from), field('To', to), field('Group', granularity), field('Platform', platform), field('Campaign', campaign),
  h('button', { type: 'submit' }, 'Apply'));
  return section('Dashboard', { id: 'filters' }, form);
}

function kpiSection(dashboard) {
  if (!dashboard.totals.length) return section('Totals', { id: 'kpis' }, note('No spend recorded for these filters.'));
  return section('Totals', { id: 'kpis' }, dashboard.totals.map((t) => h('div', { class: 'kpis', 'data-currency': t.currency },
    kpi('spend_micros', 'Spend', t.spend_micros, fmtMicros(t.spend_micros, t.currency)),
    kpi('impressions', 'Impressions', t.impressions, fmtInt(t.impressions)),
    kpi('clicks', 'Clicks', t.clicks, fmtInt(t.clicks)),
    kpi('views', 'Views', t.views, fmtInt(t.views)),
    kpi('follows', 'Follows', t.follows, fmtInt(t.follows)),
    kpi('conversions', 'Results', t.conversions, fmtInt(t.conversions)),
    KPIS.map(([key, label, kind]) => kpi(key, label, t.kpis[key], kind === 'bp' ? fmtBasisPoints(t.kpis[key]) : fmtMicros(t.kpis[key], t.currency))))));
}

function kpi(key, label, value, shown) {
  return h('div', { class: 'kpi', 'data-kpi': key }, h('span', { class: 'kpi-label' }, label), num(value, shown));
}

function chartsSection(dashboard) {
  const currencies = [...new Set(dashboard.series.map((p) => p.currency))];
  const per = dashboard.granularity;
  return section(`Spend and results per ${per}`, { id: 'charts', 'data-granularity': per },
    currencies.length ? currencies.map((currency) => {
      const points = dashboard.series.filter((p) => p.currency === currency);
      return h('div', { class: 'charts', 'data-currency': currency },
        chart({
          id: `spend-${currency}`, title: `Spend per ${per} (${currency})`, kind: 'bar',
          points: points.map((p) => ({ period: p.period, value: p.spend_micros })),
          format: (v) => fmtMicros(v, currency), axisFormat: (v) => fmtMicros(Math.round(v), ''),
        }),
        chart({
          id: `results-${currency}`, title: `Results per ${per}`, kind: 'line',
          points: points.map((p) => ({ period: p.period, value: p.conversions })),
          format: fmtInt, axisFormat: fmtInt, whole: true,
        }));
    }) : note('No spend recorded for these filters.'));
}

function totalsCells(t) {
  return [
    num(t.spend_micros, fmtMicros(t.spend_micros, t.currency), { 'data-field': 'spend_micros' }),
    num(t.impressions, fmtInt(t.impressions), { 'data-field': 'impressions' }),
    num(t.clicks, fmtInt(t.clicks), { 'data-field': 'clicks' }),
    num(t.conversions, fmtInt(t.conversions), { 'data-field': 'conversions' }),
    num(t.kpis.cpm_micros, fmtMicros(t.kpis.cpm_micros), { 'data-field': 'cpm_micros' }),
    num(t.kpis.cost_per_result_micros, fmtMicros(t.kpis.cost_per_result_micros), { 'data-field': 'cost_per_result_micros' }),
  ];
}

function platformSection(platforms, answers) {
  const rows = [];
  platforms.forEach((p, i) => answers[i].totals.forEach((t) => rows.push({
    attrs: { 'data-platform': p, 'data-currency': t.currency },
    cells: [PLATFORMS[p] || p, ...totalsCells(t)],
  })));
  return section('Per platform', { id: 'platforms' },
    rows.length ? table(['Platform', 'Spend', 'Impressions', 'Clicks', 'Results', 'CPM', 'Cost per result'], rows, { 'aria-label': 'Totals per platform' })
      : note('No spend recorded.'));
}

function campaignsSection(campaigns, answers, filters) {
  const rows = campaigns.map((c, i) => {
    const t = answers[i].totals[0];
    const budget = c.budget ? `${c.budget.kind} ${fmtMicros(c.budget.amount_micros, c.currency)}` : '—';
    return {
      attrs: { 'data-campaign-id': c.campaign_id, 'data-stage': c.stage },
      cells: [
        h('a', {
          href: `#/artist?${new URLSearchParams({ ...Object.fromEntries(Object.entries(filters).filter(([, v]) => v)), campaign: c.campaign_id })}`,
          title: 'Chart this campaign',
        }, h('code', {}, c.campaign_id)),
        PLATFORMS[c.platform] || c.platform,
        c.objective,
        badge(c.stage, c.stage),
        budget,
        `${c.start} – ${c.end || 'open'}`,
        t ? num(t.spend_micros, fmtMicros(t.spend_micros, t.currency), { 'data-field': 'spend_micros' }) : '—',
        t ? num(t.conversions, fmtInt(t.conversions), { 'data-field': 'conversions' }) : '—',
      ],
    };
  });
  return section('Campaigns', { id: 'campaigns' },
    rows.length ? table(['Campaign', 'Platform', 'Objective', 'Stage', 'Budget', 'Schedule', 'Spend', 'Results'], rows, { 'aria-label': 'Campaigns' })
      : note('No campaign yet.'));
}

async function billingPart(filters, ctx) {
  const { signal } = ctx;
  const base = `/v1/billing/accounts/${seg(filters.account)}`;
  const account = await orNotFound(api(base, { signal }));
  if (!account) {
    return [section('Billing', { id: 'billing', 'data-refused': 'not-found' }, note('There is no billing account with this id that you may read.'))];
  }
  const usage = await api(`${base}/usage`, { signal });
  const plan = account.plan;
  const statements = [...usage.closed_periods, ...usage.open_periods].sort((a, b) => a.period.localeCompare(b.period));
  const detail = h('div', { id: 'statement-detail', 'aria-live': 'polite' });
  const statementRows = statements.map((p) => {
    const st = p.statement;
    return {
      attrs: { 'data-period': p.period, 'data-state': p.state },
      cells: [
        p.period,
        badge(p.state, p.state),
        num(st.spend_micros, fmtMicros(st.spend_micros, st.currency), { 'data-field': 'spend_micros' }),
        num(st.billable_micros, fmtMicros(st.billable_micros, st.currency), { 'data-field': 'billable_micros' }),
        num(st.fee_micros, fmtMicros(st.fee_micros, st.currency), { 'data-field': 'fee_micros' }),
        num(st.adjustments.length, fmtInt(st.adjustments.length), { 'data-field': 'adjustments' }),
        num(st.total_micros, fmtMicros(st.total_micros, st.currency), { 'data-field': 'total_micros' }),
        p.reported ? `reported (${p.reported.identifier})` : (p.state === 'closed' ? 'not reported yet' : '—'),
        h('button', {
          type: 'button', class: 'link',
          onclick: async () => {
            try {
              const one = await api(`${base}/statements/${seg(p.period)}`, { signal });
              replace(detail, statementView(one));
              detail.querySelector('h3').focus();
            } catch (error) {
              if (error.name !== 'AbortError') ctx.showError(error);
            }
          },
        }, `Statement ${p.period}`),
      ],
    };
  });
  return [section('Billing', { id: 'billing', 'data-account': account.account_id },
    dl([
      ['Account', h('code', {}, account.account_id)],
      ['Subscription', account.subscription || '—'],
      ['Plan', `${fmtMicros(plan.monthly_fee_micros, plan.currency)} a month, ${fmtMicros(plan.included_spend_micros, plan.currency)} of spend included, ${fmtBasisPoints(plan.fee_basis_points)} beyond (months in ${plan.time_zone})`],
      ['Artists', account.artists.join(', ') || '—'],
      ['Payment method', account.payment_method ? `${account.payment_method.brand} ${account.payment_method.last4 || ''} ${account.payment_method.expiry || ''}` : 'none recorded'],
    ]),
    h('h3', {}, 'Usage'),
    table(['Month', 'Currency', 'Spend'], usage.usage.map((u) => ({
      attrs: { 'data-period': u.period, 'data-currency': u.currency },
      cells: [u.period, u.currency, num(u.spend_micros, fmtMicros(u.spend_micros, u.currency), { 'data-field': 'spend_micros' })],
    })), { 'aria-label': 'Usage per month', class: 'usage' }),
    h('h3', {}, 'Statements'),
    table(['Period', 'State', 'Spend', 'Billable', 'Fee', 'Adjustments', 'Total', 'Stripe', ''], statementRows, { 'aria-label': 'Statements', class: 'statements' }),
    detail)];
}

function statementView(one) {
  const st = one.statement;
  const cur = st.currency;
  return h('div', { class: 'statement', 'data-period': one.period },
    h('h3', { tabindex: '-1' }, `Statement ${one.period} (${one.state})`),
    dl([
      ['Spend', num(st.spend_micros, fmtMicros(st.spend_micros, cur))],
      ['Billable', num(st.billable_micros, fmtMicros(st.billable_micros, cur))],
      ['Fee', num(st.fee_micros, fmtMicros(st.fee_micros, cur))],
      ['Carried in', num(st.carried_in_micros, fmtMicros(st.carried_in_micros, cur))],
      ['Total', num(st.total_micros, fmtMicros(st.total_micros, cur))],
      ['Carried out', num(st.carried_out_micros, fmtMicros(st.carried_out_micros, cur))],
      ['Reported to Stripe', st.reported_minor !== undefined ? num(st.reported_minor, `${fmtInt(st.reported_minor)} (minor units)`) : null],
      ['Spend in other currencies', st.foreign_spend.length ? st.foreign_spend.map((f) => fmtMicros(f.spend_micros, f.currency)).join(', ') : 'none'],
    ]),
    st.adjustments.length
      ? table(['Period', 'Spend difference', 'Fee difference', 'Readings'], st.adjustments.map((a) => [
        a.period, fmtMicros(a.spend_delta_micros, cur), fmtMicros(a.fee_delta_micros, cur), fmtInt(a.readings.length),
      ]), { 'aria-label': 'Adjustments' })
      : note('No adjustment.'));
}
