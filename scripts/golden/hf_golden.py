#!/usr/bin/env python3
"""Golden logits from Hugging Face transformers for Strata's golden cases.

Runs on the GPU machine (PyTorch + transformers installed, no network):
    python3 scripts/golden/hf_golden.py IN_DIR OUT_DIR
IN_DIR holds what `golden_tool` wrote (one HF checkpoint per case, maybe .tar.xz packed,
and prompts.json). For each case and prompt this writes OUT_DIR/<case>.logits.bin: float32
logits [sum of prompt lengths, vocab] (prompts concatenated), computed in float64 on the CPU
so the reference itself adds no rounding worth the name, and <case>.json with metadata.
"""
import json
import os
import sys
import tarfile

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    in_dir, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    for name in sorted(os.listdir(in_dir)):
        if name.endswith(".tar.xz"):
            with tarfile.open(os.path.join(in_dir, name)) as t:
                t.extractall(in_dir)
    prompts = json.load(open(os.path.join(in_dir, "prompts.json")))
    torch.set_grad_enabled(False)
    summary = {}
    for case, case_prompts in sorted(prompts.items()):
        path = os.path.join(in_dir, case)
        config = AutoConfig.from_pretrained(path)
        kwargs = dict(config=config, torch_dtype=torch.float64, attn_implementation="eager",
                      output_loading_info=True)
        try:
            # transformers 5 runs experts through grouped_mm, which has no float64 kernel
            model, info = AutoModelForCausalLM.from_pretrained(path, experts_implementation="eager", **kwargs)
        except (TypeError, ValueError):
            model, info = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        if bad:
            raise SystemExit("%s: weights did not load cleanly: %s" % (case, bad))
        model.eval()
        rows = []
        for p in case_prompts:
            ids = torch.tensor([p], dtype=torch.long)
            logits = model(input_ids=ids).logits[0].to(torch.float64).numpy()
            rows.append(logits)
        allrows = np.concatenate(rows, axis=0).astype(np.float32)
        allrows.tofile(os.path.join(out_dir, case + ".logits.bin"))
        meta = {"case": case, "prompt_lengths": [len(p) for p in case_prompts],
                "vocab": int(allrows.shape[1]), "transformers": transformers.__version__,
                "torch": torch.__version__, "dtype": "float64 (cpu)",
                "model_class": type(model).__name__}
        json.dump(meta, open(os.path.join(out_dir, case + ".json"), "w"), indent=1)
        summary[case] = float(np.abs(allrows).max())
        print(case, type(model).__name__, allrows.shape, "max|logit| %.3f" % summary[case], flush=True)


if __name__ == "__main__":
    main()
