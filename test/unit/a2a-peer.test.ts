/**
 * Who the forwarded message says is calling: the platform names a calling workspace as the peer,
 * replacing any claim; a caller that is not a workspace cannot name one (its claim is removed, the
 * rest of its metadata kept).
 */
import { describe, expect, it } from 'vitest';
import { dropCallerPeer, injectPeer } from '../../src/a2a/proxy.js';

const request = (metadata?: unknown) => ({
  jsonrpc: '2.0',
  id: 1,
  method: 'message/send',
  params: {
    message: { role: 'user', parts: [{ kind: 'text', text: 'hi' }], ...(metadata ? { metadata } : {}) },
  },
});

describe('peer metadata', () => {
  it('a workspace caller is named, whatever it claimed; the rest of its metadata stays', () => {
    const body = request({ peer: { id: 'forged' }, trace: 't' });
    injectPeer(body, { id: 'ws1', name: 'caller' }, 'http://api');
    expect(body.params.message).toMatchObject({
      metadata: {
        trace: 't',
        peer: {
          id: 'ws1',
          name: 'caller',
          role: 'peer',
          agentCardUrl: 'http://api/v1/workspaces/ws1/agent-card',
        },
      },
    });
  });

  it('any other caller’s claim is removed (true), its other metadata kept', () => {
    const body = request({ peer: { id: 'another org’s workspace' }, trace: 't' });
    expect(dropCallerPeer(body)).toBe(true);
    expect(body.params.message).toMatchObject({ metadata: { trace: 't' } });
    expect(body.params.message).not.toHaveProperty('metadata.peer');
    // A claim of null or undefined is a claim too: the agent sees none.
    for (const peer of [null, undefined]) {
      const b = request({ peer });
      expect(dropCallerPeer(b)).toBe(true);
      expect(b.params.message).not.toHaveProperty('metadata.peer');
    }
  });

  it('a message without a claim is left as it is (false: its bytes are forwarded as sent)', () => {
    for (const body of [
      request(),
      request({ trace: 't' }),
      request(['peer']),
      { jsonrpc: '2.0', method: 'tasks/get', params: { id: 'x', metadata: { peer: 'p' } } },
      { jsonrpc: '2.0', method: 'm', params: 'text' },
      { jsonrpc: '2.0', method: 'm' },
    ]) {
      const before = JSON.stringify(body);
      expect(dropCallerPeer(body as Record<string, unknown>)).toBe(false);
      expect(JSON.stringify(body)).toBe(before);
    }
  });
});
