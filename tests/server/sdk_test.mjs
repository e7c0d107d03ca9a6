// The official SDKs (openai, @anthropic-ai/sdk, pinned in package.json) make every call of
// CLIENTS.md §1 against a real `strata serve`: once with a reply script (deterministic text,
// reasoning and tool calls through the real template, tokenizer, parser and SSE writers) and
// once with the synthesized model itself (random text: shapes and event order only).
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import path from 'node:path';
import { startServer, writeScript, check, test, finish, readSse, workDir } from './lib/harness.mjs';

const SCRIPT = [
  { when: '18C sunny', reply: 'The weather in Paris is 18C and sunny.' },
  { when: 'Weather in Paris?', reply: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' },
  { when: 'Slow prefill', reply: 'Finally.', delay_ms: 1500 },
  { when: 'Think first', reply: '<think>\nThe user wants a greeting.\n</think>\n\nHello!' },
  { reply: 'Hello from Strata.' },
];

const chatTool = { type: 'function', function: { name: 'get_weather', description: 'Get weather',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };
const respTool = { type: 'function', name: 'get_weather', description: 'Get weather',
  parameters: chatTool.function.parameters, strict: false };
const antTool = { name: 'get_weather', description: 'Get weather', input_schema: chatTool.function.parameters };

async function openaiSuite(srv, scripted) {
  const tag = scripted ? '[script]' : '[model]';
  const oai = new OpenAI({ baseURL: `${srv.base}/v1`, apiKey: 'sk-test', maxRetries: 0 });
  const model = srv.alias;

  await test(`${tag} models.list`, async () => {
    const page = await oai.models.list();
    check(page.data.some((m) => m.id === model), `${tag} openai models.list lists the alias`, page.data);
  });
  await test(`${tag} chat non-stream`, async () => {
    const r = await oai.chat.completions.create({ model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }], max_tokens: 16, temperature: 0 });
    const m = r.choices[0].message;
    check(r.object === 'chat.completion' && m.role === 'assistant' && typeof m.content === 'string', `${tag} chat non-stream shape`, r);
    check(r.usage.prompt_tokens > 0 && typeof r.usage.prompt_tokens_details.cached_tokens === 'number', `${tag} chat usage with cached_tokens`, r.usage);
    if (scripted) check(m.content === 'Hello from Strata.' && r.choices[0].finish_reason === 'stop', `${tag} chat content`, r.choices[0]);
  });
  await test(`${tag} chat stream`, async () => {
    const stream = await oai.chat.completions.create({ model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }], max_tokens: 16, stream: true, stream_options: { include_usage: true } });
    const chunks = []; for await (const c of stream) chunks.push(c);
    const last = chunks[chunks.length - 1];
    check(chunks.length >= 3 && chunks.every((c) => c.object === 'chat.completion.chunk'), `${tag} chat stream chunks`, chunks.length);
    check(last.choices.length === 0 && last.usage?.total_tokens > 0, `${tag} chat stream ends with a usage chunk`, last);
    const finishes = chunks.filter((c) => c.choices[0]?.finish_reason);
    check(finishes.length === 1, `${tag} chat stream has one finish_reason`, finishes.length);
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    if (scripted) check(text === 'Hello from Strata.', `${tag} chat stream text`, text);
  });
  await test(`${tag} chat stream helper`, async () => {
    const final = await oai.chat.completions.stream({ model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 16 }).finalChatCompletion();
    check(final.choices[0].message.role === 'assistant', `${tag} chat .stream().finalChatCompletion()`, final);
  });
  await test(`${tag} chat stream without include_usage`, async () => {
    const stream = await oai.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, stream: true });
    const chunks = []; for await (const c of stream) chunks.push(c);
    check(chunks.every((c) => c.choices.length === 1 && !c.usage), `${tag} no usage chunk unless asked`, chunks.at(-1));
  });
  await test(`${tag} chat tools`, async () => {
    const r = await oai.chat.completions.create({ model, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: [chatTool], tool_choice: 'auto', max_tokens: 64 });
    if (scripted) {
      const call = r.choices[0].message.tool_calls?.[0];
      check(r.choices[0].finish_reason === 'tool_calls' && call?.function.name === 'get_weather' && JSON.parse(call.function.arguments).city === 'Paris' && call.id,
        `${tag} chat tool call`, r.choices[0]);
    } else check(r.choices.length === 1, `${tag} chat with tools answers`, r);
  });
  await test(`${tag} chat tools stream helper`, async () => {
    const final = await oai.chat.completions.stream({ model, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: [chatTool], max_tokens: 64 }).finalChatCompletion();
    if (scripted) {
      const call = final.choices[0].message.tool_calls?.[0];
      check(final.choices[0].finish_reason === 'tool_calls' && call?.function.name === 'get_weather' && JSON.parse(call.function.arguments).city === 'Paris',
        `${tag} chat streamed tool call`, final.choices[0]);
    } else check(final.choices.length === 1, `${tag} chat tools stream helper`, final);
  });
  await test(`${tag} chat tool result turn`, async () => {
    const r = await oai.chat.completions.create({ model, tools: [chatTool], max_tokens: 32, messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '18C sunny' }] });
    check(r.choices[0].message.role === 'assistant', `${tag} chat tool-result turn`, r);
    if (scripted) check(r.choices[0].message.content === 'The weather in Paris is 18C and sunny.', `${tag} chat tool result reached the prompt`, r.choices[0].message);
  });
  await test(`${tag} chat tool result as parts`, async () => {
    const r = await oai.chat.completions.create({ model, tools: [chatTool], max_tokens: 32, messages: [
      { role: 'user', content: [{ type: 'text', text: 'Weather in Paris?' }] },
      { role: 'assistant', content: '', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: [{ type: 'text', text: '18C sunny' }] }] });
    if (scripted) check(r.choices[0].message.content === 'The weather in Paris is 18C and sunny.', `${tag} chat tool result as a part array`, r.choices[0].message);
    else check(r.choices.length === 1, `${tag} chat tool result as a part array`, r);
  });
  if (scripted) {
    await test(`${tag} chat reasoning`, async () => {
      const r = await oai.chat.completions.create({ model, messages: [{ role: 'user', content: 'Think first, then say hi' }], max_tokens: 64 });
      const m = r.choices[0].message;
      check(m.reasoning_content === 'The user wants a greeting.' && m.content === 'Hello!', `${tag} chat reasoning_content out`, m);
    });
  }
  await test(`${tag} completions`, async () => {
    const r = await oai.completions.create({ model, prompt: 'Hello', max_tokens: 8 });
    check(r.object === 'text_completion' && typeof r.choices[0].text === 'string' && r.usage.prompt_tokens > 0, `${tag} completions non-stream`, r);
    const stream = await oai.completions.create({ model, prompt: 'Hello', max_tokens: 8, stream: true });
    const chunks = []; for await (const c of stream) chunks.push(c);
    check(chunks.length >= 1 && chunks.at(-1).choices[0].finish_reason, `${tag} completions stream`, chunks.at(-1));
  });
  await test(`${tag} responses non-stream`, async () => {
    const r = await oai.responses.create({ model, instructions: 'Be brief.', input: 'Hi', max_output_tokens: 16 });
    check(r.object === 'response' && typeof r.output_text === 'string' && r.usage.input_tokens > 0 &&
      typeof r.usage.input_tokens_details.cached_tokens === 'number', `${tag} responses output_text and usage`, r);
    if (scripted) check(r.output_text === 'Hello from Strata.' && r.status === 'completed', `${tag} responses text`, r.output_text);
    const again = await oai.responses.create({ model, input: 'Hi again', previous_response_id: r.id, max_output_tokens: 8 });
    check(again.previous_response_id === r.id, `${tag} responses previous_response_id`, again.previous_response_id);
    const got = await oai.responses.retrieve(r.id);
    check(got.id === r.id, `${tag} responses retrieve a stored response`, got.id);
  });
  await test(`${tag} responses raw stream`, async () => {
    const stream = await oai.responses.create({ model, input: 'Hi', stream: true, max_output_tokens: 16 });
    const events = []; for await (const e of stream) events.push(e);
    const types = events.map((e) => e.type);
    check(types[0] === 'response.created' && types[1] === 'response.in_progress' && types.at(-1) === 'response.completed', `${tag} responses event order`, types);
    const order = ['response.output_item.added', 'response.content_part.added', 'response.output_text.delta', 'response.output_text.done',
      'response.content_part.done', 'response.output_item.done'].map((t) => types.indexOf(t));
    check(order.every((v, i) => v >= 0 && (i === 0 || v > order[i - 1])), `${tag} responses item/part/delta order`, types);
    check(events.every((e, i) => e.sequence_number === i), `${tag} responses sequence numbers`, events.map((e) => e.sequence_number));
    check(events.at(-1).response.usage?.output_tokens > 0, `${tag} responses completed carries usage`, events.at(-1).response.usage);
  });
  await test(`${tag} responses stream helper`, async () => {
    const final = await oai.responses.stream({ model, input: 'Hi', max_output_tokens: 16 }).finalResponse();
    check(final.status === 'completed' || final.status === 'incomplete', `${tag} responses .stream().finalResponse()`, final.status);
    if (scripted) check(final.output_text === 'Hello from Strata.', `${tag} responses helper text`, final.output_text);
  });
  await test(`${tag} responses tools`, async () => {
    const r = await oai.responses.create({ model, input: [{ role: 'user', content: 'Weather in Paris?' }], tools: [respTool], max_output_tokens: 64 });
    if (scripted) {
      const call = r.output.find((o) => o.type === 'function_call');
      check(call?.name === 'get_weather' && JSON.parse(call.arguments).city === 'Paris' && call.call_id, `${tag} responses function_call`, r.output);
    } else check(r.output.length >= 1, `${tag} responses tools answered`, r.output);
    const final = await oai.responses.stream({ model, input: [{ role: 'user', content: 'Weather in Paris?' }], tools: [respTool], max_output_tokens: 64 }).finalResponse();
    if (scripted) {
      const call = final.output.find((o) => o.type === 'function_call');
      check(call?.name === 'get_weather' && JSON.parse(call.arguments).city === 'Paris', `${tag} responses streamed function_call`, final.output);
    } else check(final.output.length >= 1, `${tag} responses tools stream`, final.output);
  });
  await test(`${tag} responses function_call_output`, async () => {
    const r = await oai.responses.create({ model, tools: [respTool], max_output_tokens: 32, input: [
      { role: 'user', content: 'Weather in Paris?' },
      { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' },
      { type: 'function_call_output', call_id: 'call_1', output: '18C sunny' }] });
    if (scripted) check(r.output_text === 'The weather in Paris is 18C and sunny.', `${tag} responses function_call_output turn`, r.output_text);
    else check(r.status !== 'failed', `${tag} responses function_call_output turn`, r.status);
  });
  if (scripted) {
    await test(`${tag} responses reasoning item`, async () => {
      const final = await oai.responses.stream({ model, input: 'Think first, then say hi', max_output_tokens: 64 }).finalResponse();
      const rs = final.output.find((o) => o.type === 'reasoning');
      check(rs?.content?.[0]?.text === 'The user wants a greeting.' && final.output_text === 'Hello!', `${tag} responses reasoning item then text`, final.output);
    });
  }
}

