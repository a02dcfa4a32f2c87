/**
 * Keeps the recorded A2A endpoint true. The address always comes from the backend (docker inspect /
 * DescribeInstances), never from the agent: a container Docker restarted on its own gets a new host
 * port, and the registry (register, heartbeat) and the proxy (after a failed forward) re-read it.
 * The one re-read, shared with the proxy's forwarding path (src/a2a/proxy.ts). Who may call it how
 * often (heartbeat, register, failed forward) is bounded in src/a2a/backend-reads.ts. What answers
 * at an address is only believed once it proves it is the workspace generation's agent
 * (src/a2a/identity.ts).
 */
export { refreshEndpoint } from '../a2a/proxy.js';
