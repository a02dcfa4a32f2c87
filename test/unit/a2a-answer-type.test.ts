import { describe, expect, it } from 'vitest';
import { answerText, isEventStream, resultText } from '../../src/a2a/proxy.js';
import { answerType, proxiedCard } from '../../src/api/routes/a2a.js';

describe('A2A answer type', () => {
  it('keeps JSON and event streams, serves anything else an agent claims as opaque bytes', () => {
    expect(answerType(undefined)).toBe('application/json; charset=utf-8');
    expect(answerType('application/json')).toBe('application/json; charset=utf-8');
    expect(answerType('Application/JSON; charset=latin1')).toBe('application/json; charset=utf-8');
    expect(answerType('application/problem+json')).toBe('application/json; charset=utf-8');
    expect(answerType('text/event-stream; charset=utf-8')).toBe('text/event-stream');
    expect(answerType('text/html')).toBe('application/octet-stream');
    expect(answerType('garbage')).toBe('application/octet-stream');
    expect(answerType('')).toBe('application/octet-stream');
  });

  it('an event stream is known by its content type alone', () => {
    for (const t of ['text/event-stream', 'Text/Event-Stream; charset=utf-8', ' text/event-stream ']) {
      expect(isEventStream(t), t).toBe(true);
    }
    for (const t of [undefined, '', 'application/json', 'text/event-streams', 'text/plain']) {
      expect(isEventStream(t), String(t)).toBe(false);
    }
    const sse =
      'data: {"result":{"kind":"status-update","status":{"message":{"parts":[{"text":"last"}]}}}}\n\n';
    expect(answerText('text/event-stream', sse)).toBe('last');
    expect(answerText('application/json', sse)).toBe('');
  });

  it('reads the reply text of protocol 0.3 and 1.0 results', () => {
    const parts = [{ kind: 'text', text: 'hi' }];
    expect(resultText({ result: { kind: 'message', parts } })).toBe('hi');
    expect(resultText({ result: { message: { parts: [{ text: 'hi' }] } } })).toBe('hi');
    expect(resultText({ result: { task: { status: { message: { parts: [{ text: 'st' }] } } } } })).toBe('st');
    expect(
      resultText({ result: { statusUpdate: { status: { message: { parts: [{ text: 'up' }] } } } } }),
    ).toBe('up');
    expect(resultText({ result: { artifactUpdate: { artifact: { parts: [{ text: 'art' }] } } } })).toBe(
      'art',
    );
    expect(resultText({ result: { kind: 'task', artifacts: [{ parts }, { parts: [{ text: 'b' }] }] } })).toBe(
      'b',
    );
    expect(resultText({ error: { message: 'no' } })).toBe('error: no');
  });
});

describe('the proxied agent card', () => {
  const proxy = 'https://api.example/v1/workspaces/w1/a2a';

  it('points every JSON-RPC interface at the proxy and drops the bindings the proxy does not forward', () => {
    const v1 = proxiedCard(
      {
        name: 'a',
        supportedInterfaces: [
          { url: 'http://10.0.0.5:8080/', protocolBinding: 'JSONRPC', protocolVersion: '1.0' },
          { url: 'http://10.0.0.5:8080/rest', protocolBinding: 'HTTP+JSON', protocolVersion: '1.0' },
          { url: 'http://10.0.0.5:8080/', protocolBinding: 'JSONRPC', protocolVersion: '0.3' },
        ],
      },
      proxy,
    );
    expect(v1).toEqual({
      name: 'a',
      supportedInterfaces: [
        { url: proxy, protocolBinding: 'JSONRPC', protocolVersion: '1.0' },
        { url: proxy, protocolBinding: 'JSONRPC', protocolVersion: '0.3' },
      ],
    });
    const v03 = proxiedCard(
      {
        name: 'b',
        url: 'http://10.0.0.5:8080/',
        preferredTransport: 'JSONRPC',
        additionalInterfaces: [
          { url: 'http://10.0.0.5:8080/', transport: 'JSONRPC' },
          { url: 'http://10.0.0.5:9090', transport: 'GRPC' },
        ],
      },
      proxy,
    );
    expect(v03).toEqual({
      name: 'b',
      url: proxy,
      preferredTransport: 'JSONRPC',
      additionalInterfaces: [{ url: proxy, transport: 'JSONRPC' }],
    });
    // An older card without interfaces still gets the proxy's url.
    expect(proxiedCard({ name: 'c' }, proxy)).toEqual({ name: 'c', url: proxy });
  });
});