async function anthropicSuite(srv, scripted) {
  const tag = scripted ? '[script]' : '[model]';
  const ant = new Anthropic({ baseURL: srv.base, apiKey: 'sk-ant-test', maxRetries: 0 });
  const model = srv.alias;
  await test(`${tag} anthropic models.list`, async () => {
    const page = await ant.models.list();
    check(page.data.some((m) => m.id === model), `${tag} anthropic models.list`, page.data);
  });
  await test(`${tag} messages non-stream`, async () => {
    const m = await ant.messages.create({ model, max_tokens: 64, system: 'Be brief.', messages: [{ role: 'user', content: 'Hi' }] });
    check(m.type === 'message' && m.role === 'assistant' && m.content[0]?.type === 'text' && m.usage.input_tokens > 0 &&
      typeof m.usage.cache_read_input_tokens === 'number', `${tag} messages non-stream shape`, m);
    if (scripted) check(m.content[0].text === 'Hello from Strata.' && m.stop_reason === 'end_turn', `${tag} messages text`, m);
  });
  await test(`${tag} messages raw stream`, async () => {
    const stream = await ant.messages.create({ model, max_tokens: 64, messages: [{ role: 'user', content: 'Hi' }], stream: true });
    const events = []; for await (const e of stream) events.push(e);
    const types = events.map((e) => e.type);
    check(types[0] === 'message_start' && types.at(-1) === 'message_stop' && types.at(-2) === 'message_delta', `${tag} messages event order`, types);
    check(types.includes('content_block_start') && types.indexOf('content_block_start') < types.indexOf('content_block_delta') &&
      types.lastIndexOf('content_block_delta') < types.lastIndexOf('content_block_stop'), `${tag} messages block order`, types);
    check(events.at(-2).usage.output_tokens > 0, `${tag} message_delta carries output_tokens`, events.at(-2));
  });
  await test(`${tag} messages stream helper`, async () => {
    const m = await ant.messages.stream({ model, max_tokens: 64, messages: [{ role: 'user', content: 'Hi' }] }).finalMessage();
    check(m.role === 'assistant' && m.usage.output_tokens > 0, `${tag} messages .stream().finalMessage()`, m);
    if (scripted) check(m.content[0].text === 'Hello from Strata.', `${tag} messages helper text`, m.content);
  });
  await test(`${tag} messages tools`, async () => {
    const m = await ant.messages.create({ model, max_tokens: 64, tools: [antTool], messages: [{ role: 'user', content: 'Weather in Paris?' }] });
    if (scripted) {
      const tu = m.content.find((b) => b.type === 'tool_use');
      check(m.stop_reason === 'tool_use' && tu?.name === 'get_weather' && tu.input.city === 'Paris' && tu.id.startsWith('toolu_'), `${tag} messages tool_use`, m);
    } else check(m.content.length >= 1, `${tag} messages tools answered`, m);
    const f = await ant.messages.stream({ model, max_tokens: 64, tools: [antTool], messages: [{ role: 'user', content: 'Weather in Paris?' }] }).finalMessage();
    if (scripted) {
      const tu = f.content.find((b) => b.type === 'tool_use');
      check(f.stop_reason === 'tool_use' && tu?.input?.city === 'Paris', `${tag} messages streamed tool_use`, f);
    } else check(f.content.length >= 1, `${tag} messages tools stream`, f);
  });
  await test(`${tag} messages tool_result`, async () => {
    const m = await ant.messages.create({ model, max_tokens: 64, tools: [antTool], messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: '18C sunny' }] }] });
    if (scripted) check(m.content[0]?.text === 'The weather in Paris is 18C and sunny.', `${tag} messages tool_result turn`, m.content);
    else check(m.role === 'assistant', `${tag} messages tool_result turn`, m);
  });
  if (scripted) {
    await test(`${tag} messages thinking`, async () => {
      const m = await ant.messages.stream({ model, max_tokens: 256, thinking: { type: 'enabled', budget_tokens: 128 },
        messages: [{ role: 'user', content: 'Think first, then say hi' }] }).finalMessage();
      check(m.content[0]?.type === 'thinking' && m.content[0].thinking === 'The user wants a greeting.' && m.content[1]?.text === 'Hello!',
        `${tag} messages thinking block then text`, m.content);
    });
    await test(`${tag} messages thinking in`, async () => {
      const m = await ant.messages.create({ model, max_tokens: 64, messages: [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: [{ type: 'thinking', thinking: 'hmm', signature: 'x' }, { type: 'text', text: 'Hello' }] },
        { role: 'system', content: 'Mid-conversation system text.' },
        { role: 'user', content: 'Hi' }] });
      check(m.type === 'message', `${tag} messages accept thinking blocks and system messages inside messages`, m);
    });
  }
  await test(`${tag} countTokens`, async () => {
    const r = await ant.messages.countTokens({ model, messages: [{ role: 'user', content: 'Hi' }] });
    check(Number.isInteger(r.input_tokens) && r.input_tokens > 0, `${tag} countTokens`, r);
  });
}

