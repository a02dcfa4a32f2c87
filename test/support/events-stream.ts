/**
 * A client of `GET /v1/workspaces/:id/events` (server-sent events): collects each event's id,
 * status and message as it arrives, until closed.
 */
export interface EventsStream {
  events: { id: string; status: string; message?: string }[];
  close(): void;
  /** The answer's HTTP status (the stream goes on being read in the background after a 200). */
  status: Promise<number>;
}

export function followEvents(
  baseUrl: string,
  workspaceId: string,
  token: string,
  lastEventId?: string,
): EventsStream {
  const events: { id: string; status: string; message?: string }[] = [];
  const ac = new AbortController();
  const status = (async () => {
    const res = await fetch(`${baseUrl}/v1/workspaces/${workspaceId}/events`, {
      headers: {
        authorization: `Bearer ${token}`,
        ...(lastEventId !== undefined ? { 'last-event-id': lastEventId } : {}),
      },
      signal: ac.signal,
    });
    if (res.status !== 200 || !res.body) {
      await res.text();
      return res.status;
    }
    void (async () => {
      let text = '';
      try {
        for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
          text += Buffer.from(c).toString('utf8');
          let end: number;
          while ((end = text.indexOf('\n\n')) >= 0) {
            const block = text.slice(0, end);
            text = text.slice(end + 2);
            const idLine = /^id: (.*)$/m.exec(block);
            const data = /^data: (.*)$/m.exec(block);
            if (!idLine || !data) continue;
            const t = JSON.parse(data[1]!) as { status: string; message?: string };
            events.push({ id: idLine[1]!, status: t.status, ...(t.message ? { message: t.message } : {}) });
          }
        }
      } catch {
        // aborted
      }
    })();
    return 200;
  })();
  return { events, close: () => ac.abort(), status };
}
