import { describe, expect, it } from 'vitest';
import { HttpError, parse } from '../../src/api/errors.js';
import { fileContentQuery, fileListQuery } from '../../src/api/schemas.js';

/** The files routes parse their query with the schemas /openapi.json documents: one source. */
function refusal(schema: typeof fileListQuery | typeof fileContentQuery, query: unknown) {
  try {
    parse(schema, query, 'query');
  } catch (err) {
    if (err instanceof HttpError) return { status: err.status, field: err.extra.field, message: err.message };
    throw err;
  }
  throw new Error('accepted');
}

describe('files query schemas', () => {
  it('list: defaults and bounds', () => {
    expect(parse(fileListQuery, { root: '/workspace' }, 'query')).toEqual({ root: '/workspace', depth: 1 });
    expect(parse(fileListQuery, { root: '/configs', path: 'a', depth: '5' }, 'query')).toEqual({
      root: '/configs',
      path: 'a',
      depth: 5,
    });
    expect(refusal(fileListQuery, { root: '/etc' })).toEqual({
      status: 400,
      field: 'root',
      message: 'root: must be one of /configs, /workspace',
    });
    expect(refusal(fileListQuery, {})).toMatchObject({ field: 'root' });
    for (const depth of ['0', '6', '1.5', '-1', 'x', '99999999999']) {
      expect(refusal(fileListQuery, { root: '/workspace', depth })).toEqual({
        status: 400,
        field: 'depth',
        message: 'depth: must be an integer from 1 to 5',
      });
    }
  });

  it('content: path required; a repeated parameter is refused with its name', () => {
    expect(refusal(fileContentQuery, { root: '/workspace' })).toMatchObject({ field: 'path' });
    expect(refusal(fileContentQuery, { root: '/workspace', path: '' })).toEqual({
      status: 400,
      field: 'path',
      message: 'path: required',
    });
    expect(refusal(fileContentQuery, { root: '/workspace', path: ['a', 'b'] })).toEqual({
      status: 400,
      field: 'path',
      message: 'path: must be given once, as a string',
    });
    expect(refusal(fileContentQuery, { root: ['/workspace', '/configs'], path: 'a' })).toMatchObject({
      field: 'root',
    });
  });
});
