// Real coding-agent CLIs (pinned in package.json) each complete a turn against `strata serve`
// with no protocol error: every request they make gets 200, and their output shows the
// reply. The model is replaced by a reply script so a turn is fast and deterministic; the
// prompt still goes through the chat template and tokenizer, and the reply through the
// output parser and the dialect's SSE writer. CLIENTS.md §2 describes each CLI's set-up.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, writeScript, check, test, finish, workDir } from '../lib/harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = (name) => path.join(here, 'node_modules/.bin', name);
const REPLY = 'Hello from Strata.';
const MODEL = 'tiny';

if (!fs.existsSync(path.join(here, 'node_modules/.bin'))) {
  console.log('skip: agent CLIs not installed (cd tests/server/agents && npm ci)');
  process.exit(77);
}

const srv = await startServer(['--any-model', '--ctx', '262144', '--script', writeScript([{ reply: REPLY }])],
  { alias: MODEL, model: 'tiny-qwen3-long', synthArgs: ['--ctx', '262144'] });

function run(cmd, args, env, timeoutMs = 120000) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: { PATH: process.env.PATH, TERM: 'dumb', ...env }, cwd: workDir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
  });
}

// Request counts by endpoint and status, from /metrics.
async function statusCounts() {
  const text = await (await fetch(`${srv.base}/metrics`)).text();
  const counts = {};
  for (const m of text.matchAll(/strata_http_requests_total\{endpoint="([^"]+)",status="(\d+)"\} (\d+)/g)) {
    counts[`${m[1]} ${m[2]}`] = Number(m[3]);
  }
  return counts;
}
function diff(before, after) {
  const d = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] || 0)) d[k] = v - (before[k] || 0);
  return d;
}

async function agentTurn(name, cmd, args, env, expect = REPLY) {
  await test(name, async () => {
    if (!fs.existsSync(cmd)) { check(false, `${name}: ${cmd} is installed (npm install in tests/server/agents)`); return; }
    const before = await statusCounts();
    const r = await run(cmd, args, env);
    const requests = diff(before, await statusCounts());
    const bad = Object.keys(requests).filter((k) => !k.endsWith(' 200'));
    const sent = Object.values(requests).reduce((a, b) => a + b, 0);
    check(r.code === 0 && sent > 0 && bad.length === 0 && r.out.includes(expect), `${name} completes a turn`,
      { code: r.code, requests, out: r.out.slice(-600), err: r.err.slice(-1500) });
  });
}

const key = 'sk-local';
const home = (n) => { const d = path.join(workDir, n); fs.mkdirSync(d, { recursive: true }); return d; };

// Codex: custom provider on the Responses API.
const codexHome = home('codex-home');
fs.writeFileSync(path.join(codexHome, 'config.toml'), `model = "${MODEL}"
model_provider = "local"

[model_providers.local]
name = "strata"
base_url = "${srv.base}/v1"
env_key = "LOCAL_API_KEY"
wire_api = "responses"
`);
await agentTurn('codex exec (responses)', bin('codex'), ['exec', '--skip-git-repo-check', 'Say hi'],
  { CODEX_HOME: codexHome, LOCAL_API_KEY: key, HOME: home('codex-user') });

