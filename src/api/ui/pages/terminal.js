/**
 * A shell in the workspace: xterm.js over the terminal WebSocket. The browser cannot set an
 * Authorization header on a WebSocket, so the key travels as the `wo.bearer.<key>` subprotocol next
 * to `wo.terminal` (the server answers only `wo.terminal`); it is never put in the URL.
 * Binary frames carry terminal bytes both ways; a text frame `{type:"resize"}` follows the size.
 */
import { Terminal } from '/ui/vendor/xterm/lib/xterm.mjs';
import { FitAddon } from '/ui/vendor/addon-fit/lib/addon-fit.mjs';
import { api, getKey } from '../api.js';
import { h, notice } from '../dom.js';

const CLOSE_REASONS = {
  4401: 'the key was refused',
  4404: 'no such workspace',
  4409: 'the workspace is not online',
};

export function terminalPage(main, id) {
  const status = h('div', { id: 'terminal-status' }, notice('Connecting…', 'info'));
  const host = h('div', { id: 'terminal', class: 'terminal-host' });
  const title = h('span', {}, id);
  main.append(
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, 'Terminal: ', title),
      h('a', { href: `#/files/${encodeURIComponent(id)}` }, 'Files'),
      h('a', { href: '#/workspaces' }, 'Back to workspaces'),
    ),
    status,
    host,
  );
  void api('GET', `/v1/workspaces/${encodeURIComponent(id)}`)
    .then((w) => title.replaceChildren(`${w.name} (generation ${w.generation})`))
    .catch(() => {});

  const term = new Terminal({ cursorBlink: true, convertEol: false, fontSize: 14, scrollback: 5000 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(host);
  fit.fit();

  const url = new URL(`/v1/workspaces/${encodeURIComponent(id)}/terminal`, location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('cols', String(term.cols));
  url.searchParams.set('rows', String(term.rows));
  let ws;
  try {
    ws = new WebSocket(url, ['wo.terminal', `wo.bearer.${getKey()}`]);
  } catch (err) {
    // A key with characters a subprotocol cannot carry.
    status.replaceChildren(notice(`Cannot open the terminal: ${err.message}`));
    term.dispose();
    return () => {};
  }
  ws.binaryType = 'arraybuffer';
  const encoder = new TextEncoder();
  const sendResize = () => {
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
    }
  };
  ws.addEventListener('open', () => {
    status.replaceChildren(h('p', { class: 'notice ok', dataset: { state: 'open' } }, 'Connected'));
    term.focus();
  });
  ws.addEventListener('message', (e) => {
    if (typeof e.data !== 'string') term.write(new Uint8Array(e.data));
  });
  ws.addEventListener('close', (e) => {
    const why = CLOSE_REASONS[e.code] ?? (e.reason || `closed (${e.code})`);
    status.replaceChildren(notice(`Disconnected: ${why}`, e.code === 1000 ? 'info' : 'error'));
  });
  const onData = term.onData((data) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data));
  });
  const onBinary = term.onBinary((data) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(Uint8Array.from(data, (c) => c.charCodeAt(0)));
  });
  const onResize = term.onResize(sendResize);
  const refit = () => fit.fit();
  window.addEventListener('resize', refit);

  return () => {
    window.removeEventListener('resize', refit);
    onData.dispose();
    onBinary.dispose();
    onResize.dispose();
    ws.close(1000, 'page closed');
    term.dispose();
  };
}
