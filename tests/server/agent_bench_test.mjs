// `strata bench-agent --preset smoke` against a real `strata serve` on a tiny synthesized model,
// over both dialects: every request succeeds, and every turn after a session's first reports
// at least the shared prefix's full 64-token blocks as cached (the Anthropic run also checks
// that the per-request billing line does not break the prefix). Label `server`.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, synthModel, strataBin, workDir, check, test, finish } from './lib/harness.mjs';

const kBlockTokens = 64;  // engine_impl.h
const server = await startServer();
const model = synthModel();

for (const dialect of ['openai', 'anthropic']) {
  await test(`smoke over ${dialect}`, async () => {
    const out = path.join(workDir, `agent-${dialect}`);
    const t0 = Date.now();
    execFileSync(strataBin, ['bench-agent', '--url', server.base, '--dialect', dialect, '--preset', 'smoke',
      '--vocab', model, '--model', server.alias, '--out', out, '--metrics-poll', '0.2', '-q'],
      { stdio: ['ignore', 'pipe', 'inherit'], timeout: 120000 });
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
    const prefix = report.config.prefix_tokens;
    const fullBlocks = Math.floor(prefix / kBlockTokens) * kBlockTokens;
    check(prefix >= 1000 && prefix <= 2000, `${dialect}: smoke prefix is 1-2k tokens`, prefix);
    check(report.requests.length === 12, `${dialect}: 12 requests (2 sessions x 4 turns + 2 sub-agents x 2)`, report.requests.length);
    check(report.requests.every((r) => r.ok), `${dialect}: every request succeeded`,
      report.requests.filter((r) => !r.ok).map((r) => r.error));
    const later = report.requests.filter((r) => r.turn > 1);
    const short = later.filter((r) => r.cached_tokens < fullBlocks);
    check(later.length === 8 && short.length === 0,
      `${dialect}: turns after the first report >= ${fullBlocks} cached tokens`,
      short.map((r) => `${r.session} turn ${r.turn}: ${r.cached_tokens}/${r.prompt_tokens}`));
    check(report.requests.every((r) => r.cached_tokens <= r.prompt_tokens && r.prompt_tokens > prefix),
      `${dialect}: cached <= prompt tokens, prompt > prefix`);
    check(report.summary.cache_efficiency > 0.5, `${dialect}: cache efficiency > 50%`, report.summary.cache_efficiency);
    check(report.metrics.length > 0, `${dialect}: /metrics was polled`, report.metrics.length);
    for (const png of ['ttft_per_turn.png', 'cache_efficiency.png', 'tier_occupancy.png']) {
      const f = path.join(out, png);
      check(fs.existsSync(f) && fs.statSync(f).size > 1000, `${dialect}: ${png} written`);
    }
    console.log(`     (${dialect} smoke took ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  });
}

await finish([server]);