// A repeated request reports its cached prompt tokens in both dialects (needs an engine with
// the prefix cache; the stand-in serial engine has none and is reported as such).
async function cacheSuite(srv) {
  const health = await (await fetch(`${srv.base}/health`)).json();
  if (health.engine === 'serial' || health.engine === 'script') {
    console.log(`skip cached-token checks: engine '${health.engine}' has no prefix cache`);
    return;
  }
  const oai = new OpenAI({ baseURL: `${srv.base}/v1`, apiKey: 'sk-test', maxRetries: 0 });
  const ant = new Anthropic({ baseURL: srv.base, apiKey: 'sk-ant-test', maxRetries: 0 });
  const long = 'You are a careful assistant. '.repeat(40);
  const body = { model: srv.alias, max_tokens: 4, temperature: 0, messages: [{ role: 'system', content: long }, { role: 'user', content: 'Hi' }] };
  await oai.chat.completions.create(body);
  const r = await oai.chat.completions.create(body);
  check(r.usage.prompt_tokens_details.cached_tokens > 0, 'repeated chat request reports cached_tokens', r.usage);
  const a = { model: srv.alias, max_tokens: 4, system: long, messages: [{ role: 'user', content: 'Hi' }] };
  await ant.messages.create(a);
  const m = await ant.messages.create(a);
  check(m.usage.cache_read_input_tokens > 0 && m.usage.input_tokens + m.usage.cache_read_input_tokens > m.usage.cache_read_input_tokens,
    'repeated messages request reports cache_read_input_tokens', m.usage);
  const rb = { model: srv.alias, instructions: long, input: 'Hi', max_output_tokens: 4 };
  await oai.responses.create(rb);
  const rr = await oai.responses.create(rb);
  check(rr.usage.input_tokens_details.cached_tokens > 0, 'repeated responses request reports input_tokens_details.cached_tokens', rr.usage);
  const metrics = await (await fetch(`${srv.base}/metrics`)).text();
  const hit = Number(metrics.match(/strata_cached_prompt_tokens_total\{tier="device"\} (\d+)/)?.[1] ?? 0);
  check(hit > 0, '/metrics counts the cached prompt tokens', metrics.match(/strata_cached_prompt_tokens_total.*/g));
}

