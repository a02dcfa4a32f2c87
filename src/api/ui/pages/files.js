/**
 * A workspace's files (`/workspace` and `/configs`): browse folders, download, upload into the
 * folder shown, delete. Downloads go through fetch (the key is a header, not a URL) and are handed
 * to the browser as an object URL.
 */
import { api } from '../api.js';
import { fill, h, notice } from '../dom.js';

const ROOTS = ['/workspace', '/configs'];

const size = (n) =>
  n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`;

export function filesPage(main, id) {
  const base = `/v1/workspaces/${encodeURIComponent(id)}/files`;
  const q = (root, path) => `root=${encodeURIComponent(root)}&path=${encodeURIComponent(path)}`;
  let root = ROOTS[0];
  let dir = '';
  let gone = false;

  const status = h('div', { id: 'files-status' });
  const crumbs = h('div', { class: 'crumbs' });
  const tbody = h('tbody');
  const rootSelect = h(
    'select',
    { id: 'root', 'aria-label': 'root' },
    ROOTS.map((r) => h('option', { value: r }, r)),
  );
  rootSelect.addEventListener('change', () => {
    root = rootSelect.value;
    dir = '';
    void load();
  });
  const upload = h('input', { type: 'file', id: 'upload', multiple: true });
  upload.addEventListener('change', async () => {
    const files = [...upload.files];
    upload.value = '';
    for (const f of files) {
      const path = dir ? `${dir}/${f.name}` : f.name;
      status.replaceChildren(notice(`Uploading ${path}…`, 'info'));
      try {
        await api('PUT', `${base}/content?${q(root, path)}`, { raw: f, as: 'none' });
      } catch (err) {
        status.replaceChildren(notice(`Upload of ${path} failed: ${err.message}`));
        return;
      }
    }
    status.replaceChildren();
    void load();
  });

  main.append(
    h(
      'div',
      { class: 'page-head' },
      h('h1', {}, 'Files'),
      h('a', { href: `#/terminal/${encodeURIComponent(id)}` }, 'Terminal'),
      h('a', { href: '#/workspaces' }, 'Back to workspaces'),
    ),
    h(
      'div',
      { class: 'toolbar' },
      rootSelect,
      crumbs,
      h('label', { class: 'button' }, 'Upload', upload),
      h('button', { type: 'button', onclick: () => void load() }, 'Refresh'),
    ),
    status,
    h(
      'table',
      { id: 'files', class: 'grid' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Name', 'Size', 'Modified', ''].map((t) => h('th', {}, t)),
        ),
      ),
      tbody,
    ),
  );

  function renderCrumbs() {
    const parts = dir ? dir.split('/') : [];
    fill(
      crumbs,
      h('a', { href: '#', onclick: (e) => (e.preventDefault(), cd('')) }, root),
      parts.map((p, i) => [
        ' / ',
        h('a', { href: '#', onclick: (e) => (e.preventDefault(), cd(parts.slice(0, i + 1).join('/'))) }, p),
      ]),
    );
  }

  function cd(path) {
    dir = path;
    void load();
  }

  async function download(path) {
    try {
      const blob = await api('GET', `${base}/content?${q(root, path)}`, { as: 'blob' });
      const href = URL.createObjectURL(blob);
      const a = h('a', { href, download: path.split('/').pop() });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(href), 10_000);
    } catch (err) {
      status.replaceChildren(notice(`Download of ${path} failed: ${err.message}`));
    }
  }

  async function remove(path) {
    if (!confirm(`Delete ${root}/${path}?`)) return;
    try {
      await api('DELETE', `${base}/content?${q(root, path)}`, { as: 'none' });
      void load();
    } catch (err) {
      status.replaceChildren(notice(`Delete of ${path} failed: ${err.message}`));
    }
  }

  async function load() {
    renderCrumbs();
    let listing;
    try {
      listing = await api('GET', `${base}?${q(root, dir)}&depth=1`);
    } catch (err) {
      if (!gone) status.replaceChildren(notice(`Could not list ${root}/${dir}: ${err.message}`));
      return;
    }
    if (gone) return;
    status.replaceChildren(listing.truncated ? notice('Listing truncated.', 'info') : '');
    const items = [...listing.items].sort(
      (a, b) => (a.type === 'dir' ? 0 : 1) - (b.type === 'dir' ? 0 : 1) || a.path.localeCompare(b.path),
    );
    fill(
      tbody,
      dir
        ? h(
            'tr',
            {},
            h(
              'td',
              {},
              h(
                'a',
                {
                  href: '#',
                  onclick: (e) => (e.preventDefault(), cd(dir.split('/').slice(0, -1).join('/'))),
                },
                '..',
              ),
            ),
            h('td'),
            h('td'),
            h('td'),
          )
        : null,
      items.map((it) => {
        const name = it.path.split('/').pop();
        const isDir = it.type === 'dir';
        return h(
          'tr',
          { dataset: { path: it.path, type: it.type } },
          h(
            'td',
            { class: 'name' },
            isDir
              ? h('a', { href: '#', onclick: (e) => (e.preventDefault(), cd(it.path)) }, `${name}/`)
              : name,
          ),
          h('td', { class: 'num' }, isDir ? '' : size(it.size)),
          h('td', { title: it.mtime }, new Date(it.mtime).toLocaleString()),
          h(
            'td',
            { class: 'links' },
            isDir ? null : h('button', { type: 'button', onclick: () => void download(it.path) }, 'Download'),
            isDir
              ? null
              : h(
                  'button',
                  { type: 'button', class: 'danger', onclick: () => void remove(it.path) },
                  'Delete',
                ),
          ),
        );
      }),
    );
  }

  void load();
  return () => {
    gone = true;
  };
}
