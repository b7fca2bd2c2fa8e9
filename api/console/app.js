// The console's shell: sign-in, the pages the token's role may use, and hash routing
// (`#/auditor?person=…`). Only ids and filters go in the URL, never the token.

import { ApiError, claims, signIn, signOut, token } from './api.js';
import { h, note, replace } from './dom.js';
import * as auditor from './auditor.js';
import * as support from './support.js';
import * as member from './member.js';
import * as operator from './operator.js';

/** Every page, the roles it is offered to, and its module. */
const PAGES = [
  { id: 'artist', title: 'Artist', roles: ['person'], module: member },
  { id: 'auditor', title: 'Auditor', roles: ['auditor'], module: auditor },
  { id: 'support', title: 'Support', roles: ['support'], module: support },
  { id: 'operator', title: 'Operator', roles: ['support', 'auditor', 'service'], module: operator },
];

const $ = (id) => document.getElementById(id);

let current = null; // { controller } of the page on screen

/** Shows an error in the alert region (announced by screen readers). */
export function showError(error) {
  const alert = $('alert');
  if (!error) {
    alert.hidden = true;
    alert.textContent = '';
    return;
  }
  let text = error instanceof ApiError ? error.message : String(error.message || error);
  if (error instanceof ApiError && error.status === 401) text = `Not signed in: ${error.message}. Sign out and sign in with a valid token.`;
  alert.textContent = text;
  alert.hidden = false;
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [page, query] = raw.split('?');
  return { page: page || '', params: new URLSearchParams(query || '') };
}

/** Goes to `page` with `params` (an object; empty values are left out). */
export function navigate(page, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') query.set(k, v);
  const text = query.toString();
  const target = `#/${page}${text ? '?' + text : ''}`;
  if (location.hash === target) route();
  else location.hash = target;
}

function allowed(role) {
  return PAGES.filter((p) => p.roles.includes(role));
}

function renderNav(who, page) {
  const nav = $('nav');
  const pages = allowed(who.role);
  replace(nav, h('ul', {}, pages.map((p) => h('li', {}, h('a', {
    href: `#/${p.id}`,
    'aria-current': p.id === page ? 'page' : null,
  }, p.title)))));
  nav.hidden = pages.length === 0;
  $('who-text').textContent = `${who.sub} (${who.role || 'unknown role'})`;
  $('who').hidden = false;
}

function signedOut() {
  $('nav').hidden = true;
  $('who').hidden = true;
  replace($('page'));
  $('sign-in').hidden = false;
  document.title = 'Sign in · dynamoi console';
  document.body.dataset.page = 'sign-in';
  document.body.dataset.ready = 'true';
}

async function route() {
  if (current) current.controller.abort();
  showError(null);
  const who = claims();
  if (!token() || !who) {
    signedOut();
    return;
  }
  // Expiry is the server's call (its clock, not this browser's): an expired token gets a 401,
  // which the page shows with a way to sign in again.
  $('sign-in').hidden = true;
  const { page, params } = parseHash();
  const pages = allowed(who.role);
  const chosen = PAGES.find((p) => p.id === page);
  renderNav(who, chosen && chosen.id);
  const root = $('page');
  document.body.dataset.ready = 'false';
  if (!chosen) {
    if (pages.length) {
      navigate(pages[0].id);
    } else {
      replace(root, note(`No page of the console is for the role ${who.role}.`));
      document.body.dataset.ready = 'true';
    }
    return;
  }
  document.body.dataset.page = chosen.id;
  document.title = `${chosen.title} · dynamoi console`;
  if (!chosen.roles.includes(who.role)) {
    replace(root, h('h1', {}, chosen.title),
      note(`This page needs the role ${chosen.roles.join(' or ')}; you are signed in as ${who.role}.`, { 'data-refused': 'role' }));
    document.body.dataset.ready = 'true';
    return;
  }
  const controller = new AbortController();
  current = { controller };
  replace(root);
  root.setAttribute('aria-busy', 'true');
  try {
    await chosen.module.render(root, params, {
      who,
      signal: controller.signal,
      navigate: (next) => navigate(chosen.id, next),
      showError,
    });
  } catch (error) {
    if (error.name !== 'AbortError') showError(error);
  } finally {
    if (!controller.signal.aborted) {
      root.setAttribute('aria-busy', 'false');
      document.body.dataset.ready = 'true';
    }
  }
}

function start() {
  $('sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('token-input');
    try {
      signIn(input.value);
      input.value = '';
      showError(null);
      route();
      $('main').focus();
    } catch (error) {
      showError(error);
      input.focus();
    }
  });
  $('sign-out').addEventListener('click', () => {
    signOut();
    location.hash = '#/';
    signedOut();
    $('token-input').focus();
  });
  // The skip link moves the focus; following its `#main` would be read as a page route.
  document.querySelector('.skip').addEventListener('click', (event) => {
    event.preventDefault();
    $('main').focus();
  });
  window.addEventListener('hashchange', route);
  route();
}

start();
