// The crm staff console: a single page over the public REST API.
//
// Rules this file keeps: every value from the API is put into the page as
// text (h() appends strings as text nodes; nothing is ever assigned to
// innerHTML), every request carries the signed-in user's bearer token and
// nothing else (the API's permissions decide what works), and the token
// lives in this tab's sessionStorage only, never in a URL.
'use strict';
(() => {
  const API = '/api/v1/crm';
  const TOKEN_KEY = 'crm.console.token';
  const main = document.getElementById('main');
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  const toastEl = document.getElementById('toast');

  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let me = null; // {subject, roles, permissions}
  let screen = 0; // bumped on every route change: a stale screen stops drawing

  const can = (p) => !!me && me.permissions.includes(p);

  // ---- DOM helpers -------------------------------------------------------

  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    let value;
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'value') value = v;
      else if (k === 'checked') el.checked = true;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    add(el, kids);
    if (value !== undefined) el.value = value;
    return el;
  }

  // put replaces the children of el (null, undefined and false are skipped).
  function put(el, ...kids) {
    el.replaceChildren();
    add(el, kids);
  }

  function add(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      el.append(k instanceof Node ? k : String(k)); // strings become text
    }
  }

  function show(title, ...nodes) {
    document.title = title + ' · crm console';
    put(main, nodes);
    const h1 = main.querySelector('h1');
    if (h1) {
      h1.setAttribute('tabindex', '-1');
      h1.focus({ preventScroll: true });
    }
  }

  let toastTimer;
  function toast(msg) {
    toastEl.textContent = msg;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toastEl.textContent = ''; }, 4000);
  }

  function debounce(fn, ms) {
    let t;
    return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
  }

  const fmtNum = (n) => Number(n).toLocaleString('en');
  function fmtTime(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'medium' });
  }
  const go = (hash) => { location.hash = hash; };
  const newKey = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());

  // ---- the API -----------------------------------------------------------

  class Halt extends Error {} // the session ended: the sign-in screen is up

  async function api(method, path, opts = {}) {
    const init = { method, headers: { Authorization: 'Bearer ' + token, ...(opts.headers || {}) } };
    if (opts.form !== undefined) {
      init.body = opts.form; // FormData: the browser sets the multipart boundary
    } else if (opts.body !== undefined) {
      init.body = JSON.stringify(opts.body);
      init.headers['Content-Type'] = 'application/json';
    }
    let res;
    try {
      res = await fetch(API + path, init);
    } catch (e) {
      return { status: 0, ok: false, headers: new Headers(), body: { title: 'No answer', detail: 'the service did not answer (' + e.message + ')' } };
    }
    let body = null;
    if ((res.headers.get('Content-Type') || '').includes('json')) {
      try { body = await res.json(); } catch (e) { body = null; }
    }
    if (res.status === 401 && !opts.signingIn) {
      signOut('Your session ended (the token was refused or expired): sign in again.');
      throw new Halt();
    }
    return { status: res.status, ok: res.ok, headers: res.headers, body };
  }

  function problemText(r) {
    const b = r.body || {};
    return [b.title || ('HTTP ' + r.status), b.detail].filter(Boolean).join(': ');
  }

  function problemBox(r) {
    const b = r.body || {};
    return h('div', { class: 'alert', role: 'alert' },
      h('strong', {}, problemText(r)),
      (b.errors || []).length ? h('ul', {}, b.errors.map((e) => h('li', {}, e.field + ': ' + e.message))) : null);
  }

  // ---- sign-in -----------------------------------------------------------

  async function loadMe() {
    const r = await api('GET', '/me', { signingIn: true });
    if (r.ok) {
      me = r.body.data;
      return null;
    }
    return r;
  }

  function signOut(why) {
    sessionStorage.removeItem(TOKEN_KEY);
    token = '';
    me = null;
    renderChrome();
    renderSignIn(why);
  }

  async function signIn(t) {
    token = t.trim().replace(/^Bearer\s+/i, '');
    const fail = await loadMe();
    if (fail) {
      token = '';
      return fail.status === 403
        ? 'This token is valid but lacks crm.view; the console needs it.'
        : 'The token was refused: ' + problemText(fail);
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    renderChrome();
    if (!location.hash || location.hash === '#/signin') go('#/customers');
    else route();
    return null;
  }

  async function renderSignIn(why) {
    const my = ++screen;
    const area = h('textarea', { id: 'token', rows: 4, autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'token-help' });
    const msg = h('div', { id: 'signin-msg', role: 'alert' });
    const fail = (text) => put(msg, h('p', { class: 'alert' }, text));
    const form = h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        if (!area.value.trim()) return fail('Paste a token first.');
        const err = await signIn(area.value);
        if (err) fail(err);
      },
    },
    h('div', { class: 'field' },
      h('label', { for: 'token' }, 'Bearer token'),
      area,
      h('p', { id: 'token-help', class: 'muted' }, 'A JWT signed with the service key (go run ./cmd/crmctl token). It is kept in this browser tab only and sent in the Authorization header.')),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
    const local = h('div', {});
    show('Sign in', h('section', { class: 'signin' },
      h('h1', {}, 'Sign in to the crm console'),
      why ? h('p', { class: 'notice' }, why) : null,
      form, local, msg));
    // The one-click local admin session, where the service offers it.
    const res = await fetch('/console/session', { headers: { Accept: 'application/json' } }).catch(() => null);
    if (my !== screen || !res || !res.ok) return;
    const info = await res.json().catch(() => null);
    if (!info || !info.data || !info.data.localSession) return;
    put(local, h('h2', {}, 'Or, on this machine'),
      h('p', { class: 'muted' }, 'The embedded service offers an admin session to a browser on its own machine.'),
      h('button', {
        type: 'button', id: 'local-session',
        onclick: async () => {
          const r = await fetch('/console/session', { method: 'POST', headers: { Accept: 'application/json' } });
          const b = await r.json().catch(() => ({}));
          if (!r.ok) return fail((b.title || r.status) + ': ' + (b.detail || ''));
          const err = await signIn(b.data.token);
          if (err) fail(err);
        },
      }, 'Start a local admin session'));
  }

  // ---- chrome: navigation and who is signed in ---------------------------

  function renderChrome() {
    if (!me) {
      put(nav);
      put(who);
      return;
    }
    const links = [['#/customers', 'Customers', true]];
    if (can('crm.create')) links.push(['#/customers/new', 'New customer', true]);
    if (can('crm.delete')) links.push(['#/trash', 'Trash', true]);
    if (can('crm.import') && can('crm.create')) links.push(['#/import', 'Import', true]);
    put(nav, ...links.map(([href, text]) => h('a', { href }, text)));
    markNav();
    const ro = can('crm.edit') ? '' : ' · read-only';
    put(who,
      h('span', { title: me.subject }, 'Signed in: ' + (me.roles.join(', ') || 'no role') + ro),
      h('button', { type: 'button', id: 'signout', onclick: () => signOut('Signed out.') }, 'Sign out'));
  }

  function markNav() {
    const cur = location.hash.split('?')[0] || '#/customers';
    for (const a of nav.querySelectorAll('a')) {
      if (a.getAttribute('href') === cur) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  // ---- the customer's fields ---------------------------------------------

  const FIELDS = [
    { k: 'name', label: 'Name', required: true },
    { k: 'email', label: 'Email', type: 'email' },
    { k: 'phone', label: 'Phone', type: 'tel' },
    { k: 'company', label: 'Company' },
    { k: 'type', label: 'Type', options: ['individual', 'business'] },
    { k: 'status', label: 'Status', options: ['lead', 'prospect', 'active', 'inactive'] },
    { k: 'externalId', label: 'External id' },
    { k: 'tags', label: 'Tags', tags: true, help: 'comma-separated' },
    { k: 'notes', label: 'Notes', textarea: true },
  ];
  const ADDRESS = [['street', 'Street'], ['city', 'City'], ['state', 'State'], ['country', 'Country'], ['postalCode', 'Postal code']];
  const LABELS = Object.fromEntries([...FIELDS.map((f) => [f.k, f.label]), ['address', 'Address'], ...ADDRESS.map(([k, l]) => ['address.' + k, l])]);

  const fieldId = (name) => 'f-' + name.replace(/\./g, '-');

  // customerForm draws the editable fields with the values of c (a
  // customer, or {} for a new one); values() reads them back.
  function customerForm(c, creating) {
    const errs = {};
    const input = (name, f, val) => {
      const id = fieldId(name);
      let el;
      if (f.options) {
        el = h('select', { id, name, value: val || '' },
          creating ? h('option', { value: '' }, '(default)') : null,
          f.options.map((o) => h('option', { value: o }, o)));
      } else if (f.textarea) {
        el = h('textarea', { id, name, rows: 3, value: val || '' });
      } else {
        el = h('input', { id, name, type: f.type || 'text', value: val || '', required: !!f.required, autocomplete: 'off' });
      }
      const err = h('div', { class: 'err', id: id + '-err' });
      errs[name] = { el, err };
      el.setAttribute('aria-describedby', id + '-err' + (f.help ? ' ' + id + '-help' : ''));
      return h('div', { class: 'field' },
        h('label', { for: id }, f.label + (f.required ? ' (required)' : '')),
        el,
        f.help ? h('div', { class: 'muted', id: id + '-help' }, f.help) : null,
        err);
    };
    const addr = c.address || {};
    const el = h('div', {},
      h('div', { class: 'grid' }, FIELDS.filter((f) => !f.textarea).map((f) => input(f.k, f, f.tags ? (c.tags || []).join(', ') : c[f.k]))),
      h('fieldset', {}, h('legend', {}, 'Address'),
        h('div', { class: 'grid' }, ADDRESS.map(([k, l]) => input('address.' + k, { label: l }, addr[k])))),
      FIELDS.filter((f) => f.textarea).map((f) => input(f.k, f, c[f.k])));
    const general = h('div', { role: 'alert' });
    return {
      el: h('div', {}, general, el),
      // values: every field, '' as null, tags as an array.
      values() {
        const v = { address: {} };
        for (const f of FIELDS) {
          const raw = errs[f.k].el.value.trim();
          v[f.k] = f.tags ? raw.split(',').map((s) => s.trim()).filter(Boolean) : (raw === '' ? null : raw);
        }
        for (const [k] of ADDRESS) {
          const raw = errs['address.' + k].el.value.trim();
          v.address[k] = raw === '' ? null : raw;
        }
        return v;
      },
      // showErrors puts each field error of a problem next to its field;
      // the others (and the title) go above the form.
      showErrors(r) {
        for (const { el, err } of Object.values(errs)) {
          err.textContent = '';
          el.removeAttribute('aria-invalid');
        }
        const rest = [];
        let first = null;
        for (const e of (r && r.body && r.body.errors) || []) {
          const name = e.field.replace(/\[\d+\]$/, '');
          const slot = errs[name];
          if (slot) {
            slot.err.textContent = (slot.err.textContent ? slot.err.textContent + '; ' : '') + e.message;
            slot.el.setAttribute('aria-invalid', 'true');
            first = first || slot.el;
          } else {
            rest.push(e);
          }
        }
        put(general);
        if (r) {
          general.append(h('div', { class: 'alert' }, h('strong', {}, problemText(r)),
            rest.length ? h('ul', {}, rest.map((e) => h('li', {}, e.field + ': ' + e.message))) : null));
        }
        if (first) first.focus();
      },
    };
  }

  const sameTags = (a, b) => JSON.stringify(a || []) === JSON.stringify(b || []);

  // mergePatch: the JSON merge patch that turns customer c into values v.
  function mergePatch(c, v) {
    const p = {};
    for (const f of FIELDS) {
      if (f.tags) {
        if (!sameTags(c.tags, v.tags)) p.tags = v.tags;
      } else if ((c[f.k] ?? null) !== v[f.k]) {
        p[f.k] = v[f.k];
      }
    }
    const addr = c.address || {};
    for (const [k] of ADDRESS) {
      if ((addr[k] ?? null) !== v.address[k]) (p.address = p.address || {})[k] = v.address[k];
    }
    return p;
  }

  function fieldValue(c, name) {
    if (!c) return '';
    if (name.startsWith('address.')) return (c.address || {})[name.slice(8)] ?? '';
    if (name === 'tags') return (c.tags || []).join(', ');
    return c[name] ?? '';
  }

  function props(c) {
    const rows = [
      ['Code', c.customerCode],
      ...FIELDS.filter((f) => !f.tags).map((f) => [f.label, c[f.k]]),
      ['Tags', (c.tags || []).length ? c.tags.map((t) => h('span', { class: 'tag' }, t)) : ''],
      ['Address', ADDRESS.map(([k]) => (c.address || {})[k]).filter(Boolean).join(', ')],
      ['Created', fmtTime(c.createdAt) + (c.createdBy ? ' by ' + c.createdBy : '')],
      ['Updated', fmtTime(c.updatedAt)],
      ['Id', c.customerId],
    ];
    return h('dl', { class: 'props' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v === null || v === undefined || v === '' ? h('span', { class: 'muted' }, '—') : v)]));
  }

  // ---- search highlighting -------------------------------------------------

  const fold = (s) => s.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
  const queryWords = (q) => (fold(q).match(/[\p{L}\p{N}]+/gu) || []);

  // highlight marks, in each word of text, the longest query word it starts
  // with (the search's own rule: every query word is a word prefix).
  function highlight(text, words) {
    if (!text || !words.length) return text || '';
    const out = [];
    const re = /[\p{L}\p{N}]+/gu;
    let last = 0;
    let m;
    while ((m = re.exec(text))) {
      const w = fold(m[0]);
      let best = 0;
      for (const q of words) if (q.length > best && w.startsWith(q)) best = q.length;
      if (!best) continue;
      let n = 1;
      while (n < m[0].length && fold(m[0].slice(0, n)).length < best) n++;
      out.push(text.slice(last, m.index), h('mark', {}, m[0].slice(0, n)));
      last = m.index + n;
    }
    out.push(text.slice(last));
    return out;
  }

  // ---- customers list, search and trash ------------------------------------

  async function listScreen(params, trash) {
    const my = screen;
    const sel = (id, label, options, value) => h('div', { class: 'field' },
      h('label', { for: id }, label),
      h('select', { id, value: value || '' }, options.map(([v, t]) => h('option', { value: v }, t))));
    const q = h('input', { id: 'q', type: 'search', value: params.get('q') || '', autocomplete: 'off', 'aria-describedby': 'q-help', placeholder: 'Name, email, company or code' });
    const filters = trash ? [] : [
      sel('status', 'Status', [['', 'Any'], ['lead', 'Lead'], ['prospect', 'Prospect'], ['active', 'Active'], ['inactive', 'Inactive']], params.get('status')),
      sel('type', 'Type', [['', 'Any'], ['individual', 'Individual'], ['business', 'Business']], params.get('type')),
      h('div', { class: 'field' }, h('label', { for: 'tag' }, 'Tag'), h('input', { id: 'tag', type: 'text', size: 10, value: params.get('tag') || '' })),
    ];
    const sorts = [['name', 'Name A–Z'], ['-name', 'Name Z–A'], ['customerCode', 'Code'], ['-createdAt', 'Newest'], ['createdAt', 'Oldest'], ['-updatedAt', 'Recently changed']];
    const sort = sel('sort', 'Sort', trash ? [['-updatedAt', 'Recently deleted'], ...sorts] : sorts, params.get('sort') || (trash ? '-updatedAt' : 'name'));
    const count = h('p', { id: 'count', class: 'muted', 'aria-live': 'polite' });
    const results = h('div', { id: 'results', class: 'table-wrap' });
    const pager = h('div', { class: 'pager' });
    const val = (id) => { const el = main.querySelector('#' + id); return el ? el.value.trim() : ''; };

    let stack = []; // cursors of the pages before this one
    let after = '';
    let seq = 0;

    async function load() {
      if (my !== screen) return; // a debounced keystroke after leaving the screen
      const mine = ++seq;
      const text = q.value.trim();
      const p = new URLSearchParams();
      const state = new URLSearchParams();
      if (text) { p.set('q', text); state.set('q', text); }
      for (const id of trash ? [] : ['status', 'type', 'tag']) {
        if (val(id)) { p.set(id, val(id)); state.set(id, val(id)); }
      }
      const sortSel = main.querySelector('#sort');
      sortSel.disabled = !!text; // a search is ranked: best match first
      if (!text) { p.set('sort', val('sort')); state.set('sort', val('sort')); }
      if (trash) p.set('deleted', 'only');
      p.set('perPage', '20');
      if (after) p.set('after', after);
      history.replaceState(null, '', (trash ? '#/trash' : '#/customers') + (state.toString() ? '?' + state : ''));
      results.setAttribute('aria-busy', 'true');
      const r = await api('GET', (text && !trash ? '/customers/search?' : '/customers?') + p);
      if (mine !== seq || my !== screen) return; // a newer keystroke, or another screen
      results.removeAttribute('aria-busy');
      if (!r.ok) {
        count.textContent = '';
        put(results, problemBox(r));
        put(pager);
        return;
      }
      const { data, meta } = r.body;
      const words = text ? queryWords(text) : [];
      const total = fmtNum(meta.total) + (meta.totalRelation === 'gte' ? '+' : '');
      count.textContent = (meta.total === 1 ? '1 customer' : total + ' customers') + (text ? ' match “' + text + '”' : '') + (trash ? ' in the trash' : '');
      if (!data.length) {
        put(results, h('p', { class: 'notice' }, text ? 'No customer matches.' : 'No customers here yet.'));
      } else {
        put(results, h('table', {},
          h('caption', { class: 'muted' }, trash ? 'Deleted customers' : 'Customers'),
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Code'), h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Email'),
            h('th', { scope: 'col', class: 'opt' }, 'Company'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col', class: 'opt' }, 'Tags'),
            trash && can('crm.delete') ? h('th', { scope: 'col' }, 'Restore') : null)),
          h('tbody', {}, data.map((c) => h('tr', {},
            h('td', { class: 'code' }, highlight(c.customerCode, words)),
            h('td', {}, trash ? c.name : h('a', { href: '#/customers/' + c.customerId }, highlight(c.name, words))),
            h('td', {}, highlight(c.email || '', words)),
            h('td', { class: 'opt' }, highlight(c.company || '', words)),
            h('td', {}, c.status),
            h('td', { class: 'opt' }, (c.tags || []).map((t) => h('span', { class: 'tag' }, t))),
            trash && can('crm.delete') ? h('td', {}, h('button', {
              type: 'button', 'aria-label': 'Restore ' + c.name,
              onclick: async () => {
                const rr = await api('POST', '/customers/' + c.customerId + '/restore');
                if (!rr.ok) return results.prepend(problemBox(rr));
                toast('Restored ' + c.name + ' (' + c.customerCode + ')');
                go('#/customers/' + c.customerId);
              },
            }, 'Restore')) : null)))));
      }
      put(pager, ...[
        stack.length ? h('button', { type: 'button', onclick: () => { after = stack.pop(); load(); } }, 'Previous page') : null,
        meta.next ? h('button', { type: 'button', id: 'next', onclick: () => { stack.push(after); after = meta.next; load(); } }, 'Next page') : null].filter(Boolean));
    }
    const restart = () => { stack = []; after = ''; load(); };

    show(trash ? 'Trash' : 'Customers',
      h('h1', {}, trash ? 'Trash' : 'Customers'),
      h('form', { class: 'toolbar', role: 'search', onsubmit: (e) => { e.preventDefault(); restart(); } },
        trash ? null : h('div', { class: 'field grow' },
          h('label', { for: 'q' }, 'Search'), q,
          h('div', { id: 'q-help', class: 'muted' }, 'Every word starts a word of the name, email, company or code.')),
        filters, sort),
      count, results, pager);
    q.addEventListener('input', debounce(restart, 150));
    for (const id of ['status', 'type', 'sort']) { const el = main.querySelector('#' + id); if (el) el.addEventListener('change', restart); }
    const tag = main.querySelector('#tag');
    if (tag) tag.addEventListener('input', debounce(restart, 300));
    if (!trash) { q.focus(); }
    await load();
  }

  // ---- create --------------------------------------------------------------

  function createScreen() {
    const form = customerForm({}, true);
    const key = newKey(); // one key per form: a double submit creates once
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Create customer');
    show('New customer', h('h1', {}, 'New customer'),
      h('form', {
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          const v = form.values();
          const body = {};
          for (const [k, x] of Object.entries(v)) {
            if (k === 'address') {
              const a = Object.fromEntries(Object.entries(x).filter(([, y]) => y !== null));
              if (Object.keys(a).length) body.address = a;
            } else if (Array.isArray(x) ? x.length : x !== null) {
              body[k] = x;
            }
          }
          submit.disabled = true;
          const r = await api('POST', '/customers', { body, headers: { 'Idempotency-Key': key } });
          submit.disabled = false;
          if (!r.ok) return form.showErrors(r);
          toast('Created ' + r.body.data.customerCode);
          go('#/customers/' + r.body.data.customerId);
        },
      }, form.el, h('div', { class: 'actions' }, submit, h('a', { class: 'button', href: '#/customers' }, 'Cancel'))));
  }

  // ---- one customer --------------------------------------------------------

  async function customerScreen(id) {
    const my = screen;
    const r = await api('GET', '/customers/' + encodeURIComponent(id));
    if (my !== screen) return;
    if (r.status === 404) return goneScreen(id, r);
    if (!r.ok) return show('Customer', h('h1', {}, 'Customer'), problemBox(r));
    drawCustomer(r.body.data, r.headers.get('ETag'));
  }

  function goneScreen(id, r) {
    const msg = h('div', {});
    show('Customer not found', h('h1', {}, 'Customer not found'),
      h('p', { class: 'notice' }, problemText(r)),
      h('div', { class: 'actions' },
        can('crm.delete') ? h('button', {
          type: 'button', id: 'restore',
          onclick: async () => {
            const rr = await api('POST', '/customers/' + encodeURIComponent(id) + '/restore');
            if (!rr.ok) return put(msg, problemBox(rr));
            toast('Restored ' + rr.body.data.customerCode);
            drawCustomer(rr.body.data, rr.headers.get('ETag'));
          },
        }, 'Restore') : null,
        can('crm.audit') ? h('a', { class: 'button', href: '#/customers/' + id + '/history' }, 'History') : null,
        h('a', { class: 'button', href: '#/customers' }, 'Back to the list')),
      msg);
  }

  const version = (etag) => (etag || '').replace(/^W\//, '').replace(/"/g, '');

  function drawCustomer(c, etag) {
    const msg = h('div', { id: 'msg' });
    const actions = h('div', { class: 'actions' });
    const body = h('div', {}, props(c));
    const edit = () => editCustomer(c, etag, body, actions, msg);
    add(actions, [
      can('crm.edit') ? h('button', { type: 'button', id: 'edit', class: 'primary', onclick: edit }, 'Edit') : null,
      can('crm.audit') ? h('a', { class: 'button', id: 'history', href: '#/customers/' + c.customerId + '/history' }, 'History') : null,
      can('crm.edit') && can('crm.delete') ? h('a', { class: 'button', id: 'merge', href: '#/customers/' + c.customerId + '/merge' }, 'Merge duplicates') : null,
      can('crm.delete') ? deleteButton(c, etag, msg) : null,
    ]);
    const related = h('div', { id: 'related' });
    show(c.name, h('h1', {}, c.name, ' ', h('span', { class: 'muted', id: 'code' }, c.customerCode)),
      h('p', { class: 'muted' }, 'Version ', h('span', { id: 'version' }, version(etag))),
      can('crm.edit') ? null : h('p', { class: 'notice' }, 'Read-only: your token lacks crm.edit.'),
      actions, msg, body, related);
    drawRelated(c, related);
  }

  // ---- the people and the interactions behind a customer -------------------

  // drawRelated fills el with the customer's contacts and its timeline.
  async function drawRelated(c, el) {
    const my = screen;
    const base = '/customers/' + encodeURIComponent(c.customerId);
    const [cr, tr] = await Promise.all([api('GET', base + '/contacts'), api('GET', base + '/timeline?perPage=20')]);
    if (my !== screen) return;
    put(el, contactsSection(c, cr), timelineSection(c, tr));
  }

  // reloadCustomer draws the customer again (its version moves with its
  // links and its events).
  const reloadCustomer = (c) => customerScreen(c.customerId);

  function contactsSection(c, r) {
    const msg = h('div', { role: 'status' });
    const list = !r.ok ? problemBox(r) : r.body.data.length === 0
      ? h('p', { class: 'muted', id: 'contacts-none' }, 'No contacts yet.')
      : h('ul', { id: 'contacts', class: 'plain' }, r.body.data.map((l) => h('li', {},
        h('strong', {}, l.contact.name),
        l.primary ? [' ', h('span', { class: 'badge' }, 'primary')] : null,
        l.role ? ' · ' + l.role : null,
        l.contact.title ? ' · ' + l.contact.title : null,
        l.contact.email ? [' · ', h('a', { href: 'mailto:' + l.contact.email }, l.contact.email)] : null,
        can('crm.edit') ? [' ', h('button', {
          type: 'button', class: 'small', 'aria-label': 'Unlink ' + l.contact.name,
          onclick: async () => {
            const rr = await api('DELETE', '/customers/' + encodeURIComponent(c.customerId) + '/contacts/' + encodeURIComponent(l.contactId));
            if (!rr.ok) return put(msg, problemBox(rr));
            toast('Unlinked ' + l.contact.name);
            reloadCustomer(c);
          },
        }, 'Unlink')] : null)));
    let form = null;
    if (can('crm.edit') && can('crm.create')) {
      const f = (id, label, attrs = {}) => h('div', { class: 'field' }, h('label', { for: id }, label), h('input', { id, autocomplete: 'off', ...attrs }));
      form = h('form', {
        id: 'contact-form',
        onsubmit: async (ev) => {
          ev.preventDefault();
          const val = (id) => form.querySelector('#' + id).value.trim();
          const email = val('k-email');
          let contactId = '';
          if (email) { // an existing contact with this email is linked, not copied
            const found = await api('GET', '/contacts?perPage=1&email=' + encodeURIComponent(email));
            if (found.ok && found.body.data.length) contactId = found.body.data[0].contactId;
          }
          if (!contactId) {
            if (!val('k-name')) return put(msg, h('p', { class: 'alert', role: 'alert' }, email
              ? 'No contact has the email ' + email + ': give a name to create one.'
              : 'Give the name of a new contact, or the email of an existing one.'));
            const body = { name: val('k-name') };
            if (email) body.email = email;
            if (val('k-title')) body.title = val('k-title');
            const cr = await api('POST', '/contacts', { body });
            if (!cr.ok) return put(msg, problemBox(cr));
            contactId = cr.body.data.contactId;
          }
          const link = { primary: form.querySelector('#k-primary').checked };
          if (val('k-role')) link.role = val('k-role');
          const lr = await api('PUT', '/customers/' + encodeURIComponent(c.customerId) + '/contacts/' + encodeURIComponent(contactId), { body: link });
          if (!lr.ok) return put(msg, problemBox(lr));
          toast('Linked ' + lr.body.data.contact.name);
          reloadCustomer(c);
        },
      },
      h('fieldset', {}, h('legend', {}, 'Add a contact'),
        h('div', { class: 'grid' },
          f('k-name', 'Name (for a new contact)'),
          f('k-email', 'Email (an existing contact with it is linked)', { type: 'email' }),
          f('k-title', 'Title'),
          f('k-role', 'Role, e.g. billing')),
        h('div', { class: 'field' }, h('label', {}, h('input', { type: 'checkbox', id: 'k-primary' }), ' Primary contact')),
        h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Add contact'))));
    }
    return h('section', { 'aria-labelledby': 'contacts-h' }, h('h2', { id: 'contacts-h' }, 'Contacts'), list, msg, form);
  }

  const KIND_TEXT = {
    created: 'Customer created', updated: 'Changed', deleted: 'Deleted', restored: 'Restored', merged: 'Merged duplicates in',
    mergedinto: 'Merged into another customer', mergeundone: 'Merge undone', unmerged: 'Taken out of a merge',
    contactlinked: 'Contact linked', contactunlinked: 'Contact unlinked',
    call: 'Call', email: 'Email', meeting: 'Meeting', note: 'Note', task: 'Task',
  };

  // entryText describes one timeline entry in words; an open task gets a
  // button that marks it done (with crm.edit), then onChange runs.
  function entryText(e, onChange) {
    if (e.activity) {
      const a = e.activity;
      let markDone = null;
      if (a.type === 'task' && !a.done && can('crm.edit')) {
        markDone = h('button', {
          type: 'button', class: 'mark-done',
          onclick: async (ev) => {
            ev.target.disabled = true;
            const rr = await api('PATCH', '/activities/' + encodeURIComponent(a.activityId), { body: { done: true } });
            if (!rr.ok) {
              ev.target.disabled = false;
              return onChange(rr);
            }
            toast('Marked the task done');
            onChange(null);
          },
        }, 'Mark done');
      }
      return [h('strong', {}, KIND_TEXT[a.type] || a.type), a.subject ? ': ' + a.subject : null,
        a.outcome ? ' (' + a.outcome + ')' : null,
        a.type === 'task' ? (a.done ? ' · done' : ' · open') + (a.dueAt ? ', due ' + fmtTime(a.dueAt) : '') : null,
        markDone ? [' ', markDone] : null,
        a.body ? h('div', { class: 'muted pre' }, a.body.length > 300 ? a.body.slice(0, 300) + '…' : a.body) : null];
    }
    const ev = e.event || {};
    const what = [h('strong', {}, KIND_TEXT[e.kind] || e.kind)];
    if (ev.changes && ev.changes.length) what.push(': ' + ev.changes.map((ch) => LABELS[ch.field] || ch.field).join(', '));
    if (ev.data && ev.data.role) what.push(' (' + ev.data.role + ')');
    what.push(h('span', { class: 'muted' }, ' by ' + ev.actor));
    return what;
  }

  function timelineSection(c, r) {
    const list = h('ol', { id: 'timeline', class: 'plain' });
    const more = h('div', {});
    const msg = h('div', { role: 'status' });
    const base = '/customers/' + encodeURIComponent(c.customerId) + '/timeline?perPage=20';
    function append(page) {
      for (const e of page.data) {
        list.append(h('li', {}, h('time', { datetime: e.at }, fmtTime(e.at)), ' ',
          entryText(e, (failed) => (failed ? put(msg, problemBox(failed)) : reloadCustomer(c)))));
      }
      put(more, page.meta.next ? h('button', {
        type: 'button', id: 'timeline-more',
        onclick: async (ev) => {
          ev.target.disabled = true; // one page at a time
          const rr = await api('GET', base + '&after=' + encodeURIComponent(page.meta.next));
          if (!rr.ok) {
            ev.target.disabled = false;
            return put(msg, problemBox(rr));
          }
          append(rr.body);
        },
      }, 'Older entries') : null);
    }
    if (r.ok) append(r.body);
    let form = null;
    if (can('crm.edit')) {
      const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
      const opened = local(new Date()); // the picker's default: "now", to the minute
      form = h('form', {
        id: 'activity-form',
        onsubmit: async (ev) => {
          ev.preventDefault();
          const val = (id) => form.querySelector('#' + id).value.trim();
          const when = val('a-when');
          // Left at its default it means now (to the second, so that the
          // activity sorts after what happened earlier in the minute).
          const at = when === opened ? new Date() : new Date(when);
          if (isNaN(at.getTime())) return put(msg, h('p', { class: 'alert', role: 'alert' }, 'Give the date and time it happened.'));
          const body = { type: val('a-type'), occurredAt: at.toISOString() };
          for (const [id, k] of [['a-subject', 'subject'], ['a-body', 'body'], ['a-outcome', 'outcome']]) if (val(id)) body[k] = val(id);
          if (body.type === 'task') {
            const due = val('a-due');
            if (due) {
              const d = new Date(due);
              if (isNaN(d.getTime())) return put(msg, h('p', { class: 'alert', role: 'alert' }, 'Give the date and time the task is due.'));
              body.dueAt = d.toISOString();
            }
            body.done = form.querySelector('#a-done').checked;
          }
          const rr = await api('POST', '/customers/' + encodeURIComponent(c.customerId) + '/activities', { body });
          if (!rr.ok) return put(msg, problemBox(rr));
          toast('Recorded the ' + body.type);
          reloadCustomer(c);
        },
      },
      h('fieldset', {}, h('legend', {}, 'Record an activity'),
        h('div', { class: 'grid' },
          h('div', { class: 'field' }, h('label', { for: 'a-type' }, 'Type'),
            h('select', {
              id: 'a-type',
              onchange: (ev) => { form.querySelector('#a-task').hidden = ev.target.value !== 'task'; },
            }, ['call', 'email', 'meeting', 'note', 'task'].map((t) => h('option', { value: t }, KIND_TEXT[t])))),
          h('div', { class: 'field' }, h('label', { for: 'a-when' }, 'When'), h('input', { id: 'a-when', type: 'datetime-local', required: true, value: opened })),
          h('div', { class: 'field' }, h('label', { for: 'a-subject' }, 'Subject'), h('input', { id: 'a-subject', autocomplete: 'off' })),
          h('div', { class: 'field' }, h('label', { for: 'a-outcome' }, 'Outcome'), h('input', { id: 'a-outcome', autocomplete: 'off' }))),
        h('div', { class: 'grid', id: 'a-task', hidden: true },
          h('div', { class: 'field' }, h('label', { for: 'a-due' }, 'Due'), h('input', { id: 'a-due', type: 'datetime-local' })),
          h('div', { class: 'field' }, h('label', {}, h('input', { type: 'checkbox', id: 'a-done' }), ' Done'))),
        h('div', { class: 'field' }, h('label', { for: 'a-body' }, 'Notes'), h('textarea', { id: 'a-body', rows: 3 })),
        h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Record'))));
    }
    return h('section', { 'aria-labelledby': 'timeline-h' }, h('h2', { id: 'timeline-h' }, 'Timeline'), form, msg,
      r.ok ? [list, more] : problemBox(r));
  }

  function deleteButton(c, etag, msg) {
    const wrap = h('span', {});
    const ask = h('button', {
      type: 'button', id: 'delete',
      onclick: () => {
        put(wrap,
          h('span', {}, 'Delete ' + c.name + '? '),
          h('button', {
            type: 'button', id: 'confirm-delete', class: 'danger',
            onclick: async () => {
              const r = await api('DELETE', '/customers/' + c.customerId, { headers: { 'If-Match': etag } });
              if (!r.ok) {
                put(wrap, ask);
                return put(msg, r.status === 412
                  ? h('p', { class: 'alert', role: 'alert' }, 'Someone changed this customer since you opened it: reload before deleting.')
                  : problemBox(r));
              }
              toast('Deleted ' + c.customerCode);
              goneScreen(c.customerId, { status: 404, body: { title: 'Deleted', detail: c.name + ' (' + c.customerCode + ') is in the trash; it can be restored.' } });
            },
          }, 'Confirm delete'),
          ' ',
          h('button', { type: 'button', onclick: () => put(wrap, ask) }, 'Cancel'));
        wrap.querySelector('#confirm-delete').focus();
      },
    }, 'Delete');
    wrap.append(ask);
    return wrap;
  }

  function editCustomer(c, etag, body, actions, msg) {
    const form = customerForm(c, false);
    const save = h('button', { type: 'submit', class: 'primary', id: 'save' }, 'Save');
    actions.hidden = true;
    put(msg);
    const el = h('form', {
      novalidate: true, 'aria-label': 'Edit ' + c.name,
      onsubmit: async (e) => {
        e.preventDefault();
        const patch = mergePatch(c, form.values());
        if (!Object.keys(patch).length) return drawCustomer(c, etag);
        await sendPatch(patch, etag);
      },
    }, form.el, h('div', { class: 'actions' }, save, h('button', { type: 'button', onclick: () => drawCustomer(c, etag) }, 'Cancel')));

    async function sendPatch(patch, ifMatch) {
      save.disabled = true;
      const r = await api('PATCH', '/customers/' + c.customerId, { body: patch, headers: { 'If-Match': ifMatch } });
      save.disabled = false;
      if (r.ok) {
        toast('Saved ' + r.body.data.customerCode);
        return drawCustomer(r.body.data, r.headers.get('ETag'));
      }
      if (r.status === 412) return conflict(patch);
      if (r.status === 404) return goneScreen(c.customerId, r);
      form.showErrors(r);
    }

    // conflict: the customer changed since the form was opened. Show both
    // versions of every field either side changed; the user keeps theirs
    // (applies the patch to the current version) or takes the current one.
    async function conflict(patch) {
      const cur = await api('GET', '/customers/' + c.customerId);
      if (cur.status === 404) return goneScreen(c.customerId, cur);
      if (!cur.ok) return put(msg, problemBox(cur));
      const theirs = cur.body.data;
      const theirEtag = cur.headers.get('ETag');
      const names = Object.keys(LABELS).filter((n) => {
        const mine = n.startsWith('address.') ? (patch.address || {})[n.slice(8)] !== undefined : patch[n] !== undefined;
        return mine || fieldValue(c, n) !== fieldValue(theirs, n);
      });
      const mineValue = (n) => {
        if (n.startsWith('address.')) { const v = (patch.address || {})[n.slice(8)]; return v === undefined ? null : v; }
        if (patch[n] === undefined) return null;
        return n === 'tags' ? patch.tags.join(', ') : patch[n];
      };
      const cell = (v) => (v === null ? h('span', { class: 'muted' }, 'unchanged') : v === '' ? h('span', { class: 'muted' }, '(empty)') : v);
      put(msg, h('section', { class: 'alert', id: 'conflict', role: 'alert', 'aria-labelledby': 'conflict-title' },
        h('h2', { id: 'conflict-title' }, 'Someone else changed this customer'),
        h('p', {}, 'You edited version ' + version(etag) + '; it is now version ' + version(theirEtag) + ' (updated ' + fmtTime(theirs.updatedAt) + '). Nothing of yours was saved.'),
        h('div', { class: 'table-wrap' }, h('table', {},
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'When you opened it'), h('th', { scope: 'col' }, 'Your change'), h('th', { scope: 'col' }, 'Now'))),
          h('tbody', {}, names.map((n) => h('tr', {},
            h('th', { scope: 'row' }, LABELS[n]), h('td', {}, cell(fieldValue(c, n))), h('td', {}, cell(mineValue(n))), h('td', {}, cell(fieldValue(theirs, n)))))))),
        h('div', { class: 'actions' },
          h('button', {
            type: 'button', class: 'primary', id: 'keep-mine',
            onclick: async () => {
              const r = await api('PATCH', '/customers/' + c.customerId, { body: patch, headers: { 'If-Match': theirEtag } });
              if (r.ok) { toast('Saved your changes over version ' + version(theirEtag)); return drawCustomer(r.body.data, r.headers.get('ETag')); }
              if (r.status === 412) return conflict(patch);
              put(msg, problemBox(r));
            },
          }, 'Apply my changes to the current version'),
          h('button', { type: 'button', id: 'take-theirs', onclick: () => drawCustomer(theirs, theirEtag) }, 'Discard my changes'))));
      msg.querySelector('#conflict-title').setAttribute('tabindex', '-1');
      msg.querySelector('#conflict-title').focus();
    }

    put(body, el);
    const first = el.querySelector('input');
    if (first) first.focus();
  }

  // ---- history and as-of ---------------------------------------------------

  const blank = (v) => v === null || v === undefined || v === '' || (Array.isArray(v) && !v.length);

  function showValue(v) {
    if (v === null || v === undefined || v === '') return h('span', { class: 'muted' }, '(empty)');
    if (Array.isArray(v)) return v.join(', ') || h('span', { class: 'muted' }, '(none)');
    if (typeof v === 'object') return Object.entries(v).map(([k, x]) => k + ': ' + x).join(', ');
    return String(v);
  }

  async function historyScreen(id) {
    const my = screen;
    const entries = [];
    for (let page = 1; page <= 50; page++) {
      const r = await api('GET', '/customers/' + encodeURIComponent(id) + '/history?perPage=100&page=' + page);
      if (my !== screen) return;
      if (!r.ok) return show('History', h('h1', {}, 'History'), problemBox(r));
      entries.push(...r.body.data);
      if (page >= r.body.meta.totalPages) break;
    }
    const asOfView = h('div', { id: 'asof-view' });
    const slider = h('input', { id: 'asof-version', type: 'range', min: 1, max: entries.length, step: 1, value: entries.length, 'aria-describedby': 'asof-label' });
    const label = h('p', { id: 'asof-label' });
    const moment = h('input', { id: 'asof-time', type: 'datetime-local', step: 1 });
    let seq = 0;
    async function asOf(iso, what) {
      const mine = ++seq;
      label.textContent = 'As of ' + what;
      const r = await api('GET', '/customers/' + encodeURIComponent(id) + '?asOf=' + encodeURIComponent(iso));
      if (mine !== seq || my !== screen) return;
      if (r.status === 404) return put(asOfView, h('p', { class: 'notice' }, problemText(r)));
      if (!r.ok) return put(asOfView, problemBox(r));
      put(asOfView, props(r.body.data));
    }
    const atVersion = () => {
      const e = entries[Number(slider.value) - 1];
      asOf(e.time, 'version ' + e.version + ' (' + e.kind + ', ' + fmtTime(e.time) + ')');
    };
    slider.addEventListener('input', debounce(atVersion, 80));
    let name = ''; // the latest name the history shows
    for (const e of entries) for (const ch of e.changes || []) if (ch.field === 'name' && ch.new) name = ch.new;
    show('History', h('h1', {}, 'History of ', name || id),
      h('p', {}, h('a', { href: '#/customers/' + id }, 'Back to the customer')),
      h('div', { class: 'table-wrap' }, h('table', { id: 'history-table' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'When'), h('th', { scope: 'col' }, 'What'), h('th', { scope: 'col' }, 'Who'), h('th', { scope: 'col' }, 'Changes'))),
        h('tbody', {}, entries.map((e) => h('tr', {},
          h('td', {}, h('time', { datetime: e.time }, fmtTime(e.time))),
          h('td', {}, e.kind + ' (v' + e.version + ')'),
          h('td', { class: 'mono' }, e.actor),
          h('td', {}, h('ul', { class: 'diff' }, (e.changes || []).map((ch) => h('li', {},
            h('strong', {}, LABELS[ch.field] || ch.field), ': ',
            blank(ch.old) ? null : [h('del', {}, showValue(ch.old)), ' → '],
            blank(ch.new) ? h('span', { class: 'muted' }, 'cleared') : h('ins', {}, showValue(ch.new))))))))))),
      h('h2', {}, 'The customer as of a past moment'),
      h('div', { class: 'field' }, h('label', { for: 'asof-version' }, 'Version'), slider),
      label,
      h('form', {
        class: 'toolbar',
        onsubmit: (ev) => {
          ev.preventDefault();
          if (!moment.value) return;
          const d = new Date(moment.value); // local time, as picked
          asOf(d.toISOString(), fmtTime(d.toISOString()));
        },
      }, h('div', { class: 'field' }, h('label', { for: 'asof-time' }, 'Or any moment'), moment), h('button', { type: 'submit' }, 'Show')),
      asOfView);
    if (entries.length) atVersion();
  }

  // ---- merge ---------------------------------------------------------------

  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

  async function resolveCustomer(ref) {
    if (UUID.test(ref)) {
      const r = await api('GET', '/customers/' + ref);
      return r.ok ? r.body.data : null;
    }
    const r = await api('GET', '/customers/search?perPage=5&q=' + encodeURIComponent(ref));
    if (!r.ok) return null;
    return r.body.data.find((c) => c.customerCode.toLowerCase() === ref.toLowerCase()) || null;
  }

  async function mergeScreen(id) {
    const my = screen;
    const r = await api('GET', '/customers/' + encodeURIComponent(id));
    if (my !== screen) return;
    if (!r.ok) return show('Merge', h('h1', {}, 'Merge'), problemBox(r));
    const survivor = r.body.data;
    const refs = h('input', { id: 'merge-refs', type: 'text', autocomplete: 'off', 'aria-describedby': 'merge-help' });
    const out = h('div', { id: 'merge-preview' });
    show('Merge', h('h1', {}, 'Merge duplicates into ', survivor.name, ' ', h('span', { class: 'muted' }, survivor.customerCode)),
      h('p', {}, h('a', { href: '#/customers/' + id }, 'Back to the customer')),
      h('form', {
        class: 'toolbar', id: 'merge-form',
        onsubmit: async (e) => {
          e.preventDefault();
          const list = refs.value.split(/[\s,]+/).filter(Boolean);
          if (!list.length) return put(out, h('p', { class: 'alert' }, 'Name at least one customer to absorb.'));
          const absorbed = [];
          for (const ref of list) {
            const c = await resolveCustomer(ref);
            if (!c) return put(out, h('p', { class: 'alert', role: 'alert' }, 'No live customer ' + ref + '.'));
            absorbed.push(c);
          }
          preview(survivor, absorbed, out);
        },
      },
      h('div', { class: 'field grow' }, h('label', { for: 'merge-refs' }, 'Customers to absorb'), refs,
        h('div', { id: 'merge-help', class: 'muted' }, 'Codes (C002) or ids, separated by commas. They are deleted into this one; Unmerge takes one back out.')),
      h('button', { type: 'submit' }, 'Preview')),
      out);
  }

  async function preview(survivor, absorbed, out) {
    const ids = absorbed.map((c) => c.customerId);
    const r = await api('POST', '/customers/' + survivor.customerId + '/merge', { body: { customerIds: ids, dryRun: true } });
    if (!r.ok) return put(out, problemBox(r));
    const all = [survivor, ...absorbed];
    const byId = Object.fromEntries(all.map((c) => [c.customerId, c]));
    const picks = {};
    const rows = r.body.merge.choices.map((ch) => {
      const cands = all.filter((c) => fieldValue(c, ch.field) !== '');
      const distinct = new Set(cands.map((c) => fieldValue(c, ch.field)));
      const name = 'pick-' + ch.field.replace(/\./g, '-');
      const cell = ch.customerId && distinct.size > 1
        ? h('fieldset', { class: 'plain' }, h('legend', {}, 'Keep ' + (LABELS[ch.field] || ch.field) + ' of'),
          cands.map((c) => h('label', {}, h('input', {
            type: 'radio', name, value: c.customerId, checked: c.customerId === ch.customerId,
            onchange: () => { picks[ch.field] = c.customerId; },
          }), ' ', c.customerCode + ': ' + fieldValue(c, ch.field))))
        : h('span', {}, showValue(fieldValue(ch.customerId ? byId[ch.customerId] : r.body.data, ch.field)), ' ', h('span', { class: 'muted' }, '(' + ch.rule + ')'));
      return h('tr', {}, h('th', { scope: 'row' }, LABELS[ch.field] || ch.field), h('td', {}, cell));
    });
    const msg = h('div', {});
    put(out,
      h('h2', {}, 'Preview (nothing is changed yet)'),
      h('p', {}, 'Absorbs ' + absorbed.map((c) => c.customerCode + ' ' + c.name).join(', ') + ' into ' + survivor.customerCode + '. Pick the value to keep where they differ.'),
      h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'Merged value'))), h('tbody', {}, rows))),
      h('div', { class: 'actions' }, h('button', {
        type: 'button', class: 'primary', id: 'merge-go',
        onclick: async () => {
          const rr = await api('POST', '/customers/' + survivor.customerId + '/merge', { body: { customerIds: ids, resolve: picks } });
          if (!rr.ok) return put(msg, problemBox(rr));
          toast('Merged into ' + survivor.customerCode);
          go('#/customers/' + survivor.customerId);
        },
      }, 'Merge')),
      msg);
  }

  // ---- import --------------------------------------------------------------

  const IMPORT_FIELDS = ['name', 'email', 'phone', 'company', 'type', 'status', 'notes', 'tags', 'externalId', 'street', 'city', 'state', 'country', 'postalCode'];

  // csvHeader parses the first record of a CSV text (RFC 4180 quoting).
  function csvHeader(text) {
    const cols = [];
    let cur = '';
    let quoted = false;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (quoted) {
        if (ch === '"' && text[i + 1] === '"') { cur += '"'; i++; } else if (ch === '"') quoted = false; else cur += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === ',') { cols.push(cur); cur = ''; } else if (ch === '\n' || ch === '\r') break;
      else cur += ch;
    }
    cols.push(cur);
    return cols.map((c) => c.replace(/^\uFEFF/, ''));
  }

  function guessField(col) {
    const k = col.trim().toLowerCase().replace(/[\s_-]+/g, '');
    const aliases = { fullname: 'name', customername: 'name', mail: 'email', emailaddress: 'email', telephone: 'phone', organisation: 'company', organization: 'company', zip: 'postalCode', postcode: 'postalCode' };
    return IMPORT_FIELDS.find((f) => f.toLowerCase() === k) || aliases[k] || '-';
  }

  function importScreen() {
    const my = screen;
    const file = h('input', { id: 'import-file', type: 'file', accept: '.csv,text/csv', 'aria-describedby': 'import-help' });
    const mapping = h('div', { id: 'import-mapping' });
    const dry = h('input', { id: 'import-dry', type: 'checkbox' });
    const start = h('button', { type: 'submit', class: 'primary', id: 'import-start', disabled: true }, 'Import');
    const progress = h('div', { id: 'import-progress', 'aria-live': 'polite' });
    let selects = [];
    file.addEventListener('change', async () => {
      put(mapping);
      selects = [];
      start.disabled = true;
      const f = file.files[0];
      if (!f) return;
      const cols = csvHeader(await f.slice(0, 1 << 16).text());
      selects = cols.map((col, i) => h('select', { id: 'map-' + i, 'data-column': col, value: guessField(col) },
        h('option', { value: '-' }, '(skip this column)'), IMPORT_FIELDS.map((x) => h('option', { value: x }, x))));
      put(mapping, h('h2', {}, 'Columns'), h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Column in the file'), h('th', { scope: 'col' }, 'Customer field'))),
        h('tbody', {}, cols.map((col, i) => h('tr', {}, h('td', {}, h('label', { for: 'map-' + i }, col || '(unnamed)')), h('td', {}, selects[i])))))));
      start.disabled = false;
    });
    show('Import', h('h1', {}, 'Import customers'),
      h('form', {
        onsubmit: async (e) => {
          e.preventDefault();
          const f = file.files[0];
          if (!f) return;
          const map = {};
          for (const s of selects) map[s.dataset.column] = s.value;
          const fd = new FormData();
          fd.append('mapping', JSON.stringify(map));
          fd.append('file', f, f.name);
          start.disabled = true;
          const r = await api('POST', '/imports' + (dry.checked ? '?dryRun=true' : ''), { form: fd, headers: { 'Idempotency-Key': newKey() } });
          if (!r.ok) { start.disabled = false; return put(progress, problemBox(r)); }
          watch(r.body.data.id);
        },
      },
      h('div', { class: 'field' }, h('label', { for: 'import-file' }, 'CSV file'), file,
        h('div', { id: 'import-help', class: 'muted' }, 'The first line names the columns; map each to a field or skip it. Up to 8 GiB; the rows are imported in the background.')),
      mapping,
      h('div', { class: 'field' }, h('label', { for: 'import-dry', class: 'check' }, dry, ' Only validate (dry run: nothing is created)')),
      h('div', { class: 'actions' }, start)),
      progress);

    async function watch(jobId) {
      const bar = h('progress', { id: 'import-bar', max: 1, 'aria-label': 'Import progress' });
      const text = h('p', { id: 'import-state' });
      const cancel = h('button', {
        type: 'button', id: 'import-cancel',
        onclick: async () => { const r = await api('DELETE', '/imports/' + jobId); if (!r.ok) progress.append(problemBox(r)); },
      }, 'Cancel import');
      const rejected = h('div', { id: 'import-rejected' });
      put(progress, h('h2', {}, 'Progress'), bar, text, cancel, rejected);
      for (;;) {
        const r = await api('GET', '/imports/' + jobId);
        if (my !== screen) return;
        if (!r.ok) return progress.append(problemBox(r));
        const j = r.body.data;
        const total = j.rowsTotal || 0;
        if (total > 0) { bar.max = total; bar.value = Math.min(j.rowsRead, total); } else bar.removeAttribute('value');
        const done = ['done', 'failed', 'cancelled'].includes(j.state);
        text.textContent = j.state + ': ' + fmtNum(j.rowsRead) + (total ? ' of ' + fmtNum(total) : '') + ' rows read, ' +
          fmtNum(j.rowsCreated) + ' created, ' + fmtNum(j.rowsRejected) + ' rejected' +
          (j.rowsExisting ? ', ' + fmtNum(j.rowsExisting) + ' already there' : '') +
          (!done && j.rowsPerSecond ? ', ' + fmtNum(Math.round(j.rowsPerSecond)) + ' rows/s' : '') +
          (!done && j.etaSeconds !== null && j.etaSeconds !== undefined ? ', about ' + Math.ceil(j.etaSeconds) + ' s left' : '') +
          (j.error ? ' (' + j.error + ')' : '');
        if (done && (j.state !== 'done' || j.readModelCurrent)) {
          if (j.state === 'done' && total) bar.value = total;
          cancel.remove();
          if (j.rowsRejected > 0) await showRejected(jobId, rejected);
          start.disabled = false;
          return;
        }
        await new Promise((res) => setTimeout(res, 250));
      }
    }
  }

  async function showRejected(jobId, el) {
    const r = await api('GET', '/imports/' + jobId + '/errors?perPage=100');
    if (!r.ok) return put(el, problemBox(r));
    put(el, h('h2', {}, 'Rejected rows'), h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Line'), h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'Problem'))),
      h('tbody', {}, r.body.data.flatMap((row) => row.errors.map((e) => h('tr', {}, h('td', {}, row.line), h('td', {}, e.field), h('td', {}, e.message))))))),
    r.body.meta.total > r.body.data.length ? h('p', { class: 'muted' }, 'First ' + r.body.data.length + ' of ' + fmtNum(r.body.meta.total) + ' rejected rows.') : null);
  }

  // ---- routing -------------------------------------------------------------

  async function route() {
    const my = ++screen;
    if (!token) return renderSignIn();
    if (!me) {
      const fail = await loadMe();
      if (my !== screen) return;
      if (fail) return signOut(fail.status === 403 ? 'This token lacks crm.view; the console needs it.' : 'Sign in again: ' + problemText(fail));
      renderChrome();
    }
    markNav();
    const raw = location.hash.replace(/^#/, '') || '/customers';
    const [path, qs] = raw.split('?');
    const parts = path.split('/').filter(Boolean);
    const params = new URLSearchParams(qs || '');
    try {
      if (parts[0] === 'customers' && parts.length === 1) await listScreen(params, false);
      else if (parts[0] === 'trash' && parts.length === 1) await listScreen(params, true);
      else if (parts[0] === 'customers' && parts[1] === 'new' && parts.length === 2) createScreen();
      else if (parts[0] === 'customers' && parts.length === 2) await customerScreen(parts[1]);
      else if (parts[0] === 'customers' && parts[2] === 'history' && parts.length === 3) await historyScreen(parts[1]);
      else if (parts[0] === 'customers' && parts[2] === 'merge' && parts.length === 3) await mergeScreen(parts[1]);
      else if (parts[0] === 'import' && parts.length === 1) importScreen();
      else show('Not found', h('h1', {}, 'No such screen'), h('p', {}, h('a', { href: '#/customers' }, 'Go to the customers')));
    } catch (e) {
      if (!(e instanceof Halt)) show('Error', h('h1', {}, 'Something went wrong'), h('p', { class: 'alert' }, String((e && e.message) || e)));
    }
  }

  window.addEventListener('hashchange', route);
  route();
})();