// Claude Code: messages?beta=true with x-api-key.
await agentTurn('claude -p (messages)', bin('claude'), ['-p', 'Say hi', '--model', MODEL],
  { CLAUDE_CONFIG_DIR: home('claude-home'), HOME: home('claude-user'), ANTHROPIC_BASE_URL: srv.base, ANTHROPIC_API_KEY: key,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1' });

// qwen-code over all three wire protocols.
const qwenEnv = { HOME: home('qwen-home'), OPENAI_API_KEY: key, OPENAI_BASE_URL: `${srv.base}/v1`, OPENAI_MODEL: MODEL };
await agentTurn('qwen (chat/completions)', bin('qwen'), ['--bare', 'Say hi'], qwenEnv);
await agentTurn('qwen (responses)', bin('qwen'), ['--bare', '--auth-type', 'openai-responses', 'Say hi'], qwenEnv);
await agentTurn('qwen (messages)', bin('qwen'), ['--bare', '--auth-type', 'anthropic', '-m', MODEL, 'Say hi'],
  { HOME: home('qwen-home-ant'), ANTHROPIC_API_KEY: key, ANTHROPIC_BASE_URL: srv.base, ANTHROPIC_MODEL: MODEL });

// opencode through its three ai-sdk providers.
const ocConfig = path.join(workDir, 'opencode.json');
const provider = (npm, name) => ({ npm, name, options: { baseURL: `${srv.base}/v1`, apiKey: key }, models: { [MODEL]: { name: MODEL } } });
fs.writeFileSync(ocConfig, JSON.stringify({
  $schema: 'https://opencode.ai/config.json',
  provider: { local: provider('@ai-sdk/openai-compatible', 'chat'), localant: provider('@ai-sdk/anthropic', 'messages'),
    localresp: provider('@ai-sdk/openai', 'responses') },
  model: `local/${MODEL}`,
}));
const ocEnv = { HOME: home('oc-home'), OPENCODE_CONFIG: ocConfig, OPENCODE_DISABLE_MODELS_FETCH: '1', OPENCODE_DISABLE_AUTOUPDATE: '1' };
for (const p of ['local', 'localant', 'localresp']) {
  await agentTurn(`opencode run (${p})`, bin('opencode'), ['run', '-m', `${p}/${MODEL}`, 'Say hi'], ocEnv);
}

// Tool round trips: the script answers a trigger phrase with a shell tool call in the
// client's own tool name, and the tool's output with a final text. The agent must run the
// tool and send its output back.
const DONE = 'Done: hi-from-42';
const call = (name, args) => `<tool_call>\n${JSON.stringify({ name, arguments: args })}\n</tool_call>`;
const cmd = 'echo hi-from-$((40+2))';
const tools = await startServer(['--any-model', '--ctx', '262144', '--script', writeScript([
  { when: 'hi-from-42', reply: DONE },
  { when: 'ZQX-codex', reply: call('exec_command', { cmd }) },
  { when: 'ZQX-claude', reply: call('Bash', { command: cmd, description: 'Print text' }) },
  { when: 'ZQX-opencode', reply: call('bash', { command: cmd, description: 'Print text' }) },
  { reply: REPLY }])], { alias: MODEL, model: 'tiny-qwen3-long', synthArgs: ['--ctx', '262144'] });
const toolsBase = tools.base;
fs.writeFileSync(path.join(codexHome, 'config.toml'),
  fs.readFileSync(path.join(codexHome, 'config.toml'), 'utf8').replace(srv.base, toolsBase));
const srvBase = srv.base;
srv.base = toolsBase;  // statusCounts() reads this server's metrics now
await agentTurn('codex exec tool round trip', bin('codex'),
  ['exec', '--skip-git-repo-check', '--dangerously-bypass-approvals-and-sandbox', 'ZQX-codex: run the echo'],
  { CODEX_HOME: codexHome, LOCAL_API_KEY: key, HOME: home('codex-user') }, DONE);
await agentTurn('claude -p tool round trip', bin('claude'), ['-p', 'ZQX-claude: run the echo', '--model', MODEL, '--allowedTools', 'Bash'],
  { CLAUDE_CONFIG_DIR: home('claude-home'), HOME: home('claude-user'), ANTHROPIC_BASE_URL: toolsBase, ANTHROPIC_API_KEY: key,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1' }, DONE);
fs.writeFileSync(ocConfig, fs.readFileSync(ocConfig, 'utf8').replaceAll(srvBase, toolsBase));
await agentTurn('opencode run tool round trip', bin('opencode'), ['run', '-m', `local/${MODEL}`, 'ZQX-opencode: run the echo'], ocEnv, DONE);

// The real engine on the synthesized model (random text): a whole Codex prompt (tens of
// thousands of tokens with this vocabulary) is prefilled, and the agent's follow-up requests reuse it
// from the prefix cache.
const model = await startServer(['--any-model', '--max-tokens', '64'], { alias: MODEL, model: 'tiny-qwen3-long', synthArgs: ['--ctx', '262144'] });
srv.base = model.base;
const cachedBefore = async () => Number((await (await fetch(`${model.base}/metrics`)).text()).match(/strata_cached_prompt_tokens_total\{tier="device"\} (\d+)/)?.[1] ?? 0);
// (Claude Code is left out here: a random model never ends its turn, and Claude Code reports
// the clamped reply's stop_reason "max_tokens" as an error, as it should.)
fs.writeFileSync(path.join(codexHome, 'config.toml'),
  fs.readFileSync(path.join(codexHome, 'config.toml'), 'utf8').replace(toolsBase, model.base));
await agentTurn('codex exec on the model', bin('codex'), ['exec', '--skip-git-repo-check', 'Say hi'],
  { CODEX_HOME: codexHome, LOCAL_API_KEY: key, HOME: home('codex-user') }, '');
await agentTurn('codex exec on the model, again', bin('codex'), ['exec', '--skip-git-repo-check', 'Say hi'],
  { CODEX_HOME: codexHome, LOCAL_API_KEY: key, HOME: home('codex-user') }, '');
check(await cachedBefore() > 0, 'agent prompts hit the prefix cache');

await finish([srv, tools, model]);
