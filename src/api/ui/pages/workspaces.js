/**
 * The workspaces list: status, backend, generation, last heartbeat, restarts, a boot-phase
 * timeline, and links to the terminal, the files and the workflow in the Temporal UI.
 *
 * Status is live: each listed workspace (up to MAX_STREAMS, under the API's per-key cap of open
 * streams) follows its `/events` stream, and a row with an open stream takes its status only from
 * it. The list itself is re-read every LIST_POLL_MS for new workspaces and the fields that change
 * without a transition (heartbeat); the boot log is re-read on transitions and while booting.
 */
import { api, consoleConfig, followEvents } from '../api.js';
import { ago, duration, fill, h, notice } from '../dom.js';

const MAX_STREAMS = 12;
const LIST_POLL_MS = 5000;
const BOOT_POLL_MS = 3000;
const BOOTING = new Set(['provisioning', 'restarting']);
const ACTIVE = new Set(['provisioning', 'restarting', 'stopping', 'deleting']);

export function workspacesPage(main) {
  const rows = new Map(); // id → { w, tr, cells, stream, abort, boot, bootAt, refreshTimer }
  const stop = new AbortController();
  const timers = [];
  const status = h('div', { id: 'list-status' });
  const tbody = h('tbody');
  const empty = h('p', { class: 'muted', hidden: true }, 'No workspaces yet.');
  let cfg = null;

  main.append(
    h('h1', {}, 'Workspaces'),
    status,
    h(
      'table',
      { id: 'workspaces', class: 'grid' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Name', 'Status', 'Backend', 'Gen', 'Last heartbeat', 'Restarts', 'Boot timeline', ''].map((t) =>
            h('th', {}, t),
          ),
        ),
      ),
      tbody,
    ),
    empty,
  );

  const workflowLink = (w) => {
    if (!cfg || !cfg.temporalUiUrl) return null;
    const wid = cfg.workflowIdTemplate.replace('{id}', w.id);
    const href =
      `${cfg.temporalUiUrl}/namespaces/${encodeURIComponent(cfg.temporalNamespace)}` +
      `/workflows/${encodeURIComponent(wid)}`;
    return h('a', { href, target: '_blank', rel: 'noopener noreferrer', class: 'temporal' }, 'Workflow');
  };

  function newRow(w) {
    const cells = {
      name: h('td', { class: 'name' }),
      status: h('td', { class: 'status' }),
      backend: h('td'),
      generation: h('td', { class: 'num' }),
      heartbeat: h('td'),
      restarts: h('td', { class: 'num' }),
      boot: h('td', { class: 'boot' }),
      links: h('td', { class: 'links' }),
    };
    const tr = h('tr', { dataset: { id: w.id } }, Object.values(cells));
    const row = {
      w,
      tr,
      cells,
      stream: 'none',
      abort: null,
      boot: null,
      bootGen: 0,
      bootAt: 0,
      refreshTimer: null,
    };
    rows.set(w.id, row);
    return row;
  }

  function render(row) {
    const { w, cells, tr } = row;
    tr.dataset.status = w.status;
    tr.dataset.stream = row.stream;
    fill(cells.name, h('div', {}, w.name), h('div', { class: 'muted id' }, w.id));
    fill(
      cells.status,
      h('span', { class: `badge s-${w.status}` }, w.status),
      w.phase ? h('div', { class: 'muted phase' }, w.phase) : null,
      w.error ? h('div', { class: 'error-text', title: w.error }, w.error) : null,
      row.stream === 'open' ? h('span', { class: 'live', title: 'live through /events' }, '● live') : null,
    );
    fill(cells.backend, w.backend);
    fill(cells.generation, String(w.generation));
    cells.heartbeat.title = w.lastHeartbeatAt ?? '';
    fill(cells.heartbeat, ago(w.lastHeartbeatAt));
    cells.restarts.title = w.lastRestartReason ?? '';
    fill(cells.restarts, String(w.restartCount ?? 0));
    fill(cells.boot, timeline(row));
    const up = w.status === 'online' || w.status === 'degraded';
    const id = encodeURIComponent(w.id);
    // Links are rebuilt only when they change: a link replaced mid-click would lose the click.
    const linksKey = `${up}|${cfg ? cfg.temporalUiUrl : ''}`;
    if (row.linksKey === linksKey) return;
    row.linksKey = linksKey;
    fill(
      cells.links,
      up ? h('a', { href: `#/terminal/${id}`, class: 'terminal' }, 'Terminal') : null,
      up ? h('a', { href: `#/files/${id}`, class: 'files' }, 'Files') : null,
      workflowLink(w),
    );
  }

  /** The current generation's boot phases as a bar, each segment as wide as the phase lasted. */
  function timeline(row) {
    // A boot log read for an earlier generation is not this one's: shown as still loading.
    if (row.bootGen !== row.w.generation) return h('span', { class: 'muted' }, '…');
    const events = row.boot.filter((e) => e.generation === row.w.generation);
    if (events.length === 0) return h('span', { class: 'muted' }, 'no boot events yet');
    // The last phase is still running while this generation boots and has not reported ready.
    const booting = BOOTING.has(row.w.status) && events[events.length - 1].phase !== 'platform-health-ok';
    const bar = h('div', { class: 'timeline', role: 'img' });
    const now = Date.now();
    let total = 0;
    events.forEach((e, i) => {
      const last = i === events.length - 1;
      const ms = e.durationMs ?? (last && booting ? Math.max(0, now - Date.parse(e.ts)) : 0);
      total += ms;
      const seg = h('span', {
        class: `seg p${i % 6}${last && booting ? ' running' : ''}`,
        title: `${e.phase}: ${e.durationMs === null && last ? (booting ? 'running' : 'last phase') : duration(ms)}${e.message ? ` — ${e.message}` : ''}`,
        dataset: { phase: e.phase },
      });
      // Proportional width; every phase stays visible however short.
      seg.style.flexGrow = String(Math.max(ms, 1));
      bar.append(seg);
    });
    bar.setAttribute('aria-label', events.map((e) => e.phase).join(' → '));
    return h(
      'div',
      {},
      bar,
      h(
        'div',
        { class: 'muted small' },
        `${events.length} phases · ${duration(total)} · ${events[events.length - 1].phase}`,
      ),
    );
  }

  async function loadBoot(row) {
    row.bootAt = Date.now();
    const generation = row.w.generation;
    try {
      const log = await api(
        'GET',
        // The phases alone: no console read from the backend for every listed row.
        `/v1/workspaces/${encodeURIComponent(row.w.id)}/boot-log?generation=${generation}&console=false`,
        { signal: stop.signal },
      );
      row.boot = log.events;
      row.bootGen = generation;
      render(row);
    } catch {
      // the next transition or poll tries again
    }
  }

  /** A transition arrived: re-read the fields it may have changed, once the burst is over. */
  function scheduleRefresh(row) {
    clearTimeout(row.refreshTimer);
    row.refreshTimer = setTimeout(async () => {
      try {
        const w = await api('GET', `/v1/workspaces/${encodeURIComponent(row.w.id)}`, { signal: stop.signal });
        merge(row, w);
      } catch {
        // the list poll catches up
      }
      void loadBoot(row);
    }, 300);
  }

  /** Fields from a read; status/phase only when no stream is open (the stream is newer). */
  function merge(row, w) {
    const live = row.stream === 'open';
    const { status: s, phase } = row.w;
    row.w = { ...row.w, ...w };
    if (live) {
      row.w.status = s;
      row.w.phase = phase;
    }
    render(row);
  }

  function follow(row) {
    row.abort = new AbortController();
    stop.signal.addEventListener('abort', () => row.abort.abort(), { once: true });
    void followEvents(row.w.id, {
      signal: row.abort.signal,
      onState: (state) => {
        row.stream = state;
        render(row);
      },
      onEvent: (ev) => {
        row.w.status = ev.status;
        row.w.phase = ev.phase ?? undefined;
        if (typeof ev.generation === 'number' && ev.generation > row.w.generation) {
          row.w.generation = ev.generation;
        }
        if (ev.status === 'failed' && ev.message) row.w.error = ev.message;
        render(row);
        scheduleRefresh(row);
      },
    });
  }

  async function loadList() {
    let items;
    try {
      ({ items } = await api('GET', '/v1/workspaces?limit=200', { signal: stop.signal }));
      status.replaceChildren();
    } catch (err) {
      if (!stop.signal.aborted) status.replaceChildren(notice(`Could not list workspaces: ${err.message}`));
      return;
    }
    const seen = new Set();
    for (const w of items) {
      seen.add(w.id);
      let row = rows.get(w.id);
      if (!row) {
        row = newRow(w);
        tbody.append(row.tr);
        render(row);
        void loadBoot(row);
        const streaming = [...rows.values()].filter((r) => r.abort).length;
        if (w.status !== 'deleted' && streaming < MAX_STREAMS) follow(row);
      } else {
        merge(row, w);
        if (BOOTING.has(row.w.status) && Date.now() - row.bootAt >= BOOT_POLL_MS) void loadBoot(row);
      }
    }
    for (const [id, row] of rows) {
      if (seen.has(id)) continue;
      row.abort?.abort();
      row.tr.remove();
      rows.delete(id);
    }
    empty.hidden = rows.size > 0;
  }

  void consoleConfig()
    .then((c) => {
      cfg = c;
      for (const row of rows.values()) render(row);
    })
    .catch(() => {});
  void loadList();
  timers.push(setInterval(() => void loadList(), LIST_POLL_MS));
  // Relative times and running phases move on between reads.
  timers.push(
    setInterval(() => {
      for (const row of rows.values()) {
        fill(row.cells.heartbeat, ago(row.w.lastHeartbeatAt));
        if (ACTIVE.has(row.w.status)) fill(row.cells.boot, timeline(row));
      }
    }, 1000),
  );

  return () => {
    stop.abort();
    timers.forEach(clearInterval);
    for (const row of rows.values()) clearTimeout(row.refreshTimer);
  };
}
