/** Login with an org key: checked against the API before it is kept (a bad key shows the error). */
import { api, setKey } from '../api.js';
import { h, notice } from '../dom.js';

export function loginPage(main, done) {
  const reason = sessionStorage.getItem('wo.logout-reason');
  sessionStorage.removeItem('wo.logout-reason');
  const input = h('input', {
    id: 'key',
    type: 'password',
    name: 'key',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'wo_org_…',
    required: true,
  });
  const status = h('div', { id: 'login-status' }, reason ? notice(reason) : null);
  const button = h('button', { type: 'submit' }, 'Log in');
  const form = h(
    'form',
    { id: 'login', class: 'card' },
    h('h1', {}, 'Log in'),
    h('label', { for: 'key' }, 'Org API key'),
    input,
    button,
    status,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    button.disabled = true;
    status.replaceChildren(notice('Checking…', 'info'));
    try {
      // Any cheap authenticated call proves the key.
      await api('GET', '/v1/workspaces?limit=1', { key });
      setKey(key);
      done();
    } catch (err) {
      status.replaceChildren(
        notice(err.status === 401 ? 'That key was not accepted.' : `Login failed: ${err.message}`),
      );
      button.disabled = false;
    }
  });
  main.append(form);
  input.focus();
  return () => {};
}