// The SSD tier survives a restart: SIGTERM flushes it, and the same request after a restart
// reports its prompt as cached.
async function restartSuite() {
  const dir = path.join(workDir, 'cache');
  const long = 'Restart-proof system prompt for the disk tier. '.repeat(30);
  const body = { model: 'tiny', max_tokens: 4, system: long, messages: [{ role: 'user', content: 'Hi' }] };
  const first = await startServer(['--cache-dir', dir, '--cache-disk', String(256 << 20)]);
  const ant1 = new Anthropic({ baseURL: first.base, apiKey: 'k', maxRetries: 0 });
  await ant1.messages.create(body);
  check(await first.stop() === 0, 'first server exits 0 (cache flushed)');
  const second = await startServer(['--cache-dir', dir, '--cache-disk', String(256 << 20)]);
  const ant2 = new Anthropic({ baseURL: second.base, apiKey: 'k', maxRetries: 0 });
  const m = await ant2.messages.create(body);
  check(m.usage.cache_read_input_tokens > 0, 'after a restart the prompt comes from the SSD tier', m.usage);
  await second.stop();
}

// A long prefill (the script delays its first token by 1.5 s) sends SSE keep-alive comments
// (the harness sets --keepalive 0.5) in every dialect, and the stream then completes.
async function keepAliveSuite(srv) {
  const post = (path, body) => fetch(`${srv.base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const cases = [
    ['messages', '/v1/messages', { model: srv.alias, max_tokens: 16, stream: true, messages: [{ role: 'user', content: 'Slow prefill' }] }],
    ['chat', '/v1/chat/completions', { model: srv.alias, stream: true, messages: [{ role: 'user', content: 'Slow prefill' }] }],
    ['responses', '/v1/responses', { model: srv.alias, stream: true, input: 'Slow prefill' }],
  ];
  for (const [name, path, body] of cases) {
    const { events, comments } = await readSse(await post(path, body));
    const text = events.map(({ data }) => data?.delta?.text ?? data?.choices?.[0]?.delta?.content ??
      (data?.type === 'response.output_text.delta' ? data.delta : '')).join('');
    check(comments >= 2 && text === 'Finally.', `${name}: keep-alive comments during a long prefill, then the reply`, { comments, last: events.at(-1) });
  }
}

const scripted = await startServer(['--script', writeScript(SCRIPT)]);
const real = await startServer([]);
await openaiSuite(scripted, true);
await anthropicSuite(scripted, true);
await openaiSuite(real, false);
await anthropicSuite(real, false);
await test('concurrent', async () => {
  // Twelve requests at once over the three streaming dialects and both response styles.
  const oai = new OpenAI({ baseURL: `${real.base}/v1`, apiKey: 'k', maxRetries: 0 });
  const ant = new Anthropic({ baseURL: real.base, apiKey: 'k', maxRetries: 0 });
  const jobs = [];
  for (let i = 0; i < 4; i++) {
    jobs.push(oai.chat.completions.stream({ model: real.alias, messages: [{ role: 'user', content: `Hi ${i}` }], max_tokens: 24 }).finalChatCompletion()
      .then((r) => r.choices[0].message.role === 'assistant'));
    jobs.push(ant.messages.stream({ model: real.alias, max_tokens: 24, messages: [{ role: 'user', content: `Hi ${i}` }] }).finalMessage()
      .then((m) => m.usage.output_tokens > 0));
    jobs.push(oai.responses.create({ model: real.alias, input: `Hi ${i}`, max_output_tokens: 24 }).then((r) => r.usage.output_tokens > 0));
  }
  const ok = await Promise.all(jobs);
  check(ok.every(Boolean), '12 concurrent requests over three dialects complete', ok);
});
await cacheSuite(real);
await test('restart', restartSuite);
await test('keep-alive', () => keepAliveSuite(scripted));
await test('SIGTERM drains and exits cleanly', async () => {
  const res = await fetch(`${real.base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: real.alias, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 200, ignore_eos: true, stream: true }) });
  const reader = res.body.getReader();
  let text = new TextDecoder().decode((await reader.read()).value);
  const exited = real.stop();
  for (;;) { const { value, done } = await reader.read(); if (done) break; text += new TextDecoder().decode(value); }
  check(text.trimEnd().endsWith('data: [DONE]'), 'the request in flight at SIGTERM finishes', text.slice(-200));
  const code = await exited;
  check(code === 0, 'strata serve exits 0 on SIGTERM', code);
});
await finish([scripted, real]);
