#!/usr/bin/env python3
"""`strata serve --backend cuda` end to end (label gpu): greedy completions equal the CPU
server's for an F32 tiny model; a repeated prompt is served from the GPU-resident KV cache;
after a restart with no RAM tier the prompt comes back from the SSD tier with the same text;
two requests batched together give their solo answers.
usage: serve_cuda_test.py STRATA_BIN SHARED_TESTDATA WORKDIR"""
import json, os, shutil, signal, socket, subprocess, sys, threading, time, urllib.request

strata, testdata, work = sys.argv[1], sys.argv[2], sys.argv[3]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
model = os.path.join(work, "tiny-f32.gguf")
subprocess.run([strata, "synth", "--preset", "tiny", "--type", "F32", "--chat-template",
                os.path.join(testdata, "templates/Qwen-Qwen3-0.6B.jinja"), "-o", model], check=True,
               stdout=subprocess.DEVNULL)
failures = []


def check(ok, what, detail=""):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {detail}"), flush=True)
    if not ok:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args):
        self.port = free_port()
        self.log = open(os.path.join(work, f"serve-{self.port}.log"), "w")
        self.proc = subprocess.Popen([strata, "serve", "-m", model, "--alias", "tiny", "--port", str(self.port),
                                      "--ctx", "4096", *args], stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1)
                return
            except Exception:
                if self.proc.poll() is not None:
                    raise SystemExit(f"serve exited: {open(self.log.name).read()}")
                time.sleep(0.1)
        raise SystemExit("serve did not start")

    def complete(self, prompt):
        body = json.dumps({"model": "tiny", "prompt": prompt, "max_tokens": 24, "temperature": 0}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/v1/completions", body,
                                     {"content-type": "application/json"})
        r = json.load(urllib.request.urlopen(req, timeout=120))
        return r["choices"][0]["text"], r["usage"]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
prompt = " ".join(words[i * 7 % len(words)] for i in range(100))  # several 64-token blocks
other = " ".join(words[i * 5 % len(words)] for i in range(50))

cpu = Server("--backend", "cpu")
want, _ = cpu.complete(prompt)
want_other, _ = cpu.complete(other)
cpu.stop()

cache = os.path.join(work, "cache")
gpu = Server("--backend", "cuda", "--cache-dir", cache, "--parallel", "2")
text, usage = gpu.complete(prompt)
check(text == want, "CUDA greedy completion equals the CPU's", [text, want])
text2, usage2 = gpu.complete(prompt)
check(text2 == want and usage2["prompt_tokens_details"]["cached_tokens"] >= 256,
      "a repeated prompt comes from the GPU tier, same text", [text2, usage2])
both = {}
threads = [threading.Thread(target=lambda k, p: both.__setitem__(k, gpu.complete(p)[0]), args=(k, p))
           for k, p in (("a", prompt + " omega"), ("b", other))]
for t in threads:
    t.start()
for t in threads:
    t.join()
check(both.get("b") == want_other, "batched with another request, the answer is the solo one", [both, want_other])
gpu.stop()

gpu = Server("--backend", "cuda", "--cache-dir", cache, "--cache-ram", "0")
text3, usage3 = gpu.complete(prompt)
metrics = urllib.request.urlopen(f"http://127.0.0.1:{gpu.port}/metrics").read().decode()
disk = [l for l in metrics.splitlines() if l.startswith('strata_cached_prompt_tokens_total{tier="disk"}')]
check(text3 == want and usage3["prompt_tokens_details"]["cached_tokens"] >= 256 and disk and float(disk[0].split()[-1]) >= 256,
      "after a restart the prompt comes back from the SSD tier, same text", [text3, usage3, disk])
gpu.stop()
print(f"\n{4 - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
