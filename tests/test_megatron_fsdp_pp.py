"""Megatron-FSDP (ZeRO-3) beside pipeline parallelism, as `plan --emit megatron` writes it (stage32b reading).

NVIDIA/Megatron-LM d98e8a64dd megatron/training/arguments.py validate_args refuses pipeline parallelism only for
--use-torch-fsdp2 ('--use-torch-fsdp2 is not supported with pipeline parallelism'); for --use-megatron-fsdp it
asks the distributed optimizer (v1, the default of --megatron-fsdp-version) and the fsdp_dtensor checkpoint format,
nothing of pp. Megatron-Bridge 067f987d (src/megatron/bridge/training/config.py
_validate_and_apply_megatron_fsdp_v1_configs) adds no pp rule either. Only Megatron-FSDP v2 refuses tp, pp and cp
> 1 (megatron/core/distributed/fsdp/mcore_fsdp_adapter.py at d98e8a64dd: 'MFSDP v2 does not currently support:
...'), so the emitter writes --use-megatron-fsdp with pp 2 and never --megatron-fsdp-version 2; validity keeps
zero 3 with pp on these stacks (rule 16 is MindSpeed's FSDP2 backend's, not Megatron-FSDP's)."""
from __future__ import annotations

from tests.conftest import run_main

SPEC = """
name: megatron-fsdp pp 2
model: llama-3.1-8b
system: dgx-h100
chips: 64
framework: megatron-bridge-2026
training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 512, precision: bf16}
plan: {tp: 1, pp: 2, cp: 1, zero: 3, micro_batch: 1, recompute: none}
"""


def test_megatron_fsdp_v1_with_pp2_is_emitted(tmp_path, capsys):
    spec = tmp_path / "run.yaml"
    spec.write_text(SPEC)
    code_, out, err = run_main(capsys, "plan", spec, "--emit", "megatron")
    assert code_ == 0, err
    flags = [line.strip() for line in out.splitlines()]
    assert "--pipeline-model-parallel-size 2" in flags
    assert "--use-megatron-fsdp" in flags and "--data-parallel-sharding-strategy optim_grads_params" in flags
    assert not any(f.startswith("--megatron-fsdp-version") for f in flags)     # v2 refuses pp > 1
    assert not any(f.startswith("--use-torch-fsdp2") for f in flags)           # refused with pp by validate_args
