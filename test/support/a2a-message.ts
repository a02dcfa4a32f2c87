/** A2A requests the suites send through the proxy. */

/** A JSON-RPC `message/send` of one text part, as a user (not a workspace) sends it. */
export const messageSend = (text: string) => ({
  jsonrpc: '2.0',
  id: 1,
  method: 'message/send',
  params: { message: { role: 'user', messageId: 'm1', parts: [{ kind: 'text', text }] } },
});
