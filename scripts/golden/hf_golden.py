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


def load_hybrid(path, config):
    """qwen3_5 / qwen3_5_moe text models: built from the config and loaded strictly, adapting
    the experts to the layout this transformers version keeps (fused 3-D or one per expert)."""
    from safetensors.torch import load_file
    try:
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", experts_implementation="eager")
    except (TypeError, ValueError):
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    model = model.to(torch.float64)
    sd = load_file(os.path.join(path, "model.safetensors"))
    want = model.state_dict()
    for k in list(sd):
        if k.endswith("mlp.experts.gate_up_proj") and k not in want:
            pre = k[: -len("gate_up_proj")]
            gu, dn = sd.pop(k), sd.pop(pre + "down_proj")
            f = gu.shape[1] // 2
            for e in range(gu.shape[0]):
                sd["%s%d.gate_proj.weight" % (pre, e)] = gu[e, :f]
                sd["%s%d.up_proj.weight" % (pre, e)] = gu[e, f:]
                sd["%s%d.down_proj.weight" % (pre, e)] = dn[e]
    if "lm_head.weight" in want and "lm_head.weight" not in sd:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]  # tied
    res = model.load_state_dict({k: v.to(torch.float64) for k, v in sd.items()}, strict=False)
    if res.missing_keys or res.unexpected_keys:
        raise SystemExit("weights did not load cleanly: missing %s unexpected %s" % (res.missing_keys, res.unexpected_keys))
    return model


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
        if config.model_type.startswith("qwen3_5"):
            model = load_hybrid(path, config)
            model.eval()
            rows = [model(input_ids=torch.tensor([p], dtype=torch.long), use_cache=False).logits[0].to(torch.float64).numpy()
                    for p in case_prompts]
            allrows = np.concatenate(rows, axis=0).astype(np.float32)
            allrows.tofile(os.path.join(out_dir, case + ".logits.bin"))
            meta = {"case": case, "prompt_lengths": [len(p) for p in case_prompts],
                    "vocab": int(allrows.shape[1]), "transformers": transformers.__version__,
                    "torch": torch.__version__, "dtype": "float64 (cpu)", "model_class": type(model).__name__}
            json.dump(meta, open(os.path.join(out_dir, case + ".json"), "w"), indent=1)
            print(case, type(model).__name__, allrows.shape, "max|logit| %.3f" % float(np.abs(allrows).max()), flush=True)
            continue
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
