// Every malformed request gets its dialect's error (status and body shape), and the server
// answers the next good request normally. Also: what agents send that must be tolerated
// (clamped max_tokens, unknown fields and tool types, ?beta=true, both auth headers), 413,
// 401, 429 with Retry-After, context exceeded, client disconnects, the billing line.
import { startServer, writeScript, check, test, finish, readSse } from './lib/harness.mjs';

const KEY = 'sk-secret';
const srv = await startServer(['--api-key', KEY, '--ctx', '1024', '--max-body', String(1 << 20),
  '--script', writeScript([{ when: 'SLOW', reply: 'tick '.repeat(150), token_ms: 20 }, { reply: 'Hello from Strata.' }])]);
const model = srv.alias;
const oaiHeaders = { 'content-type': 'application/json', authorization: `Bearer ${KEY}` };
const antHeaders = { 'content-type': 'application/json', 'x-api-key': KEY, 'anthropic-version': '2023-06-01' };

async function post(path, body, headers) {
  const res = await fetch(`${srv.base}${path}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json = null; try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text, headers: res.headers };
}

const goodChat = { model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8 };
const goodMsg = { model, max_tokens: 8, messages: [{ role: 'user', content: 'Hi' }] };
const goodResp = { model, input: 'Hi', max_output_tokens: 8 };
async function stillServing(after) {
  const a = await post('/v1/chat/completions', goodChat, oaiHeaders);
  const b = await post('/v1/messages', goodMsg, antHeaders);
  check(a.status === 200 && a.json?.choices?.[0]?.message && b.status === 200 && b.json?.type === 'message',
    `serves normally after ${after}`, [a.status, b.status, a.text.slice(0, 200), b.text.slice(0, 200)]);
}

function isOpenAIError(r, status, code) {
  return r.status === status && typeof r.json?.error?.message === 'string' && typeof r.json.error.type === 'string' &&
    'param' in r.json.error && 'code' in r.json.error && (code === undefined || r.json.error.code === code);
}
function isAnthropicError(r, status, type) {
  return r.status === status && r.json?.type === 'error' && r.json.error?.type === type && typeof r.json.error.message === 'string';
}

// [name, path, body, dialect, status, code-or-type]
const cases = [
  ['chat malformed JSON', '/v1/chat/completions', '{"model": "tiny", "messages": [', 'openai', 400],
  ['chat body not an object', '/v1/chat/completions', '[1,2]', 'openai', 400],
  ['chat missing messages', '/v1/chat/completions', { model }, 'openai', 400],
  ['chat messages wrong type', '/v1/chat/completions', { model, messages: 'Hi' }, 'openai', 400],
  ['chat empty messages', '/v1/chat/completions', { model, messages: [] }, 'openai', 400],
  ['chat message without role', '/v1/chat/completions', { model, messages: [{ content: 'Hi' }] }, 'openai', 400],
  ['chat bad role', '/v1/chat/completions', { model, messages: [{ role: 'wizard', content: 'Hi' }] }, 'openai', 400],
  ['chat content wrong type', '/v1/chat/completions', { model, messages: [{ role: 'user', content: 42 }] }, 'openai', 400],
  ['chat max_tokens wrong type', '/v1/chat/completions', { ...goodChat, max_tokens: 'lots' }, 'openai', 400],
  ['chat temperature wrong type', '/v1/chat/completions', { ...goodChat, temperature: 'hot' }, 'openai', 400],
  ['chat tools wrong type', '/v1/chat/completions', { ...goodChat, tools: 'all' }, 'openai', 400],
  ['chat missing model', '/v1/chat/completions', { messages: goodChat.messages }, 'openai', 400],
  ['chat unknown model', '/v1/chat/completions', { ...goodChat, model: 'gpt-9' }, 'openai', 404, 'model_not_found'],
  ['completions missing prompt', '/v1/completions', { model }, 'openai', 400],
  ['completions prompt wrong type', '/v1/completions', { model, prompt: { a: 1 } }, 'openai', 400],
  ['responses malformed JSON', '/v1/responses', '{"model":', 'openai', 400],
  ['responses missing input', '/v1/responses', { model }, 'openai', 400],
  ['responses input wrong type', '/v1/responses', { model, input: 7 }, 'openai', 400],
  ['responses unknown previous_response_id', '/v1/responses', { ...goodResp, previous_response_id: 'resp_nope' }, 'openai', 404],
  ['responses unknown model', '/v1/responses', { ...goodResp, model: 'nope' }, 'openai', 404, 'model_not_found'],
  ['messages malformed JSON', '/v1/messages', '{"model": tiny}', 'anthropic', 400, 'invalid_request_error'],
  ['messages missing max_tokens', '/v1/messages', { model, messages: goodMsg.messages }, 'anthropic', 400, 'invalid_request_error'],
  ['messages missing messages', '/v1/messages', { model, max_tokens: 8 }, 'anthropic', 400, 'invalid_request_error'],
  ['messages wrong type', '/v1/messages', { model, max_tokens: 8, messages: {} }, 'anthropic', 400, 'invalid_request_error'],
  ['messages bad role', '/v1/messages', { model, max_tokens: 8, messages: [{ role: 'bot', content: 'x' }] }, 'anthropic', 400, 'invalid_request_error'],
  ['messages missing content', '/v1/messages', { model, max_tokens: 8, messages: [{ role: 'user' }] }, 'anthropic', 400, 'invalid_request_error'],
  ['messages system wrong type', '/v1/messages', { ...goodMsg, system: 5 }, 'anthropic', 400, 'invalid_request_error'],
  ['messages unknown model', '/v1/messages', { ...goodMsg, model: 'claude-nope' }, 'anthropic', 404, 'not_found_error'],
  ['count_tokens malformed', '/v1/messages/count_tokens', 'nope', 'anthropic', 400, 'invalid_request_error'],
];

for (const [name, path, body, dialect, status, code] of cases) {
  await test(name, async () => {
    const headers = dialect === 'openai' ? oaiHeaders : antHeaders;
    const r = await post(path, body, headers);
    check(dialect === 'openai' ? isOpenAIError(r, status, code) : isAnthropicError(r, status, code), `${name} -> ${status}`, [r.status, r.text.slice(0, 300)]);
  });
}
await stillServing('the malformed requests');

await test('auth', async () => {
  const noKey = await post('/v1/chat/completions', goodChat, { 'content-type': 'application/json' });
  check(isOpenAIError(noKey, 401, 'invalid_api_key'), 'openai without a key -> 401', [noKey.status, noKey.text]);
  const badKey = await post('/v1/messages', goodMsg, { ...antHeaders, 'x-api-key': 'wrong' });
  check(isAnthropicError(badKey, 401, 'authentication_error'), 'anthropic with a wrong key -> 401', [badKey.status, badKey.text]);
  const bearer = await post('/v1/messages?beta=true', goodMsg, { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, 'anthropic-version': '2026-10-21' });
  check(bearer.status === 200, 'anthropic with Authorization: Bearer, ?beta=true, anthropic-version 2026-10-21', [bearer.status, bearer.text.slice(0, 200)]);
  const xkey = await post('/v1/chat/completions', goodChat, { 'content-type': 'application/json', 'x-api-key': KEY });
  check(xkey.status === 200, 'openai with x-api-key', xkey.status);
  const models = await fetch(`${srv.base}/v1/models`);
  check(models.status === 401, 'GET /v1/models needs the key too', models.status);
});
await stillServing('auth failures');

await test('body too large', async () => {
  const big = { ...goodChat, messages: [{ role: 'user', content: 'x'.repeat(2 << 20) }] };
  const r = await post('/v1/chat/completions', big, oaiHeaders);
  check(isOpenAIError(r, 413), 'openai body over --max-body -> 413', [r.status, r.text.slice(0, 200)]);
  const a = await post('/v1/messages', { ...goodMsg, messages: [{ role: 'user', content: 'x'.repeat(2 << 20) }] }, antHeaders);
  check(isAnthropicError(a, 413, 'request_too_large'), 'anthropic body over --max-body -> 413', [a.status, a.text.slice(0, 200)]);
});
await stillServing('413');

await test('context exceeded', async () => {
  const long = 'word '.repeat(1500);
  const r = await post('/v1/chat/completions', { ...goodChat, messages: [{ role: 'user', content: long }] }, oaiHeaders);
  check(isOpenAIError(r, 400, 'context_length_exceeded'), 'openai context_length_exceeded', [r.status, r.text.slice(0, 300)]);
  const a = await post('/v1/messages', { ...goodMsg, messages: [{ role: 'user', content: long }] }, antHeaders);
  check(isAnthropicError(a, 400, 'invalid_request_error') && /^prompt is too long: \d+ tokens > 1024 maximum$/.test(a.json.error.message),
    'anthropic "prompt is too long: N tokens > M maximum"', [a.status, a.text.slice(0, 300)]);
});
await stillServing('context exceeded');

await test('unknown route', async () => {
  const r = await post('/v1/nope', {}, oaiHeaders);
  check(isOpenAIError(r, 404), 'unknown route -> 404 JSON', [r.status, r.text]);
});

await test('tolerated', async () => {
  const r = await post('/v1/chat/completions', { ...goodChat, max_tokens: 1000000, metadata: { a: 1 }, store: false, parallel_tool_calls: true,
    prompt_cache_key: 'k', stream_options: null,
    tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { n: { type: ['integer', 'null'] } } } } }] }, oaiHeaders);
  check(r.status === 200, 'chat: max_tokens 1e6 clamped, unknown fields and type arrays accepted', [r.status, r.text.slice(0, 300)]);
  const resp = await post('/v1/responses', { ...goodResp, max_output_tokens: 32000, store: false, include: ['reasoning.encrypted_content'],
    reasoning: { summary: 'auto' }, client_metadata: { x: 1 }, tool_choice: 'auto',
    input: [{ type: 'message', role: 'developer', content: [{ type: 'input_text', text: 'Be brief.' }] },
      { role: 'system', content: 'Also system.' },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hi' }] }],
    tools: [{ type: 'function', name: 'exec_command', parameters: { type: 'object', properties: {} }, strict: false },
      { type: 'namespace', name: 'multi_agent_v1', tools: [{ type: 'function', name: 'spawn_agent', parameters: { type: 'object' } }] },
      { type: 'web_search', external_web_access: false }] }, oaiHeaders);
  check(resp.status === 200 && resp.json.status, 'responses: Codex-style body (developer role, namespace and web_search tools, unknown fields)', [resp.status, resp.text.slice(0, 300)]);
  const m = await post('/v1/messages?beta=true', { ...goodMsg, max_tokens: 32000, metadata: { user_id: 'u' }, thinking: { type: 'adaptive', display: 'omitted' },
    context_management: { edits: [] }, output_config: { effort: 'high' },
    system: [{ type: 'text', text: 'x-anthropic-billing-header: cc_version=1; cc_entrypoint=cli;' }, { type: 'text', text: 'You are helpful.', cache_control: { type: 'ephemeral' } }],
    tools: [{ name: 'Bash', description: 'Run', input_schema: { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', properties: {} } },
      { name: 'Deferred', input_schema: { type: 'object', properties: {} }, defer_loading: true },
      { type: 'web_search_20250305', name: 'web_search' }],
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi', cache_control: { type: 'ephemeral' } }] },
      { role: 'system', content: [{ type: 'text', text: 'Environment info.' }] }] }, antHeaders);
  check(m.status === 200 && m.json.type === 'message', 'messages: Claude Code-style body accepted', [m.status, m.text.slice(0, 300)]);
});

await test('billing line removed', async () => {
  const base = { model, messages: [{ role: 'user', content: 'Hi' }] };
  const plain = await post('/v1/messages/count_tokens', { ...base, system: [{ type: 'text', text: 'You are helpful.' }] }, antHeaders);
  const billed = await post('/v1/messages/count_tokens?beta=true', { ...base, system: [
    { type: 'text', text: 'x-anthropic-billing-header: cc_version=2.1.332.0b8; cc_entrypoint=sdk-cli;' }, { type: 'text', text: 'You are helpful.' }] }, antHeaders);
  check(plain.status === 200 && plain.json.input_tokens === billed.json?.input_tokens, 'the billing line does not reach the prompt', [plain.text, billed.text]);
});

// The SLOW reply takes 3 s to generate: the engine is idle soon after the client leaves only
// if the request was cancelled.
const slowChat = { ...goodChat, messages: [{ role: 'user', content: 'SLOW' }], max_tokens: 400 };
const slowMsg = { ...goodMsg, messages: [{ role: 'user', content: 'SLOW' }], max_tokens: 400 };
async function health() { return (await fetch(`${srv.base}/health`)).json(); }
async function idleSoonAfterAbort(path, headers, body, stream) {
  const ctl = new AbortController();
  const pending = fetch(`${srv.base}${path}`, { method: 'POST', headers, signal: ctl.signal, body: JSON.stringify({ ...body, stream }) });
  if (stream) {
    const res = await pending;
    await res.body.getReader().read();
  } else {
    pending.catch(() => {});
    await new Promise((r) => setTimeout(r, 400));
  }
  // The first streamed chunk (the role) can leave before the engine admits the request: wait
  // until it runs, so that the check below is about cancellation only.
  let before = await health();
  for (let i = 0; i < 40 && before.running !== 1; ++i) {
    await new Promise((r) => setTimeout(r, 50));
    before = await health();
  }
  ctl.abort();
  await new Promise((r) => setTimeout(r, 800));
  return [before, await health()];
}
await test('client disconnect cancels (streaming)', async () => {
  const [before, after] = await idleSoonAfterAbort('/v1/chat/completions', oaiHeaders, slowChat, true);
  check(before.running === 1 && after.running === 0 && after.waiting === 0, 'the engine is idle soon after the client went away', [before, after]);
});
await test('client disconnect cancels (non-streaming chat)', async () => {
  const [before, after] = await idleSoonAfterAbort('/v1/chat/completions', oaiHeaders, slowChat, false);
  check(before.running === 1 && after.running === 0 && after.waiting === 0, 'the engine is idle soon after the client went away', [before, after]);
});
await test('client disconnect cancels (non-streaming messages)', async () => {
  const [before, after] = await idleSoonAfterAbort('/v1/messages', antHeaders, slowMsg, false);
  check(before.running === 1 && after.running === 0 && after.waiting === 0, 'the engine is idle soon after the client went away', [before, after]);
});
await test('a non-streaming client that stays gets its whole reply', async () => {
  const r = await post('/v1/chat/completions', slowChat, oaiHeaders);
  check(r.status === 200 && r.json.choices[0].message.content.split('tick').length > 100, 'the slow reply arrives whole', r.text.slice(0, 200));
});
await stillServing('a disconnect');

await test('metrics', async () => {
  const text = await (await fetch(`${srv.base}/metrics`)).text();
  check(/strata_http_requests_total\{endpoint="chat_completions",status="200"\} \d+/.test(text) && /strata_requests_waiting \d+/.test(text) &&
    /strata_cached_prompt_tokens_total\{tier="disk"\} \d+/.test(text), 'GET /metrics in Prometheus text', text.slice(0, 400));
});

// Overload: a server that admits no waiting requests answers 429 with Retry-After.
const full = await startServer(['--max-waiting', '0', '--script', writeScript(['Hi'])]);
await test('overload', async () => {
  const res = await fetch(`${full.base}/v1/messages`, { method: 'POST', headers: antHeaders, body: JSON.stringify(goodMsg) });
  const json = await res.json();
  check(res.status === 429 && res.headers.get('retry-after') && json.error?.type === 'rate_limit_error', 'queue full -> 429 with Retry-After (anthropic)', [res.status, json]);
  const o = await fetch(`${full.base}/v1/chat/completions`, { method: 'POST', headers: oaiHeaders, body: JSON.stringify(goodChat) });
  const oj = await o.json();
  check(o.status === 429 && o.headers.get('retry-after') && oj.error?.code === 'rate_limit_exceeded', 'queue full -> 429 with Retry-After (openai)', [o.status, oj]);
});

await finish([srv, full]);
