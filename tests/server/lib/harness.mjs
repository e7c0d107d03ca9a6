// Starts `strata serve` on a free loopback port with a synthesized tiny model (or a reply
// script), waits for /health, and stops it. Also a tiny assertion/test runner that prints
// one line per check and exits non-zero on any failure.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../..');
export const strataBin = process.env.STRATA_BIN || path.join(repoRoot, 'build/src/cli/strata');
export const testdata = process.env.STRATA_TESTDATA || path.resolve(repoRoot, '../shared/testdata');
export const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-server-test-'));

// A tiny random-weight qwen3 model carrying the Qwen3 chat template (tools, <think>).
export function synthModel(name = 'tiny-qwen3', extraArgs = []) {
  const out = path.join(workDir, `${name}.gguf`);
  if (!fs.existsSync(out)) {
    execFileSync(strataBin, ['synth', '--preset', 'tiny', '--chat-template',
      path.join(testdata, 'templates/Qwen-Qwen3-0.6B.jinja'), ...extraArgs, '-o', out], { stdio: 'pipe' });
  }
  return out;
}

export function writeScript(entries) {
  const file = path.join(workDir, `script-${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(file, JSON.stringify(entries));
  return file;
}

export async function startServer(args = [], { alias = 'tiny', model: modelName, synthArgs = [] } = {}) {
  const model = synthModel(modelName, synthArgs);
  const proc = spawn(strataBin, ['serve', '-m', model, '--alias', alias, '--port', '0', '--keepalive', '0.5', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`strata serve did not start: ${stderr}`)), 30000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/[^:]+:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`strata serve exited ${code}: ${stderr}`)); });
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(`${base}/health`)).ok) break; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port, base, proc, alias,
    stderr: () => stderr,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      const exited = new Promise((r) => proc.on('exit', (code, sig) => r(code ?? sig)));
      proc.kill('SIGTERM');
      return exited;
    },
  };
}

let failures = 0, passes = 0;
export function check(cond, what, detail) {
  if (cond) { passes++; console.log(`ok   ${what}`); }
  else { failures++; console.log(`FAIL ${what}${detail !== undefined ? `: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}` : ''}`); }
  return cond;
}
export async function test(name, fn) {
  try { await fn(); }
  catch (e) { failures++; console.log(`FAIL ${name}: threw ${e?.stack || e}`); }
}
export function finish(servers = []) {
  return Promise.all(servers.map((s) => s.stop())).then(() => {
    fs.rmSync(workDir, { recursive: true, force: true });
    console.log(`\n${passes} passed, ${failures} failed`);
    process.exit(failures ? 1 : 0);
  });
}

// Reads an SSE response into [{event, data}] (data parsed when JSON), comments counted.
export async function readSse(res) {
  const text = await res.text();
  const events = []; let comments = 0;
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    let event = null; const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) comments++;
      else if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (!data.length) continue;
    const raw = data.join('\n');
    let parsed = raw; try { parsed = JSON.parse(raw); } catch { /* [DONE] */ }
    events.push({ event, data: parsed });
  }
  return { events, comments };
}
