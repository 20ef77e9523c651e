// The report page's script (inlined by review/report-html.ts). It renders every number from the embedded JSON
// with textContent only (never HTML from data), pages the key list, and draws a key's chart when its section
// is first opened. Elements that show a number from the JSON carry data-path="a.b.0.c" for the browser test.
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('keyfence-data').textContent);
  var PAGE = 25;
  var PALETTE = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#0891b2', '#9ca3af'];
  var charts = {};
  var state = { page: 0, filter: '', urgency: 'all' };

  function el(tag, props) {
    var node = document.createElement(tag);
    if (props) {
      for (var k in props) {
        if (k === 'text') node.textContent = props[k];
        else if (k === 'cls') node.className = props[k];
        else if (k === 'on') for (var ev in props.on) node.addEventListener(ev, props.on[ev]);
        else node.setAttribute(k, props[k]);
      }
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) c.forEach(function (x) { if (x) node.appendChild(typeof x === 'string' ? document.createTextNode(x) : x); });
      else node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return node;
  }
  function fmt(n) { return Number(n).toLocaleString('en-US'); }
  function num(path, n) { return el('span', { cls: 'num', 'data-path': path, text: fmt(n) }); }
  function day(iso) { return iso ? String(iso).slice(0, 10) : '—'; }
  function badge(level) { return el('span', { cls: 'badge ' + level, text: level === 'none' ? 'ok' : level }); }

  function tile(label, path, value, cls) {
    return el('div', { cls: 'tile' + (cls ? ' ' + cls : '') }, num(path, value), el('div', { cls: 'label', text: label }));
  }

  function table(headers, rows) {
    return el('table', null,
      el('thead', null, el('tr', null, headers.map(function (h) { return el('th', { text: h }); }))),
      el('tbody', null, rows.map(function (r) {
        return el('tr', null, r.map(function (c) { return el('td', null, typeof c === 'object' && c !== null ? c : String(c === null || c === undefined ? '' : c)); }));
      })));
  }

  function renderHeader(root) {
    var s = data.summary;
    root.appendChild(el('header', null,
      el('h1', { text: 'keyfence — network ACL review' }),
      el('p', { cls: 'meta' }, 'Generated ' + data.generatedAt + ' · window ' + data.window.from + ' → ' + data.window.to + ' · newest event ' + data.newestEvent +
        (data.prunedBefore ? ' · events before ' + data.prunedBefore + ' pruned (rolled up)' : ''))));
    if (data.approval) {
      var a = data.approval;
      var text = 'Approval ' + a.file + (a.approvedBy ? ' by ' + a.approvedBy + ' at ' + a.approvedAt : '');
      var sealCls = a.sealOk === false ? 'alert' : 'info';
      root.appendChild(el('p', { cls: 'banner ' + sealCls, id: 'approval' }, text + (a.sealOk === null ? '' : a.sealOk ? ' · seal OK' : ' · SEAL BROKEN: ' + a.sealProblems.join('; '))));
    } else {
      root.appendChild(el('p', { cls: 'banner info', id: 'approval' }, 'No approval file given: every key counts as unprotected and drift is not measured.'));
    }
    var tiles = el('section', { cls: 'tiles', id: 'summary' },
      tile('keys', 'summary.keys', s.keys),
      tile('protected by an approved ACL', 'summary.protectedKeys', s.protectedKeys, 'good'),
      tile('unprotected', 'summary.unprotectedKeys', s.unprotectedKeys, s.unprotectedKeys > 0 ? 'warn' : ''),
      tile('keys of high urgency', 'summary.urgentKeys', s.urgentKeys, s.urgentKeys > 0 ? 'bad' : ''),
      tile('findings', 'summary.findings', s.findings, s.findingsBySeverity.high > 0 ? 'bad' : ''),
      tile('high-severity findings', 'summary.findingsBySeverity.high', s.findingsBySeverity.high, s.findingsBySeverity.high > 0 ? 'bad' : ''),
      tile('ACLs proposed', 'summary.proposedAcls', s.proposedAcls),
      tile('entries proposed', 'summary.proposedEntries', s.proposedEntries),
      tile('calls by permanent keys', 'summary.calls', s.calls));
    root.appendChild(tiles);
    if (data.drift) {
      var d = data.drift;
      root.appendChild(el('section', { cls: 'tiles', id: 'drift' },
        el('h2', { text: 'Drift since approval' + (d.needsAttention ? ' — needs a person' : ' — none') }),
        tile('new sources the approval would deny', 'drift.newDeniedSources', d.newDeniedSources, d.newDeniedSources > 0 ? 'bad' : ''),
        tile('…of them legitimate', 'drift.legitimateNewDeniedSources', d.legitimateNewDeniedSources, d.legitimateNewDeniedSources > 0 ? 'bad' : ''),
        tile('entries unused ' + d.unusedDays + ' days', 'drift.unusedEntries', d.unusedEntries, d.unusedEntries > 0 ? 'warn' : ''),
        tile('approved keys gone dormant', 'drift.dormantKeys', d.dormantKeys, d.dormantKeys > 0 ? 'warn' : ''),
        tile('new keys without an ACL', 'drift.newKeysWithoutAcl', d.newKeysWithoutAcl, d.newKeysWithoutAcl > 0 ? 'warn' : '')));
    }
    var extra = [].concat(data.warnings.map(function (w) { return '⚠ ' + w; }), data.notes);
    if (extra.length > 0) {
      root.appendChild(el('details', { cls: 'notes' }, el('summary', { text: extra.length + ' note(s) and warning(s)' }),
        el('ul', null, extra.map(function (t) { return el('li', { text: t }); }))));
    }
    if (data.accountLevel) {
      var acct = data.accountLevel;
      root.appendChild(el('details', { cls: 'notes', id: 'account-level' }, el('summary', { text: 'Account-level ACL proposed (' + acct.entries.length + ' entries, relied on by ' + acct.coveredKeys.length + ' keys)' }),
        entriesTable(acct.entries, 'accountLevel.entries')));
    }
  }

  function entriesTable(entries, base) {
    return table(['rule', 'entry', 'calls', 'days', 'first seen', 'last seen', 'addresses'], entries.map(function (e, j) {
      return [e.rule, el('code', { text: e.cidr }), num(base + '.' + j + '.calls', e.calls), num(base + '.' + j + '.days', e.days), day(e.firstSeen), day(e.lastSeen), e.addresses === null ? '' : String(e.addresses)];
    }));
  }

  function visibleKeys() {
    var f = state.filter.toLowerCase();
    var out = [];
    data.keys.forEach(function (k, i) {
      if (state.urgency !== 'all' && k.urgency !== state.urgency) return;
      if (f && (k.accessKeyId + ' ' + (k.userName || '')).toLowerCase().indexOf(f) < 0) return;
      out.push(i);
    });
    return out;
  }

  function renderKeys(container) {
    container.textContent = '';
    var indexes = visibleKeys();
    var pages = Math.max(1, Math.ceil(indexes.length / PAGE));
    if (state.page >= pages) state.page = pages - 1;
    var shown = indexes.slice(state.page * PAGE, (state.page + 1) * PAGE);
    shown.forEach(function (i) { container.appendChild(keySection(i)); });
    var nav = el('nav', { cls: 'pager' },
      el('button', { type: 'button', text: '‹ previous', on: { click: function () { state.page--; renderKeys(container); container.scrollIntoView(); } } }),
      el('span', { id: 'page-info', text: 'page ' + (state.page + 1) + ' of ' + pages + ' · ' + indexes.length + ' key(s)' }),
      el('button', { type: 'button', text: 'next ›', on: { click: function () { state.page++; renderKeys(container); container.scrollIntoView(); } } }));
    nav.firstChild.disabled = state.page === 0;
    nav.lastChild.disabled = state.page >= pages - 1;
    container.appendChild(nav);
  }

  function keySection(i) {
    var k = data.keys[i];
    var base = 'keys.' + i;
    var details = el('details', { cls: 'key', 'data-key': k.accessKeyId, 'data-index': String(i) },
      el('summary', null,
        badge(k.urgency), ' ',
        el('code', { cls: 'keyid', text: k.accessKeyId }), ' ',
        el('span', { cls: 'user', text: k.userName || '(no user name)' }), ' · ',
        num(base + '.calls', k.calls), ' calls · ',
        el('span', { cls: k.protectedBy ? 'prot' : 'unprot', text: k.protectedBy ? 'protected (' + k.protectedBy + ' level)' : 'unprotected' }),
        k.reasons.length ? el('span', { cls: 'reason', text: ' — ' + k.reasons[0] + (k.reasons.length > 1 ? ' (+' + (k.reasons.length - 1) + ')' : '') }) : null));
    details.addEventListener('toggle', function () {
      if (details.open && !details.dataset.rendered) {
        details.dataset.rendered = '1';
        details.appendChild(keyBody(k, base));
        drawChart(k, details);
      }
    });
    return details;
  }

  function keyBody(k, base) {
    var body = el('div', { cls: 'body' });
    if (k.reasons.length) body.appendChild(el('ul', { cls: 'reasons' }, k.reasons.map(function (r) { return el('li', { text: r }); })));
    body.appendChild(el('p', { cls: 'meta' },
      'first seen ' + day(k.firstSeen) + ' · last seen ' + day(k.lastSeen) + ' · ', num(base + '.publicSources', k.publicSources), ' public and ',
      num(base + '.vpcSources', k.vpcSources), ' VPC source address(es)' + (k.identityType ? ' · ' + k.identityType : '')));
    if (k.userAgents.length) body.appendChild(el('p', { cls: 'meta' }, 'user agents: ', el('span', { cls: 'ua', text: k.userAgents.join(' · ') })));
    body.appendChild(el('h3', { text: 'Daily governed calls by source' }));
    if (k.timeline.length) body.appendChild(el('div', { cls: 'chart' }, el('canvas', { role: 'img', 'aria-label': 'daily calls of ' + k.accessKeyId + ' by source' })));
    else body.appendChild(el('p', { cls: 'meta', text: 'No governed public or VPC call in the window.' }));
    body.appendChild(el('h3', { text: 'Proposed entries' }));
    if (k.proposal.entries.length) body.appendChild(entriesTable(k.proposal.entries, base + '.proposal.entries'));
    else body.appendChild(el('p', { cls: 'meta', text: (k.proposal.kind === 'account' ? 'Governed by the account-level ACL: ' : 'No key-level ACL: ') + (k.proposal.reason || '') }));
    if (k.suspicious.length) {
      body.appendChild(el('h3', { cls: 'bad', text: 'Suspicious sources (kept out)' }));
      body.appendChild(table(['source', 'VPC', 'calls', 'reason'], k.suspicious.map(function (x, j) {
        return [el('code', { text: x.source }), x.vpcId || '', x.calls === undefined ? '' : num(base + '.suspicious.' + j + '.calls', x.calls), x.reason];
      })));
    }
    if (k.excluded.length) {
      body.appendChild(el('h3', { text: 'Excluded sources' }));
      body.appendChild(table(['source', 'VPC', 'calls', 'reason'], k.excluded.map(function (x, j) {
        return [el('code', { text: x.source }), x.vpcId || '', x.calls === undefined ? '' : num(base + '.excluded.' + j + '.calls', x.calls), x.reason];
      })));
    }
    if (k.drift) {
      var d = k.drift;
      body.appendChild(el('h3', { text: 'Drift since approval' }));
      var items = [];
      d.newDeniedSources.forEach(function (s, j) {
        items.push(el('li', null, (s.legitimate ? 'WOULD BREAK ' : 'kept out ') + s.source + (s.vpcId ? ' in ' + s.vpcId : '') + ': ', num(base + '.drift.newDeniedSources.' + j + '.calls', s.calls),
          ' calls, first ' + day(s.firstSeen) + (s.suspicion ? ' — ' + s.suspicion : '')));
      });
      d.unusedEntries.forEach(function (u) { items.push(el('li', { text: 'unused entry ' + u.rule + ' ' + u.cidr })); });
      if (d.dormant) items.push(el('li', { text: 'approved key without calls' }));
      if (d.withoutAcl) items.push(el('li', { text: 'governed traffic, but the approval does not name this key' }));
      body.appendChild(items.length ? el('ul', null, items) : el('p', { cls: 'meta', text: 'No drift.' }));
    }
    if (k.findings.length) {
      body.appendChild(el('h3', { text: 'Findings' }));
      body.appendChild(el('ul', null, k.findings.map(function (f) {
        return el('li', null, badge(f.severity === 'info' ? 'low' : f.severity), ' ', el('strong', { text: f.title }), ': ' + f.detail, el('div', { cls: 'advice', text: f.advice }));
      })));
    }
    if (k.warnings.length) body.appendChild(el('ul', { cls: 'warnings' }, k.warnings.map(function (w) { return el('li', { text: '⚠ ' + w }); })));
    return body;
  }

  function drawChart(k, details) {
    var canvas = details.querySelector('canvas');
    if (!canvas || typeof Chart === 'undefined') return;
    charts[k.accessKeyId] = new Chart(canvas, {
      type: 'bar',
      data: {
        labels: data.days.map(function (d) { return d.slice(5); }),
        datasets: k.timeline.map(function (s, i) {
          return { label: s.label, data: s.calls, backgroundColor: PALETTE[Math.min(i, PALETTE.length - 1)], stack: 'calls' };
        }),
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, title: { display: true, text: 'calls / day' } } },
        plugins: { legend: { position: 'bottom' } },
      },
    });
  }

  /** The two-minute read: the most urgent keys, one line each; a click shows that key's section. */
  function renderAttention(root, show) {
    var urgent = data.keys.filter(function (k) { return k.urgency === 'high' || k.urgency === 'medium'; });
    var section = el('section', { id: 'attention' }, el('h2', { text: urgent.length ? 'Needs a person (' + urgent.length + ' key' + (urgent.length === 1 ? '' : 's') + ')' : 'Nothing urgent' }));
    if (urgent.length) {
      section.appendChild(el('ol', null, urgent.slice(0, 10).map(function (k) {
        return el('li', null, badge(k.urgency), ' ',
          el('button', { type: 'button', cls: 'link', text: k.accessKeyId, on: { click: function () { show(k.accessKeyId); } } }),
          ' ', el('span', { cls: 'user', text: k.userName || '' }), ' — ' + k.reasons.join('; '));
      })));
      if (urgent.length > 10) section.appendChild(el('p', { cls: 'meta', text: '… and ' + (urgent.length - 10) + ' more below (filter by urgency).' }));
    }
    root.appendChild(section);
  }

  function renderKeyList(root) {
    var section = el('section', { id: 'keys' }, el('h2', { text: 'Keys, most urgent first' }));
    var list = el('div', { id: 'key-list' });
    var search = el('input', { type: 'search', placeholder: 'filter by key or user', 'aria-label': 'filter keys' });
    search.addEventListener('input', function () { state.filter = search.value; state.page = 0; renderKeys(list); });
    var select = el('select', { 'aria-label': 'urgency' }, ['all', 'high', 'medium', 'low', 'none'].map(function (u) { return el('option', { value: u, text: u === 'all' ? 'all urgencies' : u === 'none' ? 'nothing to do' : u }); }));
    select.addEventListener('change', function () { state.urgency = select.value; state.page = 0; renderKeys(list); });
    section.appendChild(el('div', { cls: 'controls' }, search, ' ', select));
    section.appendChild(list);
    renderAttention(root, function (id) {
      search.value = id;
      select.value = 'all';
      state.filter = id;
      state.urgency = 'all';
      state.page = 0;
      renderKeys(list);
      var d = list.querySelector('details.key');
      if (d) { d.open = true; d.scrollIntoView(); }
    });
    root.appendChild(section);
    renderKeys(list);
    var first = list.querySelector('details.key');
    if (first) first.open = true;
  }

  var root = document.getElementById('app');
  root.textContent = '';
  renderHeader(root);
  renderKeyList(root);
  window.keyfenceReport = {
    charts: charts,
    open: function (id) {
      var sel = document.querySelector('details.key[data-key="' + String(id).replace(/["\\]/g, '\\$&') + '"]');
      if (sel) sel.open = true;
      return Boolean(sel);
    },
  };
  document.documentElement.setAttribute('data-ready', '1');
})();
