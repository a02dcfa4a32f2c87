/**
 * The console's router: one page, hash routes (`#/workspaces`, `#/terminal/<id>`, `#/files/<id>`),
 * so the server only ever serves static files. Each page returns a cleanup function that closes
 * its streams and sockets when the user navigates away.
 */
import { clearKey, forgetConfig, getKey, setUnauthorizedHandler } from './api.js';
import { loginPage } from './pages/login.js';
import { workspacesPage } from './pages/workspaces.js';
import { terminalPage } from './pages/terminal.js';
import { filesPage } from './pages/files.js';

const main = document.getElementById('app');
const nav = document.getElementById('nav');
let cleanup = () => {};

function route() {
  cleanup();
  cleanup = () => {};
  main.replaceChildren();
  const [, page = '', id = ''] = location.hash.split('/');
  const loggedIn = Boolean(getKey());
  nav.hidden = !loggedIn;
  if (!loggedIn) {
    cleanup = loginPage(main, () => {
      if (location.hash === '#/workspaces') route();
      else location.hash = '#/workspaces';
    });
    return;
  }
  const wsId = decodeURIComponent(id);
  if (page === 'terminal' && wsId) cleanup = terminalPage(main, wsId);
  else if (page === 'files' && wsId) cleanup = filesPage(main, wsId);
  else cleanup = workspacesPage(main);
}

function logout(reason) {
  clearKey();
  forgetConfig();
  sessionStorage.setItem('wo.logout-reason', reason ?? '');
  route();
}

setUnauthorizedHandler(() => logout('The key was refused (401). Log in again.'));
document.getElementById('logout').addEventListener('click', () => logout(''));
window.addEventListener('hashchange', route);
route();
