import { describe, expect, it } from 'vitest';
import { answerType } from '../../src/api/routes/a2a.js';

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
});
