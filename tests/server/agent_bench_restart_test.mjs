// `strata bench-agent --preset restart` (shrunk) against a real `strata serve` with an SSD tier:
// bench-agent runs --restart-cmd at the trace's restart point (SIGTERM, flush, start again on
// the same port), waits for /health and continues; the first turn of each session after the
// restart still reports the shared prefix as cached, some of it from the SSD tier. Label `server`.
import { execFileSync, execSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { synthModel, strataBin, workDir, check, test, finish } from './lib/harness.mjs';

const kBlockTokens = 64;
const model = synthModel();
const port = await new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
});
const base = `http://127.0.0.1:${port}`;
const pidFile = path.join(workDir, 'serve.pid'), log = path.join(workDir, 'serve.log');
const serve = `nohup '${strataBin}' serve -m '${model}' --alias tiny --port ${port} --cache-dir '${path.join(workDir, 'ssd')}' ` +
  `--cache-disk 268435456 >> '${log}' 2>&1 < /dev/null & echo $! > '${pidFile}'`;
const stop = `kill $(cat '${pidFile}'); while kill -0 $(cat '${pidFile}') 2>/dev/null; do sleep 0.1; done`;
fs.writeFileSync(path.join(workDir, 'restart.sh'), `${stop}\n${serve}\n`);
execSync(serve, { shell: '/bin/sh' });

await test('restart preset rides through a server restart', async () => {
  const out = path.join(workDir, 'agent-restart');
  let rc = 0;
  try {
    execFileSync(strataBin, ['bench-agent', '--url', base, '--preset', 'restart', '--prefix-tokens', '600', '--turns', '3',
    '--restart-after', '0', '--vocab', model, '--model', 'tiny', '--think-scale', '0.1', '--wait', '60',
    '--restart-cmd', `sh '${path.join(workDir, 'restart.sh')}'`, '--out', out, '--metrics-poll', '0.2', '-q'],
    { stdio: ['ignore', 'inherit', 'inherit'], timeout: 120000 });
  } catch (e) { rc = e.status; }
  check(rc === 0, 'bench-agent exited 0', rc);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
  const fullBlocks = Math.floor(report.config.prefix_tokens / kBlockTokens) * kBlockTokens;
  check(report.summary.restart_at_s > 0, 'the restart point was reached', report.summary.restart_at_s);
  check((fs.readFileSync(log, 'utf8').match(/listening on/g) || []).length === 2, 'the server was started twice');
  check(report.requests.length === 6 && report.requests.every((r) => r.ok), 'all 6 requests succeeded',
    report.requests.filter((r) => !r.ok).map((r) => r.error));
  const after = report.requests.filter((r) => r.phase === 1 && r.turn === 2);
  check(after.length === 2 && after.every((r) => r.cached_tokens >= fullBlocks),
    `first turn after the restart reports >= ${fullBlocks} cached tokens`, after.map((r) => r.cached_tokens));
  const last = report.metrics[report.metrics.length - 1] || {};
  check(last.cached_disk > 0, 'the SSD tier served tokens after the restart', last);
});

execSync(stop, { shell: '/bin/sh' });
await finish();
